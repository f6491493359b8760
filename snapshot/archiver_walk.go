package snapshot

// The walk, the backup's first stage: it lists each backed-up directory
// tree depth first, decides from each entry's metadata what must be read,
// and hands those files to the readers.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/repo"
)

// dirJob is a directory being backed up. Its tree is stored once the walk
// has listed it and every entry is complete: remaining counts the walk's
// hold plus one per file being read and per subdirectory not yet stored,
// and whoever drops it to zero hands the directory to the tree savers.
type dirJob struct {
	path     string
	node     *Node   // nil for the holder of a single backed-up file
	parent   *dirJob // nil at the top, which closes done instead
	children []*Node // appended by the walk only
	// prev and prevTree are the parent snapshot's directory at this path
	// and its tree (nil and zero when there is none): when children come
	// out the same as prev's nodes, prevTree is the directory's tree.
	prev     *prevDir
	prevTree repo.ID
	// done is closed once a top directory's tree is stored, or a single
	// backed-up file is, for the walk to wait on.
	done      chan struct{}
	remaining atomic.Int64
}

// newTopDir returns a backed-up directory, held by the walk. With a nil
// node it only holds a single backed-up file, and stores no tree.
func newTopDir(path string, n *Node) *dirJob {
	d := &dirJob{path: path, node: n, done: make(chan struct{})}
	d.remaining.Store(1)
	return d
}

// newSubdir returns subdirectory n of d, held by the walk, and holds d
// until the subdirectory is stored.
func newSubdir(d *dirJob, path string, n *Node) *dirJob {
	d.remaining.Add(1)
	sub := &dirJob{path: path, node: n, parent: d}
	sub.remaining.Store(1)
	return sub
}

