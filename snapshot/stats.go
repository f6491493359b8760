package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cofferhq/coffer/repo"
)

// Stats is what `coffer info` and the UI's overview report: the index's
// counts (repo.Stats) and what only the snapshots know.
type Stats struct {
	repo.Stats
	Snapshots    int
	LogicalBytes int64 // the snapshots' sizes added up, as if nothing were shared
}

// RepositoryStats counts r's loaded index and the snapshots sns, which
// the caller has listed (the UI keeps its own listing).
func RepositoryStats(r *repo.Repository, sns []*Snapshot) Stats {
	s := Stats{Stats: r.Stats(), Snapshots: len(sns)}
	for _, sn := range sns {
		s.LogicalBytes += sn.Summary.Size
	}
	return s
}

// DedupRatio returns LogicalBytes / UniqueBytes, or 0 when no data is
// stored.
func (s Stats) DedupRatio() float64 {
	if s.UniqueBytes == 0 {
		return 0
	}
	return float64(s.LogicalBytes) / float64(s.UniqueBytes)
}

// SnapshotStats is what one snapshot holds and what it alone keeps
// stored (`coffer stats snap`).
type SnapshotStats struct {
	Snapshot    *Snapshot
	Files       int64 // regular files (each hard-linked name counted)
	Dirs        int64
	Others      int64 // symlinks, devices, fifos, sockets
	RestoreSize int64 // bytes a restore writes: the files' sizes, holes included
	Blobs       int64 // distinct blobs it uses, trees included
	RawBytes    int64 // their plaintext
	StoredBytes int64 // their sealed size in packs (compressed, encrypted)
	// UniqueBlobs, UniqueRaw and UniqueStored count the blobs no other
	// snapshot uses: what forgetting this snapshot alone would let prune
	// delete (before packs are rewritten, which changes stored sizes a
	// little).
	UniqueBlobs  int64
	UniqueRaw    int64
	UniqueStored int64
}

// SnapshotsStats returns the statistics of each of sns, comparing their
// blobs with those of every snapshot in all (which holds sns) to tell
// which are theirs alone. It reads every tree of every snapshot (from the
// tree cache, when there is one).
func SnapshotsStats(ctx context.Context, r *repo.Repository, sns, all []*Snapshot) ([]SnapshotStats, error) {
	users := make(map[repo.ID]int32) // blob -> how many snapshots use it
	blobsOf := make(map[repo.ID]map[repo.ID]repo.BlobType, len(sns))
	for _, sn := range sns {
		blobsOf[sn.ID] = nil
	}
	out := make([]SnapshotStats, 0, len(sns))
	for _, sn := range all {
		blobs := make(map[repo.ID]repo.BlobType)
		if err := treeBlobs(ctx, r, sn.Tree, blobs); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
		}
		for id := range blobs {
			users[id]++
		}
		if _, wanted := blobsOf[sn.ID]; !wanted {
			continue
		}
		blobsOf[sn.ID] = blobs
		st := SnapshotStats{Snapshot: sn}
		// Entries are counted under the base, as the backup counted them
		// (the directories above it are only the way there).
		base, _, err := Resolve(ctx, r, sn, "")
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
		}
		count := func(n *Node) {
			switch n.Type {
			case TypeFile:
				st.Files++
				st.RestoreSize += n.Size
			case TypeDir:
				st.Dirs++
			default:
				st.Others++
			}
		}
		count(base)
		if base.Type == TypeDir {
			err := Walk(ctx, r, "", base.Subtree, func(_ string, n *Node) error { count(n); return nil })
			if err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
			}
		}
		out = append(out, st)
	}
	for i := range out {
		st := &out[i]
		for id := range blobsOf[st.Snapshot.ID] {
			loc, ok := r.Index().Lookup(id)
			if !ok {
				return nil, fmt.Errorf("snapshot %s: blob %s: %w", st.Snapshot.ID.Short(), id.Short(), repo.ErrBlobNotFound)
			}
			st.Blobs++
			st.RawBytes += int64(loc.RawLength)
			st.StoredBytes += int64(loc.Length)
			if users[id] == 1 {
				st.UniqueBlobs++
				st.UniqueRaw += int64(loc.RawLength)
				st.UniqueStored += int64(loc.Length)
			}
		}
	}
	return out, nil
}

// treeBlobs adds to blobs, with their types, the tree blob id, the tree
// blobs below it (parts of large directories included) and the data blobs
// of its files. A tree already in blobs is not read again.
//
// It reads a level of directories at a time, with the repository's
// LoadTrees when it has one (so a cold walk costs a request per pack and
// level, not one per directory), else one tree at a time.
func treeBlobs(ctx context.Context, r BlobLoader, id repo.ID, blobs map[repo.ID]repo.BlobType) error {
	if _, seen := blobs[id]; seen {
		return nil // the same directory again
	}
	blobs[id] = repo.BlobTree
	level := []repo.ID{id}
	var mu sync.Mutex // blobs and next, from LoadTrees's goroutines
	for len(level) > 0 {
		var next []repo.ID
		visit := func(tree repo.ID, plain []byte) error {
			tb, err := decodeTree(plain)
			if err != nil {
				if errors.Is(err, repo.ErrNewerFormat) {
					return fmt.Errorf("tree %s: %w", tree.Short(), err)
				}
				return &repo.IntegrityError{Kind: "tree", Name: tree.String(), Err: err}
			}
			mu.Lock()
			defer mu.Unlock()
			add := func(sub repo.ID) {
				if _, seen := blobs[sub]; !seen {
					blobs[sub] = repo.BlobTree
					next = append(next, sub)
				}
			}
			for _, part := range tb.Parts {
				add(part)
			}
			for _, n := range tb.Nodes {
				for _, e := range n.Content {
					if !e.Hole {
						blobs[e.ID] = repo.BlobData
					}
				}
				if n.Type == TypeDir && !n.Subtree.IsZero() {
					add(n.Subtree)
				}
			}
			return nil
		}
		if tl, ok := r.(interface {
			LoadTrees(context.Context, []repo.ID, func(repo.ID, []byte) error) error
		}); ok {
			if err := tl.LoadTrees(ctx, level, visit); err != nil {
				return err
			}
		} else {
			for _, tree := range level {
				if err := ctx.Err(); err != nil {
					return err
				}
				plain, err := r.LoadBlob(ctx, repo.BlobTree, tree)
				if err != nil {
					return err
				}
				if err := visit(tree, plain); err != nil {
					return err
				}
			}
		}
		level = next
	}
	return nil
}
