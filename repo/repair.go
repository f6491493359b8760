package repo

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/storage"
)

// RepairIndexStats says what RepairIndex did.
type RepairIndexStats struct {
	Packs        int `json:"packs"`         // packs whose trailers were read into the new index
	Blobs        int `json:"blobs"`         // blobs they hold
	Damaged      int `json:"damaged"`       // packs whose trailer could not be read (left out)
	OldObjects   int `json:"old_objects"`   // index objects replaced
	IndexObjects int `json:"index_objects"` // index objects written
}

// RepairIndex rebuilds the index from the packs' trailers, which list
// every blob a pack holds: new index objects list every stored pack whose
// trailer authenticates, then every index object that was there before is
// removed. Packs whose trailers fail are passed to problem and left out
// (`check -read-data` names them). It needs the exclusive lock, since it
// removes index objects.
func (r *Repository) RepairIndex(ctx context.Context, problem func(error)) (RepairIndexStats, error) {
	var st RepairIndexStats
	if r.lock == nil || r.lock.info.Kind != LockExclusive {
		return st, fmt.Errorf("repair index needs the repository's exclusive lock")
	}
	// The old objects are listed first: whatever a backup adds from now
	// on lists packs that are stored already, and stays.
	old, err := r.ListObjects(ctx, storage.KindIndex)
	if err != nil {
		return st, err
	}
	type pack struct {
		id   ID
		size int64
	}
	var packs []pack
	if err := r.store.List(ctx, storage.KindPack, func(name string, size int64) error {
		if id, err := ParseID(name); err == nil {
			packs = append(packs, pack{id, size})
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("listing packs: %w", err)
	}
	infos := make([]PackInfo, len(packs))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, p := range packs {
		g.Go(func() error {
			entries, err := r.ReadPackTrailer(gctx, p.id, p.size)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				mu.Lock()
				st.Damaged++
				problem(fmt.Errorf("pack %s left out of the index: %w", p.id.Short(), err))
				mu.Unlock()
				return nil
			}
			infos[i] = PackInfo{ID: p.id, Size: p.size, Entries: entries}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	var keep []PackInfo
	for _, info := range infos {
		if info.Entries != nil {
			keep = append(keep, info)
			st.Packs++
			st.Blobs += len(info.Entries)
		}
	}
	for len(keep) > 0 {
		n, entries := 0, 0
		for n < len(keep) && (n == 0 || entries+len(keep[n].Entries) <= maxIndexEntries) {
			entries += len(keep[n].Entries)
			n++
		}
		if err := r.saveIndex(ctx, keep[:n]); err != nil {
			return st, err
		}
		st.IndexObjects++
		keep = keep[n:]
	}
	if err := storage.Flush(ctx, r.store); err != nil {
		return st, err
	}
	for _, id := range old {
		if err := r.RemoveObject(ctx, storage.KindIndex, id); err != nil {
			return st, err
		}
		st.OldObjects++
	}
	return st, storage.Flush(ctx, r.store)
}

// RepairRefs retires the store's references whose manifests are gone
// (storage.RefsRepairer), re-publishing what the local cache knows they
// held. A store without such references has nothing to repair: it fails
// with storage.ErrNotSupported. Call it under the exclusive lock.
func (r *Repository) RepairRefs(ctx context.Context, force bool, report func(ref string, kept, lost int, retired bool)) (int, error) {
	rr, ok := r.store.(storage.RefsRepairer)
	if !ok {
		return 0, fmt.Errorf("%s keeps no refs tags (registry repositories do): %w", r.store.Location(), storage.ErrNotSupported)
	}
	return rr.RepairRefs(ctx, force, report)
}