// wait waits until a top directory or single file is stored.
func (d *dirJob) wait(ctx context.Context) error {
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// releaseDir drops one hold on d; the last one hands d to the tree savers.
func (a *archiver) releaseDir(ctx context.Context, d *dirJob) error {
	if d.remaining.Add(-1) != 0 {
		return nil
	}
	if d.node == nil {
		close(d.done)
		return nil
	}
	select {
	case a.treeCh <- d:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openDir returns the entries of the directory at path, sorted by name
// as os.ReadDir returns them, and, with keep, the directory still open,
// so that its entries can be looked up from it (readMetaSince). Like
// os.ReadDir, it returns what it read before an error, with the error.
func openDir(path string, keep bool) ([]os.DirEntry, *os.File, error) {
	f, err := openDirFile(path)
	if err != nil {
		return nil, nil, err
	}
	entries, err := f.ReadDir(-1)
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	if !keep {
		f.Close()
		f = nil
	}
	return entries, f, err
}

// maxHeldDirs bounds the directories a walk holds open, one per level
// down to the one it lists: a tree nested deeper than that is looked up
// by whole paths below it, rather than risk running out of descriptors.
const maxHeldDirs = 64

// walkDir lists directory d, hands its files on, walks its subdirectories,
// and then drops the walk's hold on d. rel holds the path elements below
// the backed-up root, for excludes; below, if not nil, the paths given
// below this directory, of which those through a symlink are followed.
func (a *archiver) walkDir(ctx context.Context, d *dirJob, rel []string, prevTree repo.ID, below *pathTrie) error {
	if a.opt.OneFileSystem && !a.backedUpFS(d.node.Device) {
		return a.releaseDir(ctx, d) // the mount point is recorded, its contents are not
	}
	entries, dir, err := openDir(d.path, runtime.GOOS == "linux" && len(rel) < maxHeldDirs)
	if err != nil {
		a.warn(d.path, d.node, err)
	}
	fd := noDir
	if dir != nil {
		defer dir.Close()
		fd = int(dir.Fd())
	}
	prev := a.loadPrev(ctx, d.path, prevTree)
	if d.node != nil && prev != nil {
		d.prev, d.prevTree = prev, prevTree
	}
	if prev != nil {
		a.prefetch.queue(prev.subtrees)
		defer a.prefetch.forget(prev.subtrees)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		p := filepath.Join(d.path, name)
		if a.skip[p] {
			continue
		}
		childRel := append(rel[:len(rel):len(rel)], name)
		if a.excluded(childRel, e.IsDir()) {
			continue
		}
		var since *Node
		if a.xattrsFromParent {
			since = prev.node(name)
		}
		child, err := readMetaSince(fd, p, name, a.names, since)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted since the directory was read
			}
			a.warn(p, nil, err)
			continue
		}
		if err := clampTimes(child); err != nil {
			a.prog.Warn(p, err) // the content is complete: not an error
		}
		var sub *pathTrie
		if below != nil {
			sub = below.children[name]
		}
		var prevSub repo.ID
		if pn := prev.node(name); pn != nil && pn.Type == TypeDir {
			prevSub = pn.Subtree
		}
		if sub != nil && child.Type == TypeSymlink {
			// A path given below this directory lies through the link
			// (cleanPaths kept it for that reason): the link is stored
			// as the directory holding the way to that path, as at the
			// top. The link itself is no given path: it would be
			// covered by this directory.
			dir, err := a.followLink(p, name)
			if err != nil {
				a.warn(p, child, err)
				d.children = append(d.children, child)
				continue
			}
			if dir.Subtree, err = a.walkChain(ctx, p, sub, prevSub); err != nil {
				return err
			}
			d.children = append(d.children, dir)
			continue
		}
		d.children = append(d.children, child)
		if child.Type == TypeDir {
			a.dirs.Add(1)
			if err := a.walkSubdir(ctx, newSubdir(d, p, child), childRel, prevSub, sub); err != nil {
				return err
			}
			continue
		}
		if err := a.addEntry(ctx, d, p, child, prev.node(name)); err != nil {
			return err
		}
	}
	return a.releaseDir(ctx, d)
}

// walkSubdir walks subdirectory d (as walkDir) on a walker of its own if
// one is idle, and otherwise now. The directory's tree is stored once its
// last entry is, whoever walked it, so the caller goes on with the next
// entry either way.
func (a *archiver) walkSubdir(ctx context.Context, d *dirJob, rel []string, prevTree repo.ID, below *pathTrie) error {
	select {
	case a.walkers <- struct{}{}:
	default:
		return a.walkDir(ctx, d, rel, prevTree, below)
	}
	// The caller's walker is counted in walking until it returns, so the
	// count cannot reach zero before the new one is counted.
	a.walking.Add(1)
	a.group.Go(func() error {
		defer a.walking.Done()
		defer func() { <-a.walkers }()
		return a.walkDir(ctx, d, rel, prevTree, below)
	})
	return nil
}

// addEntry handles a non-directory entry n of d: unchanged files take
// their content from the parent snapshot, other files go to the readers.
func (a *archiver) addEntry(ctx context.Context, d *dirJob, path string, n *Node, prev *Node) error {
	if n.Type != TypeFile {
		a.others.Add(1)
		return nil
	}
	a.files.Add(1)
	a.walkBytes.Add(n.Size)
	if a.unchangedFile(prev, n) {
		n.Content = prev.Content
		a.unchanged.Add(1)
		a.size.Add(n.Size)
		a.prog.Processed(1, n.Size)
		return nil
	}
	if prev == nil {
		a.newFiles.Add(1)
	} else {
		a.changed.Add(1)
	}
	d.remaining.Add(1)
	select {
	case a.fileCh <- &fileJob{path: path, node: n, dir: d}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unchangedFile reports whether cur can reuse prev's content without
// reading the file: same size, mtime, ctime and inode, and every blob
// still indexed.
func (a *archiver) unchangedFile(prev, cur *Node) bool {
	if prev == nil || prev.Type != TypeFile || prev.Error != "" || prev.Size != cur.Size ||
		!prev.ModTime.Equal(cur.ModTime) || !prev.ChangeTime.Equal(cur.ChangeTime) || prev.Inode != cur.Inode {
		return false
	}
	for _, e := range prev.Content {
		if !e.Hole && !a.repo.Index().Has(e.ID) {
			return false
		}
	}
	return true
}

// findParent returns the latest snapshot of the same paths on the same
// host, whose unchanged files need not be read again.
func findParent(ctx context.Context, r *repo.Repository, host string, paths []string) (*Snapshot, error) {
	sns, err := List(ctx, r)
	if err != nil && !errors.Is(err, repo.ErrCorrupt) {
		return nil, err
	}
	// A damaged snapshot is no parent; check reports it.
	for i := len(sns) - 1; i >= 0; i-- {
		if sns[i].Host == host && slices.Equal(sns[i].Paths, paths) {
			return sns[i], nil
		}
	}
	return nil, nil
}

// prevDir is a directory of the parent snapshot.
type prevDir struct {
	nodes    []*Node   // sorted by name
	parts    []repo.ID // of its tree, if stored in parts
	byName   map[string]*Node
	subtrees []repo.ID // of its subdirectories, in name order
}

// node returns the parent snapshot's node of the entry name, if any.
func (d *prevDir) node(name string) *Node {
	if d == nil {
		return nil
	}
	return d.byName[name]
}

// loadPrev returns the parent snapshot's directory at path, with tree id,
// which the prefetcher has usually loaded already. A tree that cannot be
// read fails nothing but the shortcut for the files below it, which are
// read again; the user is told, since a damaged tree is a damaged
// repository.
func (a *archiver) loadPrev(ctx context.Context, path string, id repo.ID) *prevDir {
	if id.IsZero() {
		return nil
	}
	d, err := a.prefetch.take(ctx, id)
	if err != nil && ctx.Err() == nil {
		what := "cannot be read"
		if errors.Is(err, repo.ErrCorrupt) {
			what = "is damaged"
		}
		a.prog.Warn(path, fmt.Errorf("the parent snapshot's tree of this directory %s (%w); the files below it are read again", what, err))
	}
	return d
}

// loadPrevDir loads a directory of the parent snapshot, for the
// prefetcher.
func (a *archiver) loadPrevDir(ctx context.Context, id repo.ID) (*prevDir, error) {
	nodes, parts, err := loadTreeParts(ctx, a.repo, id)
	if err != nil {
		return nil, err
	}
	d := &prevDir{nodes: nodes, parts: parts, byName: make(map[string]*Node, len(nodes))}
	for _, n := range nodes {
		d.byName[n.Name] = n
		if n.Type == TypeDir && !n.Subtree.IsZero() {
			d.subtrees = append(d.subtrees, n.Subtree)
		}
	}
	return d, nil
}

// clampTimes brings times JSON cannot encode (outside years 0-9999, which
// touch -d can set) into range, so one odd file cannot fail a backup.
func clampTimes(n *Node) error {
	lo, hi := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	var bad []string
	for _, t := range []*time.Time{&n.ModTime, &n.ChangeTime} {
		switch {
		case t.Before(lo):
			bad, *t = append(bad, t.String()), lo
		case t.After(hi):
			bad, *t = append(bad, t.String()), hi
		}
	}
	if bad != nil {
		return fmt.Errorf("timestamp %s is outside years 0-9999 and was recorded as the nearest valid time", strings.Join(bad, ", "))
	}
	return nil
}
