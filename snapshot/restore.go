package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/internal/gitignore"
	"github.com/cofferhq/coffer/repo"
)

// Errors a restore reports about its target, matched with errors.Is.
var (
	// ErrTargetExists means restoring would overwrite an existing file.
	ErrTargetExists = errors.New("restore target already exists")
	// ErrTargetNotWritable means the target directory cannot be written.
	ErrTargetNotWritable = errors.New("restore target is not writable")
	// ErrDiskFull means the target filesystem ran out of space.
	ErrDiskFull = errors.New("no space left on the restore target")
)

// RestoreOptions say where and how to restore.
type RestoreOptions struct {
	Target    string // directory to restore into; created if missing
	Overwrite bool   // replace existing files instead of refusing
	Progress  RestoreProgress
	// Workers is how many packs are read at once; 0 means 4.
	Workers int
	// Excludes and Includes are gitignore patterns matched against paths
	// relative to the restored root (the target). An excluded directory
	// is skipped whole. With Includes, only matching entries are restored,
	// with the directories on the way to them; Excludes win over them.
	Excludes []string
	Includes []string
	// IgnoreErrors goes on past damaged data (a missing or corrupt pack
	// or tree): each file that cannot be restored in full is reported to
	// Progress.Warn, left out rather than restored with wrong content, and
	// counted in RestoreSummary.Failed; a directory whose tree cannot be
	// read is created empty and reported.
	IgnoreErrors bool

	// batch, when not zero, replaces batchEntries (and a quarter of
	// batchBlobs), so that tests restore small trees in many batches.
	batch int
}

// RestoreProgress receives progress events; methods may be called
// concurrently.
type RestoreProgress interface {
	Total(files, bytes int64)
	Processed(files, bytes int64)
	Warn(path string, err error)
}

type nopRestoreProgress struct{}

func (nopRestoreProgress) Total(int64, int64)     {}
func (nopRestoreProgress) Processed(int64, int64) {}
func (nopRestoreProgress) Warn(string, error)     {}

// RestoreSummary counts what a restore did.
type RestoreSummary struct {
	Files    int64 `json:"files"`
	Dirs     int64 `json:"dirs"`
	Others   int64 `json:"others"`
	Bytes    int64 `json:"bytes"` // what the files restored hold
	Warnings int64 `json:"warnings"`
	// Failed counts the files and directories not restored in full for
	// damaged data (only with IgnoreErrors); Files and Bytes leave out
	// the files among them.
	Failed int64 `json:"failed"`
	// Incomplete counts the files restored that were not read in full at
	// backup time (warned about): they hold what was read.
	Incomplete int64 `json:"incomplete"`
}

type restoreItem struct {
	path  string
	node  *Node // nil for the target directory when it has no metadata to restore
	isDir bool
	// linked: a hard link to a name restored before, whose data and
	// metadata are that name's.
	linked bool
	// deferred: a regular file that its first write creates and whose
	// last write is followed by its metadata, so that creating files and
	// setting their metadata run on every worker of the data phase rather
	// than in serial passes around it (it also saves an open and a close
	// per file).
	deferred bool
}

// restorer holds the plan of one restore.
type restorer struct {
	r      *repo.Repository
	opt    RestoreOptions
	prog   RestoreProgress
	asRoot bool
	// dirs are every directory restored, parents before children, with
	// copies of their nodes (a node points into its tree, which would
	// keep the whole tree): their metadata is set at the very end.
	dirs     []restoreItem
	dirsMade int           // dirs[:dirsMade] exist
	others   []restoreItem // the batch's files, symlinks, specials
	blobs    int           // the batch's extents
	links    map[[2]uint64]string
	// absent are the directories the survey found missing: nothing in
	// them can be in the way but what the restore makes.
	absent map[string]bool
	// lostInodes are hard-linked files whose first name failed: their
	// other names are not linked to what is left of it.
	lostInodes map[[2]uint64]bool
	failMu     sync.Mutex
	failed     map[string]bool
	excludes   gitignore.Matcher
	includes   gitignore.Matcher // nil: everything not excluded
	warnings   atomic.Int64
	incomplete atomic.Int64
	sum        RestoreSummary
}

