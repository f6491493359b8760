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
	Bytes    int64 `json:"bytes"`
	Warnings int64 `json:"warnings"`
	// Failed counts the files and directories not restored in full for
	// damaged data (only with IgnoreErrors); Files and Bytes leave out
	// the files among them.
	Failed int64 `json:"failed"`
}

type restoreItem struct {
	path string
	node *Node
	// deferred: a regular file that its first write creates and whose
	// last write is followed by its metadata, so that creating files and
	// setting their metadata run on every worker of the data phase rather
	// than in serial passes around it (it also saves an open and a close
	// per file).
	deferred bool
}

// restorer holds the plan of one restore.
type restorer struct {
	r        *repo.Repository
	opt      RestoreOptions
	prog     RestoreProgress
	asRoot   bool
	dirs     []restoreItem // parents before children
	others   []restoreItem // files, symlinks, specials
	links    map[[2]uint64]string
	failMu   sync.Mutex
	failed   map[string]bool
	excludes gitignore.Matcher
	includes gitignore.Matcher // nil: everything not excluded
	warnings atomic.Int64
	sum      RestoreSummary
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
	rs := &restorer{r: r, opt: opt, prog: opt.Progress, asRoot: os.Geteuid() == 0, links: map[[2]uint64]string{}, failed: map[string]bool{}}
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
	if err := rs.plan(ctx, target, node); err != nil {
		return rs.sum, err
	}
	if err := rs.checkConflicts(); err != nil {
		return rs.sum, err
	}
	if err := rs.createEntries(); err != nil {
		return rs.sum, err
	}
	if err := rs.writeData(ctx); err != nil {
		return rs.sum, err
	}
	rs.dropFailed()
	rs.applyMetadata()
	rs.sum.Warnings = rs.warnings.Load()
	return rs.sum, nil
}

// plan lists everything to create, leaving out what the filters do.
func (rs *restorer) plan(ctx context.Context, target string, node *Node) error {
	if node.Type != TypeDir {
		rs.dirs = append(rs.dirs, restoreItem{path: target})
		if rs.excludes.Match([]string{node.Name}, false) ||
			rs.includes != nil && !rs.includes.Match([]string{node.Name}, false) {
			return nil
		}
		rs.add(filepath.Join(target, node.Name), node)
		return nil
	}
	root := node
	if node.Name == "/" { // the synthetic root has no metadata of its own
		root = nil
	}
	rs.dirs = append(rs.dirs, restoreItem{path: target, node: root})
	if root != nil {
		// The target gets the directory's metadata: it is restored, and
		// counted as backup counted it.
		rs.sum.Dirs++
	}
	// Directories not matched by an include wait here, outermost first,
	// until something below them is kept: only the directories on the way
	// to included entries are restored, not every empty one around them.
	type pending struct {
		p, rel string // rel joined with "/", whatever the OS
		n      *Node
	}
	var waiting []pending
	var onErr func(string, error) error
	if rs.opt.IgnoreErrors {
		onErr = func(dir string, err error) error {
			rs.fail(dir, fmt.Errorf("its contents cannot be read: %w", err))
			return nil
		}
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
			rs.add(p, n)
			return nil
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
			rs.add(w.p, w.n)
		}
		waiting = waiting[:0]
		rs.add(p, n)
		return nil
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
	rs.sum.Failed = int64(len(rs.failed))
	if len(rs.failed) == 0 {
		return
	}
	rs.others = slices.DeleteFunc(rs.others, func(it restoreItem) bool {
		if !rs.failed[it.path] {
			return false
		}
		rs.sum.Files--
		rs.sum.Bytes -= it.node.Size
		if err := os.Remove(it.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			rs.warn(it.path, fmt.Errorf("removing the partly restored file: %w", err))
		}
		return true
	})
}

func (rs *restorer) add(p string, n *Node) {
	if n.Type == TypeDir {
		rs.dirs = append(rs.dirs, restoreItem{path: p, node: n})
		rs.sum.Dirs++
		return
	}
	rs.others = append(rs.others, restoreItem{path: p, node: n})
	if n.Type == TypeFile {
		rs.sum.Files++
		rs.sum.Bytes += n.Size
	} else {
		rs.sum.Others++
	}
}

// checkConflicts refuses to touch existing files unless asked to. Below
// a directory that does not exist nothing can be in the way, so a restore
// into a new directory looks at the target and nothing else.
func (rs *restorer) checkConflicts() error {
	var conflicts []string
	absent := map[string]bool{} // directories known not to exist
	exists := func(p string) (fs.FileInfo, bool) {
		if absent[filepath.Dir(p)] {
			return nil, false
		}
		fi, err := os.Lstat(p)
		return fi, err == nil
	}
	// rs.dirs[0] is the target itself, which may be a symlink the user chose.
	for i, it := range rs.dirs {
		fi, ok := exists(it.path)
		switch {
		case !ok:
			absent[it.path] = true
		case i > 0 && !fi.IsDir():
			conflicts = append(conflicts, it.path)
			absent[it.path] = true // a file: nothing below it exists
		}
	}
	for _, it := range rs.others {
		fi, ok := exists(it.path)
		if !ok {
			continue
		}
		conflicts = append(conflicts, it.path)
		// Overwrite replaces an empty directory, but never deletes a tree
		// of the user's files to put a file in its place.
		if rs.opt.Overwrite && fi.IsDir() {
			if entries, _ := os.ReadDir(it.path); len(entries) > 0 {
				return fmt.Errorf("%s is a non-empty directory where the snapshot has a %s: %w: move it away first",
					it.path, it.node.Type, ErrTargetExists)
			}
		}
	}
	if len(conflicts) == 0 || rs.opt.Overwrite {
		return nil
	}
	more := ""
	if len(conflicts) > 1 {
		more = fmt.Sprintf(" and %d more", len(conflicts)-1)
	}
	return fmt.Errorf("%s%s: %w: use -overwrite to replace, or restore to an empty directory", conflicts[0], more, ErrTargetExists)
}

