package oci

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/storage"
)

// The references that keep packs, index objects and snapshots alive
// (docs/oci-layout.md, "The reference graph"). A registry has no
// compare-and-swap, so the layout never relies on one:
//
//   - every refs tag is written once, by the one process that chose its
//     random name, and never changed afterwards, but to a tombstone when
//     a rewrite retires it;
//   - an object is listed while any refs tag references it (readers take
//     the union, which is safe whatever adders do concurrently);
//   - only a rewrite drops references: it pushes new refs tags with what
//     it keeps, then retires the tags it read. Since no one else changes
//     a tag after writing it, retiring one whose content is already in a
//     new tag loses nothing. Two rewrites at once could each bring back
//     what the other dropped, so the caller of Delete runs rewrites one
//     at a time (repo's exclusive lock).

// refsTTL bounds how stale a listing may be for a long-running reader
// (other writers may add objects at any time).
const refsTTL = 30 * time.Second

// layerKey identifies an object: the same bytes stored as two kinds are
// two objects.
type layerKey struct {
	mediaType string
	digest    digest.Digest
}

func keyOf(l ocispec.Descriptor) layerKey { return layerKey{l.MediaType, l.Digest} }

// ref is one tag that keeps objects alive: a refs manifest, or a root
// index with tagged segments as earlier versions of coffer wrote them.
type ref struct {
	tag    string
	desc   ocispec.Descriptor   // the manifest (or index) the tag points at
	layers []ocispec.Descriptor // the objects it references
	// segments are a legacy root's segment manifests, each also under a
	// tag of its own; nil for a refs manifest.
	segments []ocispec.Descriptor
	legacy   bool
}

// refView is every ref as read at one moment.
type refView struct {
	refs    []*ref
	objects map[layerKey]ocispec.Descriptor
	// tombstones are the listed refs tags known to name tombstones.
	tombstones []string
}

func newRefView(refs []*ref) *refView {
	v := &refView{refs: refs, objects: make(map[layerKey]ocispec.Descriptor)}
	for _, r := range refs {
		v.add(r)
	}
	return v
}

func (v *refView) add(r *ref) {
	for _, l := range r.layers {
		v.objects[keyOf(l)] = l
	}
}

// newSessionID names the refs tags of one Store: random, so that no two
// processes ever write the same tag, whatever their host and user names
// (a cloned VM, two cron runs of one job).
func newSessionID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

// nextRefTag returns a tag no process has written. Called under flushMu.
func (s *Store) nextRefTag() string {
	s.seq++
	return fmt.Sprintf("%s%s-%06d", tagRefsPrefix, s.session, s.seq)
}