// Restore restores the node at snapshot path p (see AbsPath) below
// opt.Target: a directory's contents go directly into the target, a file
// or other node into target/<name>. Every blob is authenticated before it
// is written. Existing files are refused unless opt.Overwrite is set,
// and that check runs before anything is written.
func Restore(ctx context.Context, r *repo.Repository, sn *Snapshot, p string, opt RestoreOptions) (RestoreSummary, error) {
	node, _, err := Resolve(ctx, r, sn, p)
	if err != nil {
		return RestoreSummary{}, err
	}
	rs := &restorer{r: r, opt: opt, prog: opt.Progress, asRoot: os.Geteuid() == 0, links: map[[2]uint64]string{}, lostInodes: map[[2]uint64]bool{}, failed: map[string]bool{}}
	if rs.prog == nil {
		rs.prog = nopRestoreProgress{}
	}
	rs.excludes = newExcludes(opt.Excludes)
	if len(opt.Includes) > 0 {
		rs.includes = newExcludes(opt.Includes) // "excluded" there means matched
	}
	target, err := filepath.Abs(opt.Target)
	if err != nil {
		return rs.sum, err
	}
	// Everything is restored into the target, a file too: one in its
	// place is not replaced, even with Overwrite.
	if fi, err := os.Stat(target); err == nil && !fi.IsDir() {
		return rs.sum, fmt.Errorf("%s is a file, not a directory: %w: give -to a directory to restore into (a missing one is created)", target, ErrTargetExists)
	}
	if err := rs.survey(ctx, target, node); err != nil {
		return rs.sum, err
	}
	entries, blobs := batchEntries, batchBlobs
	if opt.batch > 0 {
		entries, blobs = opt.batch, 4*opt.batch
	}
	err = rs.plan(ctx, target, node, func(it restoreItem) error {
		rs.add(it)
		if len(rs.others) < entries && rs.blobs < blobs {
			return nil
		}
		return rs.flush(ctx)
	}, rs.ignoreDamage)
	if err == nil {
		err = rs.flush(ctx)
	}
	if err != nil {
		return rs.sum, err
	}
	rs.applyDirMetadata()
	rs.sum.Failed = int64(len(rs.failed))
	rs.sum.Warnings = rs.warnings.Load()
	rs.sum.Incomplete = rs.incomplete.Load()
	return rs.sum, nil
}

// A restore plans and restores batches of entries in the order of the
// walk, so that what it holds does not grow with the snapshot: a million
// small files would otherwise keep a million nodes, and their blobs'
// targets, in memory. Backups store blobs in walk order too, so a batch
// reads a run of packs and few packs are read by two batches (each
// reading only its own blobs). A batch is large enough that the pause
// between two (the last packs of one are read while the workers have
// nothing else to do) costs little.
const (
	batchEntries = 50_000
	batchBlobs   = 200_000
)

// flush restores the batch planned so far: it makes the directories added
// since the last batch and the batch's entries, writes their data, and
// sets their metadata.
func (rs *restorer) flush(ctx context.Context) error {
	if err := rs.createEntries(); err != nil {
		return err
	}
	if err := rs.writeData(ctx); err != nil {
		return err
	}
	rs.dropFailed()
	rs.applyMetadata()
	clear(rs.others) // the nodes, and the trees they point into, can go
	rs.others, rs.blobs = rs.others[:0], 0
	return nil
}

// ignoreDamage is plan's onErr with IgnoreErrors: a directory that cannot
// be read is reported as not restored, and the walk goes on.
func (rs *restorer) ignoreDamage(dir string, err error) error {
	rs.fail(dir, fmt.Errorf("its contents cannot be read: %w", err))
	return nil
}

