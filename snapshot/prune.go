package snapshot

import (
	"context"
	"fmt"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

// Prune runs repo's prune with what the snapshots use.
func Prune(ctx context.Context, r *repo.Repository, opt repo.PruneOptions) (repo.PruneStats, error) {
	opt.MarkUsed = UsedBlobs(r)
	return r.Prune(ctx, opt)
}

// UsedBlobs returns a repo.PruneOptions.MarkUsed for r's snapshots: each
// call adds the tree and data blobs of the snapshots it has not walked in
// an earlier call. A snapshot or tree that cannot be read stops it: what
// it needs cannot be known, so nothing may be deleted.
func UsedBlobs(r *repo.Repository) func(context.Context, map[repo.ID]struct{}) error {
	walked := map[repo.ID]bool{}
	trees := map[repo.ID]bool{}
	return func(ctx context.Context, used map[repo.ID]struct{}) error {
		ids, err := r.ListObjects(ctx, storage.KindSnapshot)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if walked[id] {
				continue
			}
			sn, err := Load(ctx, r, id)
			if err != nil {
				return fmt.Errorf("%w; prune needs every snapshot (forget the damaged one, or run `coffer repair snapshots`)", err)
			}
			if err := markTree(ctx, r, sn.Tree, trees, used); err != nil {
				return fmt.Errorf("snapshot %s: %w; prune needs every tree (run `coffer check`)", id.Short(), err)
			}
			walked[id] = true
		}
		return nil
	}
}

func markTree(ctx context.Context, r *repo.Repository, id repo.ID, trees map[repo.ID]bool, used map[repo.ID]struct{}) error {
	if trees[id] {
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
	used[id] = struct{}{}
	for _, part := range tb.Parts {
		used[part] = struct{}{}
	}
	nodes, err := LoadTree(ctx, r, id)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		switch n.Type {
		case TypeDir:
			if err := markTree(ctx, r, n.Subtree, trees, used); err != nil {
				return err
			}
		case TypeFile:
			for _, e := range n.Content {
				if !e.Hole {
					used[e.ID] = struct{}{}
				}
			}
		}
	}
	trees[id] = true
	return nil
}
