package snapshot

// The blob workers and tree savers, the backup's last stages: they store
// the chunks the readers cut, and the trees of directories whose entries
// are all complete.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cofferhq/coffer/repo"
)

// fileJob is one file to read, in directory dir. remaining counts the
// reader's hold plus one per chunk not yet stored; whoever drops it to
// zero completes the file.
type fileJob struct {
	path      string
	node      *Node
	dir       *dirJob
	mu        sync.Mutex
	content   []Extent
	remaining atomic.Int64
}

// addExtent appends e to the file's content and returns its index.
func (f *fileJob) addExtent(e Extent) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.content = append(f.content, e)
	return len(f.content) - 1
}

// release drops one hold; the last one completes the file's node, and
// drops the file's hold on its directory.
func (f *fileJob) release(ctx context.Context, a *archiver) error {
	if f.remaining.Add(-1) != 0 {
		return nil
	}
	n := f.node
	n.Content = f.content
	if n.Error != "" {
		// A file that failed part-way keeps no content, rather than a
		// prefix that would look like the whole file.
		n.Content = nil
	} else {
		// The file may have changed size while being read; the snapshot
		// records what was read, so size and content always agree.
		n.Size = 0
		for _, e := range f.content {
			n.Size += e.Size
		}
	}
	a.size.Add(n.Size)
	return a.releaseDir(ctx, f.dir)
}

// blobJob is one chunk of a file, for the blob workers.
type blobJob struct {
	file *fileJob
	idx  int     // index in file.content
	buf  *[]byte // pooled; data is (*buf)[:n]
	n    int
}

// saveBlobs is a blob worker.
func (a *archiver) saveBlobs(ctx context.Context) error {
	for job := range a.blobCh {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, _, err := a.saver.Save(ctx, repo.BlobData, (*job.buf)[:job.n])
		a.bufs.Put(job.buf)
		if err != nil {
			return fmt.Errorf("storing %s: %w", job.file.path, err)
		}
		job.file.mu.Lock()
		job.file.content[job.idx].ID = id
		job.file.mu.Unlock()
		if err := job.file.release(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// saveTrees is a tree saver: it stores the tree of each complete
// directory, and then that of its parent if this was the parent's last
// entry. A tree saver stores the parent itself rather than queueing it,
// since with every tree saver waiting to queue a parent none would be left
// to take one.
func (a *archiver) saveTrees(ctx context.Context) error {
	for d := range a.treeCh {
		for d != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			id, err := a.treeOf(ctx, d)
			if err != nil {
				return fmt.Errorf("storing directory %s: %w", d.path, err)
			}
			d.node.Subtree = id
			switch {
			case d.parent == nil:
				close(d.done)
				d = nil
			case d.parent.remaining.Add(-1) == 0:
				d = d.parent
			default:
				d = nil
			}
		}
	}
	return nil
}

// treeOf stores d's tree and returns its id. A directory whose entries
// all came out as the parent snapshot recorded them (most of them, in a
// backup where little changed) has the parent's tree: its id is used as
// it is, without encoding and hashing the entries again, which was 12-18%
// of the CPU time of a backup of 300,000 unchanged files
// (docs/benchmarks.md). The parent's tree blobs must be indexed in packs
// no prune plan condemns, as the content of unchanged files must
// (unchangedFile): the backup then never refers to a pack a prune may
// delete (docs/design.md, "Deleting data: prune").
func (a *archiver) treeOf(ctx context.Context, d *dirJob) (repo.ID, error) {
	if d.prev != nil && a.reusable(d.prevTree, d.prev.parts) && sameNodes(d.children, d.prev.nodes) {
		return d.prevTree, nil
	}
	return saveTree(ctx, a.saver, d.children)
}

// reusable reports whether a tree and its parts may be referred to.
func (a *archiver) reusable(tree repo.ID, parts []repo.ID) bool {
	x := a.repo.Index()
	return x.Has(tree) && !slices.ContainsFunc(parts, func(id repo.ID) bool { return !x.Has(id) })
}