// survey walks what is to be restored before anything is written: it
// refuses existing files in the way (unless overwriting) and counts the
// files and bytes for progress, keeping neither the plan nor the nodes.
func (rs *restorer) survey(ctx context.Context, target string, node *Node) error {
	c := conflicts{absent: map[string]bool{}}
	var files, bytes int64
	linked := map[[2]uint64]bool{}
	var onErr func(string, error) error
	if rs.opt.IgnoreErrors {
		onErr = func(string, error) error { return nil } // reported by the restore's walk
	}
	first := true
	err := rs.plan(ctx, target, node, func(it restoreItem) error {
		if err := c.check(it, first, rs.opt.Overwrite); err != nil {
			return err
		}
		first = false
		n := it.node
		if n == nil || n.Type != TypeFile {
			return nil
		}
		files++
		if n.Links > 1 {
			key := [2]uint64{n.Device, n.Inode}
			if linked[key] {
				return nil // a link to data counted once
			}
			linked[key] = true
		}
		for _, e := range n.Content {
			if !e.Hole {
				bytes += e.Size
			}
		}
		return nil
	}, onErr)
	if err != nil {
		return err
	}
	if err := c.err(rs.opt.Overwrite); err != nil {
		return err
	}
	rs.absent = c.absent
	rs.prog.Total(files, bytes)
	return nil
}

// plan walks what is to be created, leaving out what the filters do, and
// hands each entry to emit, parents before children, the target
// directory first. onErr is walk's.
func (rs *restorer) plan(ctx context.Context, target string, node *Node, emit func(restoreItem) error, onErr func(string, error) error) error {
	item := func(p string, n *Node) restoreItem { return restoreItem{path: p, node: n, isDir: n.Type == TypeDir} }
	if node.Type != TypeDir {
		if err := emit(restoreItem{path: target, isDir: true}); err != nil {
			return err
		}
		if rs.excludes.Match([]string{node.Name}, false) ||
			rs.includes != nil && !rs.includes.Match([]string{node.Name}, false) {
			return nil
		}
		return emit(item(filepath.Join(target, node.Name), node))
	}
	root := node
	if node.Name == "/" { // the synthetic root has no metadata of its own
		root = nil
	}
	// The target gets the directory's metadata: it is restored, and
	// counted as backup counted it.
	if err := emit(restoreItem{path: target, node: root, isDir: true}); err != nil {
		return err
	}
	// Directories not matched by an include wait here, outermost first,
	// until something below them is kept: only the directories on the way
	// to included entries are restored, not every empty one around them.
	type pending struct {
		p, rel string // rel joined with "/", whatever the OS
		n      *Node
	}
	var waiting []pending
	if !rs.opt.IgnoreErrors {
		onErr = nil
	}
	return walkPastDamage(ctx, rs.r, target, node.Subtree, func(p string, n *Node) error {
		rel, err := filepath.Rel(target, p)
		if err != nil {
			return err
		}
		elems := strings.Split(filepath.ToSlash(rel), "/")
		isDir := n.Type == TypeDir
		if rs.excludes.Match(elems, isDir) {
			if isDir {
				return fs.SkipDir
			}
			return nil
		}
		if rs.includes == nil {
			return emit(item(p, n))
		}
		// Walk is depth first: what is waiting and not above p was
		// passed by without anything kept below it.
		slashed := strings.Join(elems, "/")
		for len(waiting) > 0 && !strings.HasPrefix(slashed, waiting[len(waiting)-1].rel+"/") {
			waiting = waiting[:len(waiting)-1]
		}
		if !rs.includes.Match(elems, isDir) {
			if isDir {
				waiting = append(waiting, pending{p, slashed, n})
			}
			return nil
		}
		for _, w := range waiting {
			if err := emit(item(w.p, w.n)); err != nil {
				return err
			}
		}
		waiting = waiting[:0]
		return emit(item(p, n))
	}, onErr)
}

// fail records a file or directory that damaged data keeps from being
// restored in full, and reports it once.
func (rs *restorer) fail(p string, err error) {
	rs.failMu.Lock()
	defer rs.failMu.Unlock()
	if rs.failed[p] {
		return
	}
	rs.failed[p] = true
	rs.prog.Warn(p, fmt.Errorf("not restored: %w", err))
}

