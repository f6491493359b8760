package oci

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/storage"
)

// root is one writer's root index with its segments' layers.
type root struct {
	tag      string
	desc     ocispec.Descriptor // of the index; zero when the tag does not exist
	segments []segment
}

type segment struct {
	desc   ocispec.Descriptor
	layers []ocispec.Descriptor
}

// find returns the first layer that match accepts.
func (r *root) find(match func(ocispec.Descriptor) bool) (ocispec.Descriptor, bool) {
	for _, seg := range r.segments {
		if i := slices.IndexFunc(seg.layers, match); i >= 0 {
			return seg.layers[i], true
		}
	}
	return ocispec.Descriptor{}, false
}

func (r *root) layers() []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, seg := range r.segments {
		out = append(out, seg.layers...)
	}
	return out
}

// loadRoots reads every writer's root: one tag listing (paginated), one
// GET per root, and one GET per segment not in the local cache. So a
// cold listing costs O(tags + manifests) requests, never O(blobs).
func (s *Store) loadRoots(ctx context.Context) ([]*root, error) {
	// One command lists several kinds in a row; the roots are read once
	// for all of them, and again after this store changes one.
	s.rootsMu.Lock()
	defer s.rootsMu.Unlock()
	if s.roots != nil && time.Since(s.rootsAt) < rootsTTL {
		return s.roots, nil
	}
	all, err := s.listTags(ctx)
	var tags []string
	for _, t := range all {
		if strings.HasPrefix(t, tagRootPrefix) {
			tags = append(tags, t)
		}
	}
	if err != nil && !isNotFound(err) {
		return nil, s.wrap("listing tags", err)
	}
	// Registries return tags in no promised order (registry 2.8 does not
	// sort), and a tag may appear on two pages while tags change.
	slices.Sort(tags)
	tags = slices.Compact(tags)
	roots := make([]*root, len(tags))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, tag := range tags {
		g.Go(func() error {
			r, err := s.loadRoot(ctx, tag)
			roots[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	s.roots = slices.DeleteFunc(roots, func(r *root) bool { return r == nil || r.desc.Digest == "" })
	s.rootsAt = time.Now()
	return s.roots, nil
}

// rootsTTL bounds how stale a listing may be for a long-running reader
// (other writers may add objects at any time).
const rootsTTL = 30 * time.Second

// forgetRoots drops the cached roots after this store changed one.
func (s *Store) forgetRoots() {
	s.rootsMu.Lock()
	s.roots = nil
	s.rootsMu.Unlock()
}

// loadRoot reads one root and its segments; a missing tag is an empty
// root.
func (s *Store) loadRoot(ctx context.Context, tag string) (*root, error) {
	r := &root{tag: tag}
	desc, b, err := s.fetchManifest(ctx, tag)
	if isNotFound(err) {
		return r, nil
	}
	if err != nil {
		return nil, s.wrap("fetching "+tag, err)
	}
	idx, err := decodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", tag, s.loc.host, err)
	}
	r.desc = desc
	for _, d := range idx.Manifests {
		layers, err := s.segmentLayers(ctx, d)
		if err != nil {
			return nil, err
		}
		r.segments = append(r.segments, segment{desc: d, layers: layers})
	}
	return r, nil
}

// segmentLayers returns a segment manifest's layers. Segments never change
// (they are addressed by digest), so they are cached on disk.
func (s *Store) segmentLayers(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	b := s.cache.manifest(d.Digest)
	if b == nil {
		var err error
		if _, b, err = s.fetchManifest(ctx, d.Digest.String()); err != nil {
			return nil, s.wrap("fetching segment "+shortDigest(d.Digest), err)
		}
		s.cache.putManifest(d.Digest, b)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("segment %s on %s: %w", shortDigest(d.Digest), s.loc.host, err)
	}
	if m.ArtifactType != artifactSegment {
		return nil, fmt.Errorf("segment %s on %s has artifact type %q", shortDigest(d.Digest), s.loc.host, m.ArtifactType)
	}
	return slices.DeleteFunc(m.Layers, func(l ocispec.Descriptor) bool {
		_, ok := kindOfMediaType(l.MediaType)
		return !ok
	}), nil
}

// flush references every pending blob from this writer's root, copy on
// write: new segment manifests, then a new root index under the tag.
func (s *Store) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	// Pending blobs stay listed as pending until the root that references
	// them is in place, so a concurrent List never misses one.
	s.pendingMu.Lock()
	pending := slices.Clone(s.pending)
	s.pendingMu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	if err := s.updateRoot(ctx, s.rootTag(), func(layers []ocispec.Descriptor) []ocispec.Descriptor {
		return append(layers, pending...)
	}); err != nil {
		return err // still pending: the next flush (or Close) tries again
	}
	s.pendingMu.Lock()
	s.pending = s.pending[len(pending):] // Put only appends; flushes are serial
	if len(s.pending) > 0 {
		s.pendingSince = time.Now()
	}
	s.pendingMu.Unlock()
	return nil
}

// updateRoot rewrites the root under tag with the layers change returns.
// Full segments that keep their layers are reused as they are; only the
// segments after the first change are written again.
func (s *Store) updateRoot(ctx context.Context, tag string, change func([]ocispec.Descriptor) []ocispec.Descriptor) error {
	cur, err := s.loadRoot(ctx, tag)
	if err != nil {
		return err
	}
	old := cur.layers()
	layers := dedupe(change(slices.Clone(old)))

	// Keep the longest prefix of full segments that is unchanged.
	var segs []ocispec.Descriptor
	kept := 0
	for _, seg := range cur.segments {
		n := len(seg.layers)
		if n != maxSegmentLayers || kept+n > len(layers) || !sameDigests(seg.layers, layers[kept:kept+n]) {
			break
		}
		segs = append(segs, seg.desc)
		kept += n
	}
	writer := strings.TrimPrefix(tag, tagRootPrefix)
	for start := kept; start < len(layers); start += maxSegmentLayers {
		chunk := layers[start:min(start+maxSegmentLayers, len(layers))]
		desc, b, err := newManifest(artifactSegment, chunk, map[string]string{annotationObject: "segment", annotationWriter: writer})
		if err != nil {
			return err
		}
		desc.ArtifactType = artifactSegment
		// Segments are tagged as well as listed by the root: garbage
		// collectors older than Distribution v3 (registry 2.8's
		// --delete-untagged) delete untagged manifests even when a
		// tagged index refers to them.
		if err := s.pushManifest(ctx, desc, b, segmentTag(writer, len(segs))); err != nil {
			return s.wrap("pushing a segment manifest", err)
		}
		s.cache.putManifest(desc.Digest, b)
		segs = append(segs, desc)
	}
	desc, b, err := newIndex(segs, map[string]string{annotationObject: "root", annotationWriter: writer})
	if err != nil {
		return err
	}
	defer s.forgetRoots()
	if err := s.pushManifest(ctx, desc, b, tag); err != nil {
		return s.wrap("moving "+tag, err)
	}
	// Segment tags beyond the new end would keep removed blobs alive.
	for i := len(segs); i < len(cur.segments); i++ {
		tomb, tb, err := newManifest(artifactTombstone, nil, map[string]string{annotationObject: "deleted"})
		if err != nil {
			return err
		}
		if err := s.pushManifest(ctx, tomb, tb, segmentTag(writer, i)); err != nil {
			return s.wrap("retiring "+segmentTag(writer, i), err)
		}
	}
	return nil
}

// segmentTag is the tag of a writer's i-th segment.
func segmentTag(writer string, i int) string {
	return fmt.Sprintf("%s%s-%06d", tagSegmentPrefix, writer, i)
}

func sameDigests(a, b []ocispec.Descriptor) bool {
	return slices.EqualFunc(a, b, func(x, y ocispec.Descriptor) bool { return x.Digest == y.Digest })
}

// dedupe drops later duplicates, keeping order. The same bytes stored as
// two kinds are two layers.
func dedupe(layers []ocispec.Descriptor) []ocispec.Descriptor {
	type key struct {
		mediaType string
		digest    digest.Digest
	}
	seen := make(map[key]bool, len(layers))
	return slices.DeleteFunc(layers, func(l ocispec.Descriptor) bool {
		k := key{l.MediaType, l.Digest}
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// unreference removes a blob from every root that lists it. Deleting from
// another writer's root is only safe while no one else writes, which is
// what the exclusive lock of a prune guarantees.
func (s *Store) unreference(ctx context.Context, dgst digest.Digest, kind storage.Kind, name string) error {
	if err := s.flush(ctx); err != nil {
		return err
	}
	s.forgetRoots() // every root as it is now, not as this store last saw it
	roots, err := s.loadRoots(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, r := range roots {
		match := func(l ocispec.Descriptor) bool { return l.Digest == dgst && l.MediaType == layerMediaType[kind] }
		if !slices.ContainsFunc(r.layers(), match) {
			continue
		}
		found = true
		err := s.updateRoot(ctx, r.tag, func(layers []ocispec.Descriptor) []ocispec.Descriptor {
			return slices.DeleteFunc(layers, match)
		})
		if err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("%s %s: %w", kind, name, storage.ErrNotFound)
	}
	return nil
}
