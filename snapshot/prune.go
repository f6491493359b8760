package snapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

// Prune runs repo's prune with what the snapshots use. First it
// removes the snapshots that a forget recorded as removed but could not
// delete (a retention, S3 Object Lock, kept them, or the forget was
// interrupted), so that the data only they use goes too; those still
// retained stay, counted in the stats with their dates.
func Prune(ctx context.Context, r *repo.Repository, opt repo.PruneOptions) (repo.PruneStats, error) {
	var retained *RetainedError
	if !opt.DryRun && r.HoldsExclusiveLock() {
		var err error
		if retained, err = removeForgotten(ctx, r, opt.Logf); err != nil {
			return repo.PruneStats{}, err
		}
	}
	opt.MarkUsed = UsedBlobs(r)
	st, err := r.Prune(ctx, opt)
	if retained != nil {
		st.RetainedSnapshots = len(retained.Snapshots)
		st.Retained(retained.From)
		st.Retained(retained.Until)
	}
	return st, err
}

// removeForgotten removes the snapshots still listed that removal
// records name, and returns those a retention keeps, if any.
func removeForgotten(ctx context.Context, r *repo.Repository, logf func(string, ...any)) (*RetainedError, error) {
	recorded, err := r.RecordedRemovals(ctx)
	if err != nil && ctx.Err() == nil && logf != nil {
		// Removing fewer snapshots is safe: prune goes on.
		logf("reading the records of removed snapshots: %v", err)
	}
	if len(recorded) == 0 {
		return nil, ctx.Err()
	}
	ids, err := r.ListObjects(ctx, storage.KindSnapshot)
	if err != nil {
		return nil, err
	}
	var retained *RetainedError
	for _, id := range ids {
		if !recorded[id] {
			continue
		}
		err := r.RemoveObject(ctx, storage.KindSnapshot, id)
		if until, ok := storage.RetainedUntil(err); ok {
			if retained == nil {
				retained = &RetainedError{}
			}
			retained.add(&Snapshot{ID: id}, until)
			continue
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		if err == nil && logf != nil {
			logf("removed snapshot %s, which a forget removed but could not delete then", id.Short())
		}
	}
	return retained, storage.Flush(ctx, r.Store())
}

// UsedBlobs returns a repo.PruneOptions.MarkUsed for r's snapshots: each
// call marks the tree and data blobs of the snapshots it has not walked in
// an earlier call. A snapshot or tree that cannot be read stops it: what
// it needs cannot be known, so nothing may be deleted.
func UsedBlobs(r *repo.Repository) func(context.Context, func(repo.ID)) error {
	walked := map[repo.ID]bool{}
	var trees *repo.BlobSet
	return func(ctx context.Context, mark func(repo.ID)) error {
		ids, err := r.ListObjects(ctx, storage.KindSnapshot)
		if err != nil {
			return err
		}
		if trees == nil {
			// Made now, when the caller has loaded the index: trees
			// it numbers take a bit each.
			trees = repo.NewBlobSet(r.Index().Numbers())
		}
		for _, id := range ids {
			if walked[id] {
				continue
			}
			sn, err := Load(ctx, r, id)
			if err != nil {
				return fmt.Errorf("%w; prune needs every snapshot (forget the damaged one, or run `coffer repair snapshots`)", err)
			}
			if err := markTree(ctx, r, sn.Tree, trees, mark); err != nil {
				return fmt.Errorf("snapshot %s: %w; prune needs every tree (run `coffer check`)", id.Short(), err)
			}
			walked[id] = true
		}
		return nil
	}
}

func markTree(ctx context.Context, r *repo.Repository, id repo.ID, trees *repo.BlobSet, mark func(repo.ID)) error {
	if trees.Has(id) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// A huge directory is stored in parts: the parts are blobs it uses.
	tb, err := loadTreeBlob(ctx, r, id)
	if err != nil {
		return err
	}
	mark(id)
	for _, part := range tb.Parts {
		mark(part)
	}
	nodes, err := LoadTree(ctx, r, id)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		switch n.Type {
		case TypeDir:
			if err := markTree(ctx, r, n.Subtree, trees, mark); err != nil {
				return err
			}
		case TypeFile:
			for _, e := range n.Content {
				if !e.Hole {
					mark(e.ID)
				}
			}
		}
	}
	trees.Add(id)
	return nil
}