// dropFailed removes the files that could not be restored in full, so
// that nothing is left with holes where data was lost. It runs after the
// data phase, when no worker can create them again.
func (rs *restorer) dropFailed() {
	if len(rs.failed) == 0 {
		return
	}
	// The other names of a file that failed go with it, in this batch
	// and (createEntry) in the batches to come.
	for _, it := range rs.others {
		if n := it.node; !it.linked && n.Links > 1 && rs.failed[it.path] {
			rs.lostInodes[[2]uint64{n.Device, n.Inode}] = true
		}
	}
	for _, it := range rs.others {
		if n := it.node; it.linked && rs.lostInodes[[2]uint64{n.Device, n.Inode}] {
			rs.fail(it.path, fmt.Errorf("a hard link to %s, whose data could not be restored", rs.links[[2]uint64{n.Device, n.Inode}]))
		}
	}
	rs.others = slices.DeleteFunc(rs.others, func(it restoreItem) bool {
		if !rs.failed[it.path] {
			return false
		}
		rs.sum.Files--
		rs.sum.Bytes -= restoredSize(it.node)
		if err := os.Remove(it.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			rs.warn(it.path, fmt.Errorf("removing the partly restored file: %w", err))
		}
		return true
	})
}

// add puts an entry in the batch, and a directory in the list of all.
func (rs *restorer) add(it restoreItem) {
	n := it.node
	if it.isDir {
		if n != nil {
			dir := *n
			dir.Content = nil
			it.node = &dir
			rs.sum.Dirs++
		}
		rs.dirs = append(rs.dirs, it)
		return
	}
	rs.others = append(rs.others, it)
	rs.blobs += len(n.Content)
	if n.Type == TypeFile {
		rs.sum.Files++
		rs.sum.Bytes += restoredSize(n)
	} else {
		rs.sum.Others++
	}
}

// restoredSize is what a file node restores to: its size at backup time,
// or what was read of it when it could not be read in full.
func restoredSize(n *Node) int64 {
	if n.Error != "" {
		return n.StoredSize()
	}
	return n.Size
}

// conflicts finds existing files in the way of a restore, entry by
// entry in the walk's order. Below a directory that does not exist
// nothing can be in the way, so a restore into a new directory looks at
// the target and nothing else.
type conflicts struct {
	absent map[string]bool // directories known not to exist
	first  string
	count  int
}

// check looks at one entry; target says it is the target directory,
// which may be a symlink the user chose. It fails at once only where
// even -overwrite may not go.
func (c *conflicts) check(it restoreItem, target, overwrite bool) error {
	var fi fs.FileInfo
	exists := false
	if !c.absent[filepath.Dir(it.path)] {
		var err error
		fi, err = os.Lstat(it.path)
		exists = err == nil
	}
	if it.isDir {
		switch {
		case !exists:
			c.absent[it.path] = true
		case !target && !fi.IsDir():
			c.found(it.path)
			c.absent[it.path] = true // a file: nothing below it exists
		}
		return nil
	}
	if !exists {
		return nil
	}
	c.found(it.path)
	// Overwrite replaces an empty directory, but never deletes a tree of
	// the user's files to put a file in its place.
	if overwrite && fi.IsDir() {
		if entries, _ := os.ReadDir(it.path); len(entries) > 0 {
			return fmt.Errorf("%s is a non-empty directory where the snapshot has a %s: %w: move it away first",
				it.path, it.node.Type, ErrTargetExists)
		}
	}
	return nil
}

func (c *conflicts) found(p string) {
	if c.count == 0 {
		c.first = p
	}
	c.count++
}

// err refuses the restore if anything is in the way and it may not be
// replaced.
func (c *conflicts) err(overwrite bool) error {
	if c.count == 0 || overwrite {
		return nil
	}
	more := ""
	if c.count > 1 {
		more = fmt.Sprintf(" and %d more", c.count-1)
	}
	return fmt.Errorf("%s%s: %w: use -overwrite to replace, or restore to an empty directory", c.first, more, ErrTargetExists)
}