// loadView reads every ref: one tag listing (paginated), one request
// per refs tag (readTagged: a GET for one the last listing did not read,
// else a HEAD), and one GET per legacy root. So a listing costs O(tags)
// requests, never O(objects).
//
// A tag that a merge or rewrite retired between the listing and its read
// would drop objects its replacement holds: the replacement is pushed
// before the tag is retired, so when a tag has vanished the listing is
// read again, and only a view in which every listed tag was read counts.
func (s *Store) loadView(ctx context.Context) (*refView, error) {
	// One command lists several kinds in a row; the refs are read once
	// for all of them, and again after this store rewrites some.
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	// Wall-clock age: a machine that slept must not trust a listing from
	// before (the monotonic clock stops while it sleeps).
	if s.view != nil && time.Now().Round(0).Sub(s.viewAt.Round(0)) < refsTTL {
		return s.view, nil
	}
	// Tags retire while writers merge theirs; the reads are tried again
	// after a growing pause (a listing on a busy registry takes long
	// enough for several merges to land in it), for up to a minute.
	start := time.Now()
	// How many passes in a row found each tag listed without a manifest:
	// one a merge retired is gone from the next listing; one still listed
	// whose manifest stays gone was not retired, the registry lost it.
	lostPasses := map[string]int{}
	for attempt := 0; ; attempt++ {
		// Tags found naming tombstones are marked in the cache (in
		// memory, at least), so the next pass skips them.
		r, err := s.readRefs(ctx)
		if err != nil {
			return nil, err
		}
		if len(r.lost) == 0 && len(r.retired) == 0 {
			s.view = newRefView(r.refs)
			s.view.tombstones = r.tombstones
			s.viewAt = time.Now()
			return s.view, nil
		}
		for t := range lostPasses {
			if !slices.Contains(r.lost, t) {
				delete(lostPasses, t)
			}
		}
		for _, t := range r.lost {
			lostPasses[t]++
		}
		// At least two passes: a first one that reads many tombstones
		// (a cold cache) may take the whole settle time by itself.
		if attempt > 0 && time.Since(start) > s.settle {
			var unreadable []string
			for t, n := range lostPasses {
				if n > 1 {
					unreadable = append(unreadable, t)
				}
			}
			if len(unreadable) > 0 {
				slices.Sort(unreadable)
				return nil, &DanglingRefsError{Host: s.loc.host, Tags: unreadable, For: s.settle}
			}
			return nil, fmt.Errorf("registry %s: refs tags kept changing while they were read for %s; try again", s.loc.host, s.settle)
		}
		wait := min(time.Duration(1<<min(attempt, 6))*25*time.Millisecond, 2*time.Second)
		select {
		case <-time.After(wait/2 + time.Duration(mrand.Int64N(int64(wait/2)+1))):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// refsSettle is how long a listing waits for writers' merges to stop
// retiring the tags it reads.
const refsSettle = time.Minute

// DanglingRefsError reports refs tags the registry lists but has no
// manifest for, read after read: a registry's garbage collection run
// while coffer wrote leaves such tags (it deletes a manifest revision
// that a tag still names). The objects they listed are not found, and
// every listing would wait for them; `coffer repair refs` (RepairRefs)
// re-publishes what the cache knows they held and retires them. It
// matches storage.ErrLostReferences.
type DanglingRefsError struct {
	Host string
	Tags []string
	For  time.Duration // how long they were read without success
}

func (e *DanglingRefsError) Error() string {
	what := fmt.Sprintf("refs tag %s is listed, but the registry has no manifest for it", e.Tags[0])
	if len(e.Tags) > 1 {
		what = fmt.Sprintf("%d refs tags (%s first) are listed, but the registry has no manifest for them", len(e.Tags), e.Tags[0])
	}
	return fmt.Sprintf("registry %s: %s (read for %s): a garbage collection run while coffer wrote leaves such tags; `coffer repair refs` re-publishes what this client's cache knows they held and removes them",
		e.Host, what, e.For)
}

// Unwrap makes the error match storage.ErrLostReferences.
func (e *DanglingRefsError) Unwrap() error { return storage.ErrLostReferences }

// refsRead is one listing of the refs tags and legacy roots, read.
type refsRead struct {
	refs []*ref
	// lost were listed but had no manifest: retired since the listing,
	// or lost by the registry.
	lost []string
	// retired were found naming tombstones: retired, maybe since the
	// listing, whose replacements it may then miss.
	retired []string
	// tombstones were listed and known to name tombstones, so not read.
	tombstones []string
}

// readRefs lists the tags and reads every refs tag and legacy root but
// those the cache knows to name tombstones.
func (s *Store) readRefs(ctx context.Context) (refsRead, error) {
	var r refsRead
	all, err := s.listTags(ctx)
	if err != nil && !isNotFound(err) {
		return r, s.wrap("listing tags", err)
	}
	var tags []string
	for _, t := range all {
		switch {
		case !strings.HasPrefix(t, tagRefsPrefix) && !strings.HasPrefix(t, tagRootPrefix):
		case s.cache.isTombstone(t):
			r.tombstones = append(r.tombstones, t)
		default:
			tags = append(tags, t)
		}
	}
	// Registries return tags in no promised order (registry 2.8 does not
	// sort), and a tag may appear on two pages while tags change.
	slices.Sort(tags)
	tags = slices.Compact(tags)
	slices.Sort(r.tombstones)
	r.tombstones = slices.Compact(r.tombstones)
	refs := make([]*ref, len(tags))
	known := s.cache.refs()
	read := make([]cachedRef, len(tags))
	lost := make([]bool, len(tags))
	retired := make([]bool, len(tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, tag := range tags {
		g.Go(func() error {
			var err error
			if strings.HasPrefix(tag, tagRefsPrefix) {
				refs[i], read[i], err = s.loadRef(gctx, tag, known[tag])
			} else {
				refs[i], err = s.loadLegacyRoot(gctx, tag)
			}
			switch {
			case errors.Is(err, errTombstone):
				retired[i] = true
				return nil
			case err == nil && refs[i] == nil:
				lost[i] = true
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return refsRead{}, err
	}
	fresh := map[string]cachedRef{}
	changed := false
	for i, c := range read {
		if c.Manifest != nil {
			fresh[tags[i]] = c
			changed = changed || known[tags[i]].Digest != c.Digest
		} else if k := known[tags[i]]; lost[i] && k.Manifest != nil {
			// Listed but unreadable: retired meanwhile, which the next
			// listing shows, or its manifest lost, when what the cache
			// read of it is all RepairRefs has to re-publish.
			fresh[tags[i]] = k
		}
	}
	if changed || len(fresh) != len(known) {
		s.cache.putRefs(fresh)
	}
	for i, tag := range tags {
		switch {
		case lost[i]:
			r.lost = append(r.lost, tag)
		case retired[i]:
			r.retired = append(r.retired, tag)
		}
	}
	r.refs = slices.DeleteFunc(refs, func(r *ref) bool { return r == nil })
	return r, nil
}

// forgetView drops the refs read, so the next use reads them again.
func (s *Store) forgetView() {
	s.viewMu.Lock()
	s.view = nil
	s.viewMu.Unlock()
}

// Refresh drops what the store remembers of its listings, so that the
// next List reads the registry afresh (storage.Refresher).
func (s *Store) Refresh() { s.forgetView() }

// addToView records refs this store just wrote in the view it holds, so
// a flush costs no new listing. The view is replaced, not changed:
// readers hold it without a lock.
func (s *Store) addToView(refs []*ref) {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	if s.view == nil {
		return
	}
	tombstones := s.view.tombstones
	s.view = newRefView(append(slices.Clone(s.view.refs), refs...))
	s.view.tombstones = tombstones
}

// loadRef reads one refs tag, known as the last listing read it (if it
// did), and returns it and what to remember of it; a tag gone since the
// listing is nil, and one moved to a tombstone is errTombstone.
func (s *Store) loadRef(ctx context.Context, tag string, known cachedRef) (*ref, cachedRef, error) {
	desc, b, err := s.readTagged(ctx, tag, known)
	if isNotFound(err) {
		return nil, cachedRef{}, nil
	}
	if err != nil {
		return nil, cachedRef{}, s.wrap("reading "+tag, err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, cachedRef{}, fmt.Errorf("%s on %s: %w", tag, s.loc.host, err)
	}
	switch m.ArtifactType {
	case artifactTombstone:
		// Tag names are never used again, so a tombstone stays one: the
		// next listing skips it without a request.
		s.cache.putTombstone(tag)
		return nil, cachedRef{}, errTombstone
	case artifactRefs:
	default:
		return nil, cachedRef{}, fmt.Errorf("%s on %s has artifact type %q, not %q: the tag prefix %s is coffer's; rename other artifacts",
			tag, s.loc.host, m.ArtifactType, artifactRefs, tagRefsPrefix)
	}
	return &ref{tag: tag, desc: desc, layers: objectLayers(m.Layers)}, cachedRef{desc.Digest, b}, nil
}

// readTagged returns the manifest tag names. A tag the last listing read
// (known) costs a HEAD, which says whether it still names that manifest
// (a retired tag may name a tombstone now); a tag never read costs one
// GET by tag, rather than a HEAD and a GET: a cold listing of a
// repository with many refs tags makes half the requests.
func (s *Store) readTagged(ctx context.Context, tag string, known cachedRef) (ocispec.Descriptor, []byte, error) {
	if known.Manifest == nil {
		return s.fetchManifest(ctx, tag)
	}
	var desc ocispec.Descriptor
	err := s.retrying(ctx, func(ctx context.Context) error {
		var err error
		desc, err = s.repo.Resolve(ctx, tag)
		return err
	})
	if err != nil {
		return desc, nil, err
	}
	if desc.Digest == known.Digest {
		return desc, known.Manifest, nil
	}
	return s.fetchManifest(ctx, desc.Digest.String())
}

// objectLayers keeps every layer but the empty descriptor (which a
// manifest with no objects lists). Layers of kinds this version does not
// know are kept too: a merge must carry them over, and List skips them.
func objectLayers(layers []ocispec.Descriptor) []ocispec.Descriptor {
	return slices.DeleteFunc(slices.Clone(layers), func(l ocispec.Descriptor) bool {
		return l.MediaType == ocispec.DescriptorEmptyJSON.MediaType && l.Digest == ocispec.DescriptorEmptyJSON.Digest
	})
}

// loadLegacyRoot reads a coffer-root-<writer> index and its segments, as
// coffer wrote them before refs tags; nil when the tag is gone, and
// errTombstone when it names a tombstone.
func (s *Store) loadLegacyRoot(ctx context.Context, tag string) (*ref, error) {
	desc, b, err := s.fetchManifest(ctx, tag)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap("fetching "+tag, err)
	}
	if m, err := decodeManifest(b); err == nil && m.ArtifactType == artifactTombstone {
		// Retired by a migration; no coffer writes root tags any more.
		s.cache.putTombstone(tag)
		return nil, errTombstone
	}
	idx, err := decodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", tag, s.loc.host, err)
	}
	r := &ref{tag: tag, desc: desc, legacy: true, segments: idx.Manifests}
	for _, d := range idx.Manifests {
		layers, err := s.segmentLayers(ctx, d)
		if err != nil {
			return nil, err
		}
		r.layers = append(r.layers, layers...)
	}
	return r, nil
}

// segmentLayers returns a legacy segment manifest's objects. Segments
// never change (they are addressed by digest), so they are cached on disk.
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
	return objectLayers(m.Layers), nil
}

// Flush makes every Put and Delete so far visible to other clients: new
// objects are referenced from new refs tags, then deleted objects are
// dropped from the refs that list them. Deletes take effect only here:
// dropping references is a rewrite, which its caller runs under the
// exclusive lock, so it must not happen later, in Close, after the lock
// is gone.
func (s *Store) Flush(ctx context.Context) error {
	return s.flush(ctx, true)
}

// flush references pending objects and, with removals, applies pending
// deletes.
func (s *Store) flush(ctx context.Context, removals bool) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	// Pending objects stay listed as pending until the ref that keeps
	// them is in place, so a concurrent List never misses one.
	s.pendingMu.Lock()
	adds := slices.Clone(s.pending)
	removing := maps.Clone(s.removing)
	s.pendingMu.Unlock()
	if len(adds) > 0 {
		refs, err := s.pushRefs(ctx, dedupe(adds))
		if err != nil {
			return err // still pending: the next flush (or Close) tries again
		}
		s.addToView(refs)
		s.pendingMu.Lock()
		s.pending = s.pending[len(adds):] // only Put appends, and Delete holds flushMu
		s.releaseHeld(adds)
		if len(s.pending) > 0 {
			s.pendingSince = time.Now()
			s.armReferenceTimer()
		}
		s.pendingMu.Unlock()
	}
	if removals && len(removing) > 0 {
		if err := s.rewrite(ctx, removing); err != nil {
			return err
		}
		s.pendingMu.Lock()
		for k, d := range removing {
			if cur, ok := s.removing[k]; ok && cur.Digest == d.Digest {
				delete(s.removing, k)
			}
		}
		s.pendingMu.Unlock()
	}
	return nil
}

// pushRefs references layers from new refs tags of at most
// maxSegmentLayers each, in order, so that objects put last (a snapshot
// after its index and packs) are referenced last.
func (s *Store) pushRefs(ctx context.Context, layers []ocispec.Descriptor) ([]*ref, error) {
	var refs []*ref
	for start := 0; start < len(layers); start += maxSegmentLayers {
		chunk := layers[start:min(start+maxSegmentLayers, len(layers))]
		pushed, err := s.pushRefRecovering(ctx, chunk)
		refs = append(refs, pushed...)
		if err != nil {
			return refs, err
		}
	}
	return refs, nil
}

// pushRef references layers from one new refs tag.
func (s *Store) pushRef(ctx context.Context, layers []ocispec.Descriptor) (*ref, error) {
	tag := s.nextRefTag()
	// The tag in the annotations makes every refs manifest unique, so
	// deleting one by digest never untags another.
	desc, b, err := newManifest(artifactRefs, layers, map[string]string{
		annotationObject: "refs", annotationWriter: s.writer, annotationRef: tag,
	})
	if err != nil {
		return nil, err
	}
	desc.ArtifactType = artifactRefs
	if err := s.pushManifest(ctx, desc, b, tag); err != nil {
		return nil, s.wrap("pushing "+tag, err)
	}
	return &ref{tag: tag, desc: desc, layers: layers}, nil
}

// rewrite drops the removed objects from every ref that lists them. It
// reads the refs afresh, pushes new refs tags holding what the affected
// refs keep (merged with every other ref that is not full, and every
// legacy root, so tags stay few), and only then retires the refs it read.
// A crash in between leaves objects referenced twice, or a removal not
// yet done; never an object kept by no ref.
func (s *Store) rewrite(ctx context.Context, removing map[layerKey]ocispec.Descriptor) error {
	s.forgetView()
	defer s.forgetView()
	v, err := s.loadView(ctx)
	if err != nil {
		return err
	}
	return s.merge(ctx, v, removing)
}

// compactAt is how many refs tags that are not full Compact lets
// accumulate before it merges them.
const compactAt = 2

// Compact merges refs tags that are not full into as few as possible:
// each backup adds one, and prune calls Compact, so tags stay few. A
// merge pushes the merged refs, then retires the ones it read, which
// never changed and whose objects the merged refs now hold, so adders
// racing it lose nothing. A merge racing another rewrite could bring back
// what that one dropped, so its caller holds the exclusive lock. On a
// registry that refuses DELETE, or cannot delete tags (registry 2.8), a
// retired tag stays, as a tombstone: the tags do not get fewer, but
// readers request only the live ones (they remember tombstones), so
// merging still makes every command cheaper.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.flush(ctx, false); err != nil {
		return err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.forgetView()
	defer s.forgetView()
	v, err := s.loadView(ctx)
	if err != nil {
		return err
	}
	small := 0
	for _, r := range v.refs {
		if r.legacy || len(r.layers) < maxSegmentLayers {
			small++
		}
	}
	if small < compactAt {
		return nil
	}
	return s.merge(ctx, v, nil)
}

// merge pushes what the refs that are touched by removing, not full, or
// legacy keep, in as few refs tags as possible, then retires them.
func (s *Store) merge(ctx context.Context, v *refView, removing map[layerKey]ocispec.Descriptor) error {
	var inputs, others []*ref
	for _, r := range v.refs {
		touched := slices.ContainsFunc(r.layers, func(l ocispec.Descriptor) bool {
			_, gone := removing[keyOf(l)]
			return gone
		})
		if touched || r.legacy || len(r.layers) < maxSegmentLayers {
			inputs = append(inputs, r)
		} else {
			others = append(others, r)
		}
	}
	keptElsewhere := newRefView(others).objects
	var keep []ocispec.Descriptor
	for _, r := range inputs {
		for _, l := range r.layers {
			_, gone := removing[keyOf(l)]
			_, elsewhere := keptElsewhere[keyOf(l)]
			if !gone && !elsewhere {
				keep = append(keep, l)
			}
		}
	}
	if _, err := s.pushRefs(ctx, dedupe(keep)); err != nil {
		return err
	}
	for _, r := range inputs {
		if err := s.retire(ctx, r); err != nil {
			return err
		}
	}
	s.sweepTombstones(ctx, v.tombstones)
	return nil
}

// retire removes a ref whose objects are kept by other refs (see
// retireTag).
func (s *Store) retire(ctx context.Context, r *ref) error {
	if err := s.retireTag(ctx, r.tag, r.desc); err != nil {
		return err
	}
	writer := strings.TrimPrefix(r.tag, tagRootPrefix)
	for i, seg := range r.segments {
		if err := s.retireTag(ctx, segmentTag(writer, i), seg); err != nil {
			return err
		}
	}
	return nil
}

// retireTag removes tag, which names the manifest desc, in steps of
// which a process killed between any two leaves the tag naming desc or a
// tombstone, which readers skip, and never listed without a manifest:
//
//  1. the tag is moved to a tombstone of its own;
//  2. desc is deleted by digest, so that the registry's garbage
//     collection can take what only it referenced. Deleting a manifest a
//     tag names is not one step in Distribution (it drops the manifest,
//     then untags it), and a client killed in between, which cancels
//     the request, leaves the tag listed but unreadable, which readers
//     cannot tell from a lost manifest: hence step 1;
//  3. the tag is deleted, where the registry deletes tags (OCI
//     distribution-spec 1.1, Distribution v3; not registry 2.8), which
//     is one step; elsewhere the tombstone stays, and readers remember
//     it;
//  4. the tombstone, now untagged, is deleted by digest.
//
// Where the registry refuses DELETE, step 1 is the whole of it. Where it
// refuses to move a tag (immutable tags: ECR, Harbor's rules), desc is
// deleted by digest at once, as nothing else can be done.
func (s *Store) retireTag(ctx context.Context, tag string, desc ocispec.Descriptor) error {
	tomb, err := s.pushTombstone(ctx, tag)
	if isOverwriteRefused(err) {
		return s.retireImmutable(ctx, tag, desc, err)
	}
	if err != nil {
		return s.wrap("retiring "+tag, err)
	}
	err = s.deleteManifest(ctx, desc)
	switch {
	case err == nil:
		s.recordDelete(true)
	case isNotFound(err):
		// Deleted by an earlier attempt, or never stored (a tag lost by
		// the registry, which RepairRefs retires).
	case isRefused(err):
		s.recordDelete(false)
		s.noteRefused()
		s.cache.putTombstone(tag)
		return nil
	default:
		return s.wrap("deleting "+tag, err)
	}
	s.dropTombstoneTag(ctx, tag, &tomb)
	return nil
}

// retireImmutable deletes desc by digest, which untags tag, where the
// registry would not move tag to a tombstone (err).
func (s *Store) retireImmutable(ctx context.Context, tag string, desc ocispec.Descriptor, pushErr error) error {
	s.immutableOnce.Do(func() {
		if s.opt.Logf != nil {
			s.opt.Logf("registry %s refuses to move tag %s (%v): retiring refs tags by deleting their manifests instead, which a process killed meanwhile can leave listed without one (`coffer repair refs` then removes it)", s.loc.host, tag, pushErr)
		}
	})
	err := s.deleteManifest(ctx, desc)
	switch {
	case err == nil:
		s.recordDelete(true)
		return nil
	case isNotFound(err):
		return nil
	case isRefused(err):
		s.recordDelete(false)
		return s.wrap("retiring "+tag, fmt.Errorf("the registry refuses both to move the tag (%w) and to delete its manifest (%w): allow one of them for this repository", pushErr, err))
	}
	return s.wrap("deleting "+tag, err)
}

// pushTombstone points tag at a tombstone of its own: a manifest no
// other tag names, so that a registry's collection of untagged
// manifests never takes it from under the tag (as it could one that
// all retired tags shared, untagged whenever the last of them went).
func (s *Store) pushTombstone(ctx context.Context, tag string) (ocispec.Descriptor, error) {
	tomb, b, err := newManifest(artifactTombstone, nil, map[string]string{annotationObject: "deleted", annotationRef: tag})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return tomb, s.pushManifest(ctx, tomb, b, tag)
}

// dropTombstoneTag deletes tag, which names a tombstone, where the
// registry deletes tags, and then tomb, the tombstone (nil: leave it),
// untagged now and so the registry's garbage otherwise. Whatever
// happens, the tag names a tombstone or nothing, so a failure is not an
// error: the tombstone stays, readers skip it, and a later merge tries
// again (sweepTombstones).
func (s *Store) dropTombstoneTag(ctx context.Context, tag string, tomb *ocispec.Descriptor) {
	if s.tagDeleteRefused.Load() {
		s.cache.putTombstone(tag)
		return
	}
	err := s.deleteTag(ctx, tag)
	switch {
	case err == nil:
		s.recordTagDelete(true)
		s.cache.dropTombstone(tag)
		if tomb != nil {
			_ = s.deleteManifest(ctx, *tomb)
		}
		return
	case isTagDeleteRefused(err):
		// Tried again by the next process: the registry may have been
		// upgraded, or have its delete setting changed, meanwhile.
		s.tagDeleteRefused.Store(true)
		s.recordTagDelete(false)
	case isRefused(err):
		// This credential may not delete: not the registry's doing, so
		// not recorded, but not asked again by this process.
		s.tagDeleteRefused.Store(true)
	}
	// A 404 is a tag deleted already, or a registry that took the tag
	// for a digest; either way the mark does no harm.
	s.cache.putTombstone(tag)
}

// sweepTombstones deletes tags that name tombstones (left by a registry
// that refused deletes, by a process killed before the last steps of
// retireTag, by RepairRefs, or by earlier versions), once this registry
// is known to delete tags. Each is read first: the cache's word that it
// is a tombstone is not enough to delete it.
func (s *Store) sweepTombstones(ctx context.Context, tags []string) {
	for _, tag := range tags {
		if c := s.capabilities(); c == nil || c.TagDelete != "allowed" || s.tagDeleteRefused.Load() || ctx.Err() != nil {
			return
		}
		desc, b, err := s.fetchManifest(ctx, tag)
		if err != nil {
			continue
		}
		m, err := decodeManifest(b)
		if err != nil || m.ArtifactType != artifactTombstone {
			continue
		}
		// Only a tombstone of this tag's own is deleted: earlier versions
		// gave every retired tag one with the same bytes, and deleting
		// that by digest would untag all of them, in the two steps a
		// killed process cuts apart (see retireTag).
		tomb := &desc
		if m.Annotations[annotationRef] != tag {
			tomb = nil
		}
		s.dropTombstoneTag(ctx, tag, tomb)
	}
}

// segmentTag is the tag of a legacy root's i-th segment.
func segmentTag(writer string, i int) string {
	return fmt.Sprintf("%s%s-%06d", tagSegmentPrefix, writer, i)
}

// dedupe drops later duplicates, keeping order. The same bytes stored as
// two kinds are two layers.
func dedupe(layers []ocispec.Descriptor) []ocispec.Descriptor {
	seen := make(map[layerKey]bool, len(layers))
	return slices.DeleteFunc(layers, func(l ocispec.Descriptor) bool {
		k := keyOf(l)
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// unreference deletes a pack, index object or snapshot: at once for this
// store, and for other clients at the next Flush (not Close: see Flush).
func (s *Store) unreference(ctx context.Context, kind storage.Kind, name string) error {
	// Holding flushMu keeps a flush from running while pending changes.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	key := layerKey{layerMediaType[kind], digest.NewDigestFromEncoded(digest.SHA256, name)}
	s.pendingMu.Lock()
	_, removed := s.removing[key]
	n := len(s.pending)
	s.pending = slices.DeleteFunc(s.pending, func(l ocispec.Descriptor) bool { return keyOf(l) == key })
	wasPending := len(s.pending) < n
	if wasPending {
		s.releaseHeld([]ocispec.Descriptor{{Digest: key.digest}})
	}
	s.pendingMu.Unlock()
	if removed {
		return fmt.Errorf("%s %s: %w", kind, name, storage.ErrNotFound)
	}
	desc, ok, err := s.inView(ctx, key)
	if err != nil {
		return err
	}
	if !ok && !wasPending {
		return fmt.Errorf("%s %s: %w", kind, name, storage.ErrNotFound)
	}
	if ok {
		s.pendingMu.Lock()
		s.removing[key] = desc
		s.pendingMu.Unlock()
	}
	return nil
}

// inView looks an object up in the refs, reading them again once on a
// miss, for objects other writers added since.
func (s *Store) inView(ctx context.Context, key layerKey) (ocispec.Descriptor, bool, error) {
	for attempt := range 2 {
		if attempt == 1 {
			s.forgetView()
		}
		v, err := s.loadView(ctx)
		if err != nil {
			return ocispec.Descriptor{}, false, err
		}
		if d, ok := v.objects[key]; ok {
			return d, true, nil
		}
	}
	return ocispec.Descriptor{}, false, nil
}
