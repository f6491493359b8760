package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

// SyncProgress is told how a sync advances, in blobs and their stored
// bytes. Its methods may be called from several goroutines.
type SyncProgress interface {
	Total(blobs, bytes int64)
	Processed(blobs, bytes int64)
}

type nopSyncProgress struct{}

func (nopSyncProgress) Total(int64, int64)     {}
func (nopSyncProgress) Processed(int64, int64) {}

// SyncStats says what a sync did.
type SyncStats struct {
	Copied  []*Snapshot // the snapshots stored in the destination, as stored there
	Skipped []*Snapshot // the source's snapshots the destination had already
	// SameKeys says the two repositories share master keys (`create
	// -from`): packs and snapshots were copied as they are. Otherwise
	// every blob was decrypted and sealed again with the destination's
	// keys, and its trees rewritten for the new blob ids.
	SameKeys      bool
	PacksCopied   int   // packs copied as they are (uploaded or mounted)
	PacksMounted  int   // of those, packs the store took without their bytes (storage.Mounter)
	BlobsCopied   int64 // blobs decoded and stored again, one by one
	BlobsPresent  int64 // blobs the snapshots use that the destination had already
	BytesRead     int64 // bytes read from the source: packs copied whole and blobs
	Saved         repo.SaveStats
	BytesUploaded int64 // pack bytes sent to the destination: packs written, mounted ones not counted
}