// fsError classifies a write error for the user.
func fsError(op, p string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s %s: %w", op, p, ErrDiskFull)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s %s: %w (%v)", op, p, ErrTargetNotWritable, err)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%s %s: %w: a file is where a directory leading to it must be; restore to another -to", op, p, ErrTargetNotWritable)
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

// createEntries makes directories, empty files of the right size, links
// and special files. Directories stay owner-writable until applyMetadata.
func (rs *restorer) createEntries() error {
	for i := rs.dirsMade; i < len(rs.dirs); i++ {
		it := rs.dirs[i]
		// Something that is not a directory where one is restored (a
		// symlink above all, which MkdirAll would follow out of the
		// target) is replaced; the survey refused it without Overwrite.
		// rs.dirs[0] is the target itself, which may be a symlink.
		if fi, err := os.Lstat(it.path); i > 0 && err == nil && !fi.IsDir() {
			if err := os.Remove(it.path); err != nil {
				return fsError("replacing", it.path, err)
			}
		}
		if err := os.MkdirAll(it.path, 0o700); err != nil {
			return fsError("creating directory", it.path, err)
		}
	}
	rs.dirsMade = len(rs.dirs)
	// Sequential on purpose: creating files in parallel measured no faster
	// (the filesystem serialises them) and spent more system time. Regular
	// files with data are created by the data phase instead.
	for i := range rs.others {
		it := &rs.others[i]
		if it.deferred = deferrable(it.node); it.deferred {
			if err := rs.removeExisting(it.path); err != nil {
				return err
			}
			// Created by its first write, which would write into a
			// file that appeared since the survey: where one could
			// have (the directory existed then), look again.
			if !rs.opt.Overwrite && !rs.absent[filepath.Dir(it.path)] {
				if _, err := os.Lstat(it.path); err == nil {
					return fmt.Errorf("%s: %w (it appeared during the restore): use -overwrite to replace", it.path, ErrTargetExists)
				}
			}
			continue
		}
		if err := rs.createEntry(it); err != nil {
			return err
		}
	}
	// Skipped entries carry a nil node: drop them.
	rs.others = slices.DeleteFunc(rs.others, func(it restoreItem) bool { return it.node == nil })
	return nil
}

// createEntry creates one non-directory entry. A hard link to a name
// already created becomes a link (it.linked: no data, no metadata of its
// own), or fails with it if the first name's data could not be
// restored; an entry skipped for lack of privilege gets a nil node.
func (rs *restorer) createEntry(it *restoreItem) error {
	n := it.node
	if err := rs.removeExisting(it.path); err != nil {
		return err
	}
	key := [2]uint64{n.Device, n.Inode}
	if n.Links > 1 {
		if first, ok := rs.links[key]; ok {
			it.linked = true // shares the first name's inode, data and metadata
			if rs.lostInodes[key] {
				rs.fail(it.path, fmt.Errorf("a hard link to %s, whose data could not be restored", first))
				return nil
			}
			if err := os.Link(first, it.path); err != nil {
				return fsError("linking", it.path, err)
			}
			if n.Type == TypeFile {
				rs.prog.Processed(1, 0) // a file restored, as Total counted it
			}
			return nil
		}
	}
	var err error
	switch n.Type {
	case TypeFile:
		err = createSized(it.path, n)
	case TypeSymlink:
		err = os.Symlink(n.LinkTarget, it.path)
	default:
		err = createSpecial(it.path, n)
		if errors.Is(err, errNeedRoot) || errors.Is(err, errSpecialUnsupported) {
			// Skipped: no metadata to apply, and no first name for other
			// hard links to the same device to link to (they try to
			// create it again, and warn again).
			rs.warn(it.path, err)
			it.node = nil
			return nil
		}
	}
	if err != nil {
		return fsError("creating", it.path, err)
	}
	if n.Links > 1 {
		rs.links[key] = it.path
	}
	return nil
}

