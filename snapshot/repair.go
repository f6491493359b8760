package snapshot

import (
	"context"
	"fmt"
	"slices"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

// RepairOptions tune RepairSnapshots.
type RepairOptions struct {
	// DryRun finds what would be lost and writes nothing.
	DryRun bool
	// Lost receives each entry a repaired snapshot leaves out.
	Lost func(sn *Snapshot, path, reason string)
}

// RepairStats says what RepairSnapshots did.
type RepairStats struct {
	Snapshots int `json:"snapshots"` // snapshots read
	Damaged   int `json:"damaged"`   // snapshots with something missing
	Lost      int `json:"lost"`      // entries left out
	Unread    int `json:"unread"`    // snapshot objects that could not be read at all
}

// RepairedTag marks a snapshot that RepairSnapshots wrote.
const RepairedTag = "repaired"

// RepairSnapshots rewrites every snapshot whose trees or file contents are
// missing (not in the index, or in a pack the store no longer has) or
// damaged (a tree that fails authentication): a directory whose tree
// cannot be read is kept empty, a file with a missing blob is left out,
// and each is passed to opt.Lost. The rest of the snapshot stays as it
// was and restores. The new snapshot keeps the original's metadata,
// tagged "repaired", and replaces it. It needs the exclusive lock, since
// it removes the originals.
func RepairSnapshots(ctx context.Context, r *repo.Repository, opt RepairOptions) (RepairStats, error) {
	var st RepairStats
	stored := map[repo.ID]bool{}
	if err := r.Store().List(ctx, storage.KindPack, func(name string, _ int64) error {
		if id, err := repo.ParseID(name); err == nil {
			stored[id] = true
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("listing packs: %w", err)
	}
	available := func(id repo.ID) bool {
		loc, ok := r.Index().Lookup(id)
		return ok && stored[loc.Pack]
	}
	sns, err := List(ctx, r)
	if err != nil {
		// A snapshot object that cannot be read has no tree to save;
		// the others are repaired, and the error names it.
		st.Unread = len(errorsOf(err))
	}
	listErr := err
	type result struct {
		id      repo.ID
		changed bool
	}
	type fix struct {
		sn   *Snapshot
		root repo.ID
	}
	var fixes []fix
	run := func(ctx context.Context, s blobSaver) error {
		done := map[repo.ID]result{}
		var rewrite func(id repo.ID, path string, sn *Snapshot) (repo.ID, bool, error)
		rewrite = func(id repo.ID, path string, sn *Snapshot) (repo.ID, bool, error) {
			if res, ok := done[id]; ok {
				return res.id, res.changed, nil
			}
			nodes, err := LoadTree(ctx, r, id)
			if err != nil {
				if ctx.Err() != nil {
					return repo.ID{}, false, err
				}
				st.Lost++
				opt.Lost(sn, path, fmt.Sprintf("directory contents unreadable (%v); kept empty", err))
				nodes = nil
				empty, err := saveTree(ctx, s, nil)
				done[id] = result{empty, true}
				return empty, true, err
			}
			changed := false
			kept := make([]*Node, 0, len(nodes))
			for _, n := range nodes {
				p := path + n.Name
				switch n.Type {
				case TypeDir:
					sub, ch, err := rewrite(n.Subtree, p+"/", sn)
					if err != nil {
						return repo.ID{}, false, err
					}
					if ch {
						c := *n
						c.Subtree = sub
						n = &c
						changed = true
					}
				case TypeFile:
					if i := slices.IndexFunc(n.Content, func(e Extent) bool { return !e.Hole && !available(e.ID) }); i >= 0 {
						st.Lost++
						opt.Lost(sn, p, fmt.Sprintf("data blob %s is missing", n.Content[i].ID.Short()))
						changed = true
						continue
					}
				}
				kept = append(kept, n)
			}
			if !changed {
				done[id] = result{id, false}
				return id, false, nil
			}
			nid, err := saveTree(ctx, s, kept)
			done[id] = result{nid, true}
			return nid, true, err
		}
		for _, sn := range sns {
			st.Snapshots++
			root, changed, err := rewrite(sn.Tree, "/", sn)
			if err != nil {
				return err
			}
			if changed {
				st.Damaged++
				fixes = append(fixes, fix{sn, root})
			}
		}
		return nil
	}
	if opt.DryRun {
		if err := run(ctx, newDryRunSaver(r, repo.MaxBlobInPack(r.Config().PackSize))); err != nil {
			return st, err
		}
		return st, listErr
	}
	if _, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *repo.BlobSaver) error { return run(ctx, s) }); err != nil {
		return st, err
	}
	for _, f := range fixes {
		nsn := *f.sn
		nsn.Tree = f.root
		nsn.Parent = f.sn.ID
		if !slices.Contains(nsn.Tags, RepairedTag) {
			nsn.Tags = append(slices.Clone(nsn.Tags), RepairedTag)
		}
		if err := Save(ctx, r, &nsn); err != nil {
			return st, err
		}
		if _, err := Remove(ctx, r, []*Snapshot{f.sn}); err != nil {
			return st, err
		}
	}
	return st, listErr
}

// errorsOf unpacks errors.Join.
func errorsOf(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