// fsError classifies a write error for the user.
func fsError(op, p string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s %s: %w", op, p, ErrDiskFull)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s %s: %w (%v)", op, p, ErrTargetNotWritable, err)
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

// createEntries makes directories, empty files of the right size, links
// and special files. Directories stay owner-writable until applyMetadata.
func (rs *restorer) createEntries() error {
	for i, it := range rs.dirs {
		// Something that is not a directory where one is restored (a
		// symlink above all, which MkdirAll would follow out of the
		// target) is replaced; checkConflicts refused it without Overwrite.
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
	// Sequential on purpose: creating files in parallel measured no faster
	// (the filesystem serialises them) and spent more system time. Regular
	// files with data are created by the data phase instead.
	for i := range rs.others {
		it := &rs.others[i]
		if it.deferred = deferrable(it.node); it.deferred {
			if err := rs.removeExisting(it.path); err != nil {
				return err
			}
			continue
		}
		if err := rs.createEntry(it); err != nil {
			return err
		}
	}
	// Hard-linked names after the first, and skipped entries, carry a nil
	// node: drop them.
	rs.others = slices.DeleteFunc(rs.others, func(it restoreItem) bool { return it.node == nil })
	return nil
}

// createEntry creates one non-directory entry. A hard link to a name
// already created becomes a link; an entry skipped for lack of privilege,
// or a link, gets a nil node (no data, no metadata of its own).
func (rs *restorer) createEntry(it *restoreItem) error {
	n := it.node
	if err := rs.removeExisting(it.path); err != nil {
		return err
	}
	key := [2]uint64{n.Device, n.Inode}
	if n.Links > 1 {
		if first, ok := rs.links[key]; ok {
			if err := os.Link(first, it.path); err != nil {
				return fsError("linking", it.path, err)
			}
			it.node = nil // shares the first name's inode, data and metadata
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
	var totalBytes int64
	for i := range rs.others {
		it := &rs.others[i]
		n := it.node
		if n.Type != TypeFile {
			continue
		}
		if n.Error != "" {
			rs.warn(it.path, fmt.Errorf("was not readable at backup time (%s); restored with the content that was read", n.Error))
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
				totalBytes += e.Size
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
	rs.prog.Total(rs.sum.Files, totalBytes)

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
		if err := writeAt(t.path, plain, t.offset, t.file != nil); err != nil {
			return fsError("writing", t.path, err)
		}
		rs.prog.Processed(0, int64(len(plain)))
		if t.file != nil && t.file.remaining.Add(-1) == 0 {
			if err := rs.finish(t.file); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish gives a deferred file, all of whose data is written, its size
// and its metadata.
func (rs *restorer) finish(df *deferredFile) error {
	p := df.item.path
	if df.holeAtEnd {
		if err := os.Truncate(p, df.size); err != nil {
			return fsError("writing", p, err)
		}
	}
	if err := applyMeta(p, df.item.node, rs.asRoot); err != nil {
		rs.warn(p, err)
	}
	rs.prog.Processed(1, 0)
	return nil
}

// writeAt writes b at off in file p, which exists unless create is set.
// Opening per blob keeps no descriptors across packs; writers at
// different offsets of one file may run at once. A symlink put in the
// file's place since it was checked or created is not followed.
func writeAt(p string, b []byte, off int64, create bool) error {
	flag := os.O_WRONLY | oNoFollow
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(p, flag, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// applyMetadata sets owners, modes, xattrs and times: entries first, then
// directories deepest first, so that creating an entry never changes the
// mtime of a directory already done.
func (rs *restorer) applyMetadata() {
	for _, it := range rs.others {
		if it.deferred {
			continue // done by finish
		}
		if err := applyMeta(it.path, it.node, rs.asRoot); err != nil {
			rs.warn(it.path, err)
		}
		if it.node.Type == TypeFile { // progress counts files, as Total did
			rs.prog.Processed(1, 0)
		}
	}
	for i := len(rs.dirs) - 1; i >= 0; i-- {
		if rs.dirs[i].node == nil {
			continue
		}
		if err := applyMeta(rs.dirs[i].path, rs.dirs[i].node, rs.asRoot); err != nil {
			rs.warn(rs.dirs[i].path, err)
		}
	}
}