// Sync copies snapshots from src to dst, with every blob they use that
// dst lacks, and returns what it did. Snapshots dst has already (the same
// snapshot, or a copy of it, see Snapshot.Original) are skipped. dst must
// be locked for adding (repo.LockShared) and have its index loaded, as
// for a backup; src needs its index loaded.
//
// When the two share master keys (repo.SameKeys), a pack whose blobs are
// all wanted is copied as it is (or mounted, when the destination store
// can, storage.Mounter), other blobs one by one, and the snapshot objects
// keep their ids. Otherwise blob ids differ between the two (they are
// keyed), so data blobs are decrypted and stored under the destination's
// ids, trees are rewritten to name them, and each copied snapshot records
// the id of the one it copies in Original.
//
// Nothing is visible in dst until a snapshot is stored, after every blob
// it uses; an interrupted sync leaves packs that the next one adopts
// (repo.Repository.WithBlobSaver), so it sends only the rest.
func Sync(ctx context.Context, src, dst *repo.Repository, sns []*Snapshot, progress SyncProgress) (*SyncStats, error) {
	if progress == nil {
		progress = nopSyncProgress{}
	}
	stats := &SyncStats{SameKeys: repo.SameKeys(src, dst)}
	have, err := List(ctx, dst)
	if err != nil && !errors.Is(err, repo.ErrCorrupt) {
		return stats, err
	}
	// A damaged snapshot in dst only means that one may be sent again.
	origins := make(map[repo.ID]bool, len(have))
	for _, sn := range have {
		origins[sn.Origin()] = true
	}
	var send []*Snapshot
	for _, sn := range sns {
		if origins[sn.Origin()] {
			stats.Skipped = append(stats.Skipped, sn)
			continue
		}
		origins[sn.Origin()] = true // named twice on the command line
		send = append(send, sn)
	}
	slices.SortFunc(send, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	if len(send) == 0 {
		return stats, nil
	}
	s := &syncer{src: src, dst: dst, progress: progress, stats: stats}
	if stats.SameKeys {
		err = s.copySameKeys(ctx, send)
	} else {
		err = s.copyReencrypting(ctx, send)
	}
	return stats, err
}

// Origin is the id of the snapshot sn is a copy of (Original), or its own:
// what tells whether a repository has a snapshot already.
func (sn *Snapshot) Origin() repo.ID {
	if !sn.Original.IsZero() {
		return sn.Original
	}
	return sn.ID
}

type syncer struct {
	src, dst *repo.Repository
	progress SyncProgress
	stats    *SyncStats
	mu       sync.Mutex // stats, from the copy workers
	// mountedBytes counts the packs the destination mounted, which are
	// in its pack bytes but were not uploaded.
	mountedBytes int64
}

// syncWorkers is how many packs are copied at once: the destination's
// upload concurrency decides the pace.
const syncWorkers = 4

// wantedBlobs reads every tree of sns in src once and returns the blobs
// they use, tree blobs (with the parts of large directories) included,
// that keep selects.
func (s *syncer) wantedBlobs(ctx context.Context, sns []*Snapshot, keep func(repo.BlobType, repo.ID) bool) (map[repo.ID]repo.BlobType, error) {
	used := make(map[repo.ID]repo.BlobType)
	for _, sn := range sns {
		if err := treeBlobs(ctx, s.src, sn.Tree, used); err != nil {
			return nil, fmt.Errorf("reading the trees of snapshot %s: %w", sn.ID.Short(), err)
		}
	}
	for id, t := range used {
		if !keep(t, id) {
			delete(used, id)
		}
	}
	return used, nil
}

// byPack groups blobs by the source pack that holds them.
func (s *syncer) byPack(blobs map[repo.ID]repo.BlobType) (map[repo.ID][]repo.BlobRef, int64, error) {
	packs := make(map[repo.ID][]repo.BlobRef)
	var bytes int64
	for id, t := range blobs {
		loc, ok := s.src.Index().Lookup(id)
		if !ok {
			return nil, 0, fmt.Errorf("%s blob %s: %w", t, id.Short(), repo.ErrBlobNotFound)
		}
		packs[loc.Pack] = append(packs[loc.Pack], repo.BlobRef{Type: t, ID: id})
		bytes += int64(loc.Length)
	}
	return packs, bytes, nil
}

// copySameKeys copies the packs and blobs the snapshots need, then the
// snapshot objects as they are.
func (s *syncer) copySameKeys(ctx context.Context, sns []*Snapshot) error {
	var present int64
	wanted, err := s.wantedBlobs(ctx, sns, func(_ repo.BlobType, id repo.ID) bool {
		if s.dst.Index().Has(id) {
			present++
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	s.stats.BlobsPresent = present
	packs, total, err := s.byPack(wanted)
	if err != nil {
		return err
	}
	s.progress.Total(int64(len(wanted)), total)
	// A pack all of whose blobs are wanted is copied as it is; from the
	// others only the wanted blobs are, so that the destination does not
	// get blobs it would have to prune.
	candidates := make(map[repo.ID]bool, len(packs))
	for p := range packs {
		candidates[p] = true
	}
	entries := s.src.Index().PackEntries(candidates)

	s.stats.Saved, err = s.dst.WithBlobSaver(ctx, func(ctx context.Context, bs *repo.BlobSaver) error {
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(syncWorkers)
		for pack, refs := range packs {
			g.Go(func() error {
				// Blobs of packs an interrupted sync stored are here
				// already (the saver adopted their packs).
				all := len(refs)
				refs = slices.DeleteFunc(refs, func(r repo.BlobRef) bool { return bs.Has(r.ID) })
				if len(refs) == 0 {
					return nil
				}
				size, known := s.src.Index().PackSize(pack)
				if known && len(refs) == all && len(entries[pack]) == all {
					return s.copyPack(ctx, bs, pack, size, entries[pack])
				}
				return s.copyBlobs(ctx, pack, refs, func(ref repo.BlobRef, plain []byte) error {
					_, err := bs.SaveWithID(ctx, ref.Type, ref.ID, plain)
					return err
				})
			})
		}
		return g.Wait()
	})
	s.stats.BytesUploaded = s.stats.Saved.PackBytes - s.mountedBytes
	if err != nil {
		return err
	}
	for _, sn := range sns {
		if err := s.dst.CopyObject(ctx, s.src, storage.KindSnapshot, sn.ID); err != nil {
			return fmt.Errorf("copying snapshot %s: %w", sn.ID.Short(), err)
		}
		copied := *sn
		if err := remember(ctx, s.dst, &copied); err != nil {
			return err
		}
		s.stats.Copied = append(s.stats.Copied, &copied)
	}
	return nil
}

// copyPack copies one pack as it is.
func (s *syncer) copyPack(ctx context.Context, bs *repo.BlobSaver, pack repo.ID, size int64, entries []repo.PackEntry) error {
	how, err := bs.CopyPack(ctx, s.src, pack, size, entries)
	if err != nil {
		return err
	}
	var stored int64
	for _, e := range entries {
		stored += int64(e.Length)
	}
	s.mu.Lock()
	s.stats.PacksCopied++
	if how == repo.PackMounted {
		s.stats.PacksMounted++
		s.mountedBytes += size
	} else {
		s.stats.BytesRead += size
	}
	s.mu.Unlock()
	s.progress.Processed(int64(len(entries)), stored)
	return nil
}

// copyBlobs reads the blobs refs of one source pack, authenticated, and
// hands each to save.
func (s *syncer) copyBlobs(ctx context.Context, pack repo.ID, refs []repo.BlobRef, save func(repo.BlobRef, []byte) error) error {
	return s.src.LoadBlobs(ctx, pack, refs, func(ref repo.BlobRef, plain []byte) error {
		if err := save(ref, plain); err != nil {
			return err
		}
		loc, _ := s.src.Index().Lookup(ref.ID)
		s.mu.Lock()
		s.stats.BlobsCopied++
		s.stats.BytesRead += int64(loc.Length)
		s.mu.Unlock()
		s.progress.Processed(1, int64(loc.Length))
		return nil
	})
}

// copyReencrypting copies the snapshots into a repository with other
// keys: data blobs are stored under the destination's ids, and trees
// rewritten bottom up to name them.
func (s *syncer) copyReencrypting(ctx context.Context, sns []*Snapshot) error {
	data, err := s.wantedBlobs(ctx, sns, func(t repo.BlobType, _ repo.ID) bool { return t == repo.BlobData })
	if err != nil {
		return err
	}
	packs, total, err := s.byPack(data)
	if err != nil {
		return err
	}
	s.progress.Total(int64(len(data)), total)
	newID := make(map[repo.ID]repo.ID, len(data)) // source blob id -> destination's
	trees := make(map[repo.ID]repo.ID)
	roots := make([]repo.ID, len(sns))
	s.stats.Saved, err = s.dst.WithBlobSaver(ctx, func(ctx context.Context, bs *repo.BlobSaver) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(syncWorkers)
		for pack, refs := range packs {
			g.Go(func() error {
				return s.copyBlobs(gctx, pack, refs, func(ref repo.BlobRef, plain []byte) error {
					id, added, err := bs.Save(gctx, ref.Type, plain)
					if err != nil {
						return err
					}
					s.mu.Lock()
					newID[ref.ID] = id
					if !added {
						s.stats.BlobsPresent++
					}
					s.mu.Unlock()
					return nil
				})
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for i, sn := range sns {
			if roots[i], err = s.rewriteTree(ctx, bs, sn.Tree, newID, trees); err != nil {
				return fmt.Errorf("rewriting the trees of snapshot %s: %w", sn.ID.Short(), err)
			}
		}
		return nil
	})
	s.stats.BytesUploaded = s.stats.Saved.PackBytes
	if err != nil {
		return err
	}
	copies := make(map[repo.ID]repo.ID, len(sns)) // source snapshot id -> its copy's
	for i, sn := range sns {
		c := *sn
		c.Tree, c.Original, c.Parent = roots[i], sn.Origin(), copies[sn.Parent]
		if err := Save(ctx, s.dst, &c); err != nil {
			return fmt.Errorf("storing the copy of snapshot %s: %w", sn.ID.Short(), err)
		}
		copies[sn.ID] = c.ID
		s.stats.Copied = append(s.stats.Copied, &c)
	}
	return nil
}

// rewriteTree stores src's tree id again in the destination, with every
// data blob and subtree renamed to the destination's ids, and returns its
// new id. done remembers trees already rewritten.
func (s *syncer) rewriteTree(ctx context.Context, bs *repo.BlobSaver, id repo.ID, newID, done map[repo.ID]repo.ID) (repo.ID, error) {
	if nid, ok := done[id]; ok {
		return nid, nil
	}
	nodes, err := LoadTree(ctx, s.src, id)
	if err != nil {
		return repo.ID{}, err
	}
	out := make([]*Node, len(nodes))
	for i, n := range nodes {
		c := *n
		if len(n.Content) > 0 {
			c.Content = slices.Clone(n.Content)
			for j, e := range c.Content {
				if e.Hole {
					continue
				}
				nid, ok := newID[e.ID]
				if !ok {
					return repo.ID{}, fmt.Errorf("data blob %s was not copied", e.ID.Short())
				}
				c.Content[j].ID = nid
			}
		}
		if n.Type == TypeDir && !n.Subtree.IsZero() {
			if c.Subtree, err = s.rewriteTree(ctx, bs, n.Subtree, newID, done); err != nil {
				return repo.ID{}, err
			}
		}
		out[i] = &c
	}
	nid, err := saveTree(ctx, bs, out)
	if err != nil {
		return repo.ID{}, err
	}
	done[id] = nid
	return nid, nil
}

// remember makes a snapshot copied as it is visible to every client of
// dst, and has dst remember it, as Save does for a new one.
func remember(ctx context.Context, dst *repo.Repository, sn *Snapshot) error {
	if err := storage.Flush(ctx, dst.Store()); err != nil {
		return fmt.Errorf("storing snapshot %s: %w", sn.ID.Short(), err)
	}
	dst.RememberSnapshot(sn.sighting())
	return nil
}