// removeExisting makes room for an entry when overwriting; checkConflicts
// made sure that a directory in the way is empty.
func (rs *restorer) removeExisting(p string) error {
	if !rs.opt.Overwrite {
		return nil
	}
	if _, err := os.Lstat(p); err == nil {
		if err := os.Remove(p); err != nil {
			return fsError("replacing", p, err)
		}
	}
	return nil
}

// deferrable reports whether a node is a regular file with data that is
// not hard-linked (a link needs its first name to exist before the data
// phase).
func deferrable(n *Node) bool {
	if n.Type != TypeFile || n.Links > 1 {
		return false
	}
	for _, e := range n.Content {
		if !e.Hole {
			return true
		}
	}
	return false
}

// createSized creates an empty file with the node's size. Truncating
// instead of writing zeros leaves the holes of a sparse file unallocated.
func createSized(p string, n *Node) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	var size int64
	for _, e := range n.Content {
		size += e.Size
	}
	if size > 0 {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func (rs *restorer) warn(p string, err error) {
	rs.warnings.Add(1)
	rs.prog.Warn(p, err)
}

type blobTarget struct {
	path   string
	offset int64
	file   *deferredFile // nil: the file was created before the data phase
}

// deferredFile is a file the data phase creates; the write that brings
// remaining to zero finishes it.
type deferredFile struct {
	item      *restoreItem
	size      int64 // truncated to when the content ends in a hole
	holeAtEnd bool
	remaining atomic.Int64
}

// writeData reads every pack holding needed blobs once, coalescing nearby
// blobs into single ranged reads, and writes each blob to all the places
// that need it.
func (rs *restorer) writeData(ctx context.Context) error {
	// One map per pack, with values rather than pointers: the plan holds
	// an entry for every blob, 200,000 of them for as many small files.
	type blobWork struct {
		size    int64 // what the trees say the blob holds
		targets []blobTarget
	}
	type packWork struct {
		refs  []repo.BlobRef
		blobs map[repo.ID]blobWork
	}
	packs := map[repo.ID]*packWork{}
	for i := range rs.others {
		it := &rs.others[i]
		n := it.node
		if n.Type != TypeFile || it.linked {
			continue
		}
		if n.Error != "" {
			rs.incomplete.Add(1)
			rs.warn(it.path, n.IncompleteWarning("restored"))
		}
		var df *deferredFile
		if it.deferred {
			df = &deferredFile{item: it, holeAtEnd: n.Content[len(n.Content)-1].Hole}
		}
		var off int64
		for _, e := range n.Content {
			if !e.Hole {
				loc, ok := rs.r.Index().Lookup(e.ID)
				if !ok {
					err := fmt.Errorf("content of %s: blob %s: %w", it.path, e.ID.Short(), repo.ErrBlobNotFound)
					if !rs.opt.IgnoreErrors {
						return err
					}
					rs.fail(it.path, err)
					if df != nil {
						df.remaining.Add(1) // never written: the file is never finished
					}
					off += e.Size
					continue
				}
				w := packs[loc.Pack]
				if w == nil {
					w = &packWork{blobs: map[repo.ID]blobWork{}}
					packs[loc.Pack] = w
				}
				bw, seen := w.blobs[e.ID]
				if !seen {
					w.refs = append(w.refs, repo.BlobRef{ID: e.ID, Type: repo.BlobData})
				}
				bw.size = e.Size
				bw.targets = append(bw.targets, blobTarget{it.path, off, df})
				w.blobs[e.ID] = bw
				if df != nil {
					df.remaining.Add(1)
				}
			}
			off += e.Size
		}
		if df != nil {
			df.size = off // what the content adds up to, as createSized does
		}
	}

	workers := rs.opt.Workers
	if workers <= 0 {
		workers = 4
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for pack, w := range packs {
		g.Go(func() error {
			delivered := map[repo.ID]bool{}
			var writeErr error // the target's fault, never ignored
			load := func(refs []repo.BlobRef) error {
				return rs.r.LoadBlobs(ctx, pack, refs, func(ref repo.BlobRef, plain []byte) error {
					if err := rs.writeBlob(w.blobs[ref.ID].size, w.blobs[ref.ID].targets, pack, ref, plain); err != nil {
						if !errors.As(err, new(*repo.IntegrityError)) {
							writeErr = err
						}
						return err
					}
					delivered[ref.ID] = true
					return nil
				})
			}
			err := load(w.refs)
			if err == nil || !rs.opt.IgnoreErrors || writeErr != nil || ctx.Err() != nil {
				return err
			}
			// Past the damage blob by blob, so that one bad blob costs
			// only the files that need it.
			for _, ref := range w.refs {
				if delivered[ref.ID] {
					continue
				}
				if err := load([]repo.BlobRef{ref}); err != nil {
					if writeErr != nil || ctx.Err() != nil {
						return err
					}
					for _, t := range w.blobs[ref.ID].targets {
						rs.fail(t.path, err)
					}
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// writeBlob writes a pack's blob, of the size the trees say, to every
// place that needs it.
func (rs *restorer) writeBlob(size int64, targets []blobTarget, pack repo.ID, ref repo.BlobRef, plain []byte) error {
	if int64(len(plain)) != size {
		return &repo.IntegrityError{Kind: "blob", Name: ref.ID.String(), Pack: pack.String(),
			Err: fmt.Errorf("holds %d bytes, the tree says %d", len(plain), size)}
	}
	for _, t := range targets {
		if err := rs.writeTarget(t, plain); err != nil {
			return err
		}
	}
	return nil
}

// writeTarget writes b at t's offset of t's file, and finishes the file
// where this was the last of its writes, before closing it. Opening per
// blob keeps no descriptors across packs; writers at different offsets
// of one file may run at once.
func (rs *restorer) writeTarget(t blobTarget, b []byte) error {
	f, err := openTarget(t.path, t.file != nil)
	if err != nil {
		return fsError("writing", t.path, err)
	}
	if err := f.writeAt(b, t.offset); err != nil {
		_ = f.close()
		return fsError("writing", t.path, err)
	}
	rs.prog.Processed(0, int64(len(b)))
	if t.file == nil || t.file.remaining.Add(-1) != 0 {
		if err := f.close(); err != nil {
			return fsError("writing", t.path, err)
		}
		return nil
	}
	return rs.finish(f, t.file)
}

// finish gives a deferred file, all of whose data is written, its size
// and its metadata, and closes it: its metadata is set through the open
// file, which spares a lookup of its path for each step.
func (rs *restorer) finish(f targetFile, df *deferredFile) error {
	p := df.item.path
	if df.holeAtEnd {
		if err := f.truncate(df.size); err != nil {
			_ = f.close()
			return fsError("writing", p, err)
		}
	}
	metaErr, err := f.closeWithMeta(df.item.node, rs.asRoot)
	if err != nil {
		return fsError("writing", p, err)
	}
	if metaErr != nil {
		rs.warn(p, metaErr)
	}
	rs.prog.Processed(1, 0)
	return nil
}

// applyMetadata sets the owners, modes, xattrs and times of the batch's
// entries. Directories get theirs at the end (applyDirMetadata), so that
// creating an entry never changes the mtime of a directory already done.
func (rs *restorer) applyMetadata() {
	for _, it := range rs.others {
		if it.deferred || it.linked {
			continue // done by finish, or by the first name
		}
		if err := applyMeta(it.path, it.node, rs.asRoot); err != nil {
			rs.warn(it.path, err)
		}
		if it.node.Type == TypeFile { // progress counts files, as Total did
			rs.prog.Processed(1, 0)
		}
	}
}

// applyDirMetadata sets the directories' metadata, deepest first.
func (rs *restorer) applyDirMetadata() {
	for i := len(rs.dirs) - 1; i >= 0; i-- {
		if rs.dirs[i].node == nil {
			continue
		}
		if err := applyMeta(rs.dirs[i].path, rs.dirs[i].node, rs.asRoot); err != nil {
			rs.warn(rs.dirs[i].path, err)
		}
	}
}
