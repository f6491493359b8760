package oci

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RepairRefs retires the refs tags the registry lists but has no
// manifest for (see DanglingRefsError), so that listings read whole
// again. Before it retires such a tag, it re-publishes in new refs tags
// the objects this client's cache knows the tag held and the registry
// still has. A tag the cache never read is left as it is unless force:
// the cache of another client may still know what it held, and once it
// is retired, the registry's garbage collection takes its objects.
// report is called once per tag with how many objects were re-published
// and how many are gone (-1 for both when the cache never read the tag),
// and whether the tag was retired. It returns the number retired. Run it
// under the repository's exclusive lock, as `coffer repair refs` does.
func (s *Store) RepairRefs(ctx context.Context, force bool, report func(tag string, kept, lost int, retired bool)) (int, error) {
	dangling, err := s.danglingRefs(ctx)
	if err != nil || len(dangling) == 0 {
		return 0, err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	known := s.cache.refs()
	retired := 0
	for _, tag := range dangling {
		kept, lost := -1, -1
		if m, err := decodeManifest(known[tag].Manifest); known[tag].Manifest != nil && err == nil {
			layers := objectLayers(m.Layers)
			missing, err := s.missingLayers(ctx, layers)
			if err != nil {
				return retired, err
			}
			keep := slices.DeleteFunc(layers, func(l ocispec.Descriptor) bool { return missing[l.Digest] })
			if len(keep) > 0 {
				if _, err := s.pushRefs(ctx, keep); err != nil {
					return retired, err
				}
			}
			kept, lost = len(keep), len(missing)
		}
		if kept < 0 && !force {
			report(tag, kept, lost, false)
			continue
		}
		// A tombstone under the tag, which readers skip, then the tag
		// itself where the registry deletes tags: deleting by digest
		// needs the manifest the registry no longer has.
		tomb, err := s.pushTombstone(ctx, tag)
		switch {
		case isOverwriteRefused(err):
			// Immutable tags: only deleting the tag itself is left.
			if derr := s.deleteTag(ctx, tag); derr != nil && !isNotFound(derr) {
				return retired, s.wrap("retiring "+tag, fmt.Errorf("the registry refuses both to move the tag (%w) and to delete it (%w)", err, derr))
			}
		case err != nil:
			return retired, s.wrap("retiring "+tag, err)
		default:
			s.dropTombstoneTag(ctx, tag, &tomb)
		}
		retired++
		report(tag, kept, lost, true)
	}
	s.forgetView()
	return retired, nil
}

// danglingRefs returns the refs tags that are listed but have no manifest,
// in two listings a pause apart: a tag a merge retires in between is not
// listed the second time.
func (s *Store) danglingRefs(ctx context.Context) ([]string, error) {
	var candidates []string
	for pass := 0; pass < 2; pass++ {
		all, err := s.listTags(ctx)
		if err != nil {
			return nil, s.wrap("listing tags", err)
		}
		var unreadable []string
		for _, tag := range all {
			// Legacy roots too: a listing that cannot read one waits on it
			// as on a refs tag (readRefs).
			if !strings.HasPrefix(tag, tagRefsPrefix) && !strings.HasPrefix(tag, tagRootPrefix) || pass == 1 && !slices.Contains(candidates, tag) {
				continue
			}
			_, _, err := s.fetchManifest(ctx, tag)
			switch {
			case isNotFound(err):
				unreadable = append(unreadable, tag)
			case err != nil:
				return nil, s.wrap("reading "+tag, err)
			}
		}
		candidates = unreadable
		if len(candidates) == 0 || pass == 1 {
			break
		}
		select {
		case <-time.After(min(2*time.Second, s.settle)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	slices.Sort(candidates)
	return candidates, nil
}
