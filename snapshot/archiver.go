package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"

	"github.com/cofferhq/coffer/internal/gitignore"
	"github.com/cofferhq/coffer/repo"
)

// Version is the program version recorded in snapshots.
var Version = "dev"

// BackupOptions say what to back up and how.
type BackupOptions struct {
	Paths         []string // files or directories; made absolute
	Tags          []string
	Excludes      []string // gitignore patterns, relative to each backed-up path
	OneFileSystem bool     // do not descend into other filesystems
	DryRun        bool     // read and chunk everything, store nothing
	Host          string   // defaults to the hostname
	// Compression says how new blobs are compressed; the zero value is
	// repo.CompressionAuto.
	Compression repo.Compression
	// SkipPaths are absolute paths never backed up, such as the
	// repository's own directory.
	SkipPaths []string
	// Progress receives events; nil discards them.
	Progress BackupProgress
	// PackSize is the most bytes a pack of this backup takes (see
	// repo.CheckPackSize); zero means the repository's. Chunks too large
	// for such a pack alone are stored as pieces that fit.
	PackSize int
	// Scan counts what is to be backed up alongside the backup, and sends
	// the totals to Progress.Scanned, for displays that show a total and
	// an estimated time left. It reads every directory a second time.
	Scan bool
}

// BackupProgress receives progress events from a backup. Its methods are
// called from several goroutines at once.
type BackupProgress interface {
	// Scanned adds to the totals found so far by the scanner, which runs
	// ahead of the backup to give an ETA.
	Scanned(files, bytes int64)
	// Processed adds files and bytes the backup has dealt with.
	Processed(files, bytes int64)
	// Warn reports an entry that could not be read; the backup goes on.
	Warn(path string, err error)
}

type nopProgress struct{}

func (nopProgress) Scanned(int64, int64)   {}
func (nopProgress) Processed(int64, int64) {}
func (nopProgress) Warn(string, error)     {}

// fileReaders is how many files are read at once. Reading is mostly
// waiting for the disk; a few readers keep the CPU-bound blob workers fed
// even when files are small.
const fileReaders = 3

// archiver is the state of one backup. The pipeline, top to bottom:
//
//  1. walk (one goroutine): reads directories and lstat()s entries in order,
//     reuses the parent snapshot's content for unchanged files, and sends
//     the others to fileCh;
//  2. readers (fileReaders goroutines): open a file, find its data regions,
//     cut them into content-defined chunks and send each chunk to blobCh;
//  3. blob workers (one per CPU): MAC, compress, encrypt and pack a chunk
//     (repo.BlobSaver), then record its id in the file's extent list;
//  4. a directory is finished (its tree blob stored) by a goroutine of its
//     own once every child is complete, so the walk never waits.
type archiver struct {
	repo   *repo.Repository
	saver  blobSaver
	opt    BackupOptions
	prog   BackupProgress
	names  *idNames
	ignore gitignore.Matcher
	skip   map[string]bool
	chunk  chunkers.ChunkerOpts
	// maxBlob is the largest data blob a pack of the backup's pack size
	// holds; sendChunk splits larger chunks.
	maxBlob int
	fileCh  chan *fileJob
	blobCh  chan blobJob
	// chunkers holds the free chunkers; nil entries are not made yet.
	chunkers chan *chunkers.Chunker
	prefetch *prefetcher[*prevDir]
	bufs     sync.Pool
	devs     map[uint64]bool // filesystems of the backed-up paths, for OneFileSystem

	files, dirs, others, size    atomic.Int64
	newFiles, changed, unchanged atomic.Int64
	filesRead, bytesRead, errs   atomic.Int64

	errOnce  sync.Once
	firstErr error
	cancel   context.CancelFunc
}

// fail records the first fatal error and stops the backup.
func (a *archiver) fail(err error) {
	a.errOnce.Do(func() {
		a.firstErr = err
		a.cancel()
	})
}

// warn records an entry that could not be read completely.
func (a *archiver) warn(path string, n *Node, err error) {
	a.errs.Add(1)
	if n != nil {
		n.Error = err.Error()
	}
	a.prog.Warn(path, err)
}

// Backup backs up opt.Paths into a new snapshot and returns it. A snapshot
// with Summary.Errors > 0 is complete except for the entries it records as
// unreadable. Nothing is visible in the repository unless Backup succeeds.
func Backup(ctx context.Context, r *repo.Repository, opt BackupOptions) (*Snapshot, error) {
	start := time.Now()
	paths, err := cleanPaths(opt.Paths)
	if err != nil {
		return nil, err
	}
	if err := opt.Compression.Validate(); err != nil {
		return nil, err
	}
	packSize := opt.PackSize
	if packSize == 0 {
		packSize = r.Config().PackSize
	}
	if err := repo.CheckPackSize(packSize); err != nil {
		return nil, err
	}
	if opt.Host == "" {
		opt.Host, _ = os.Hostname()
	}
	sn := &Snapshot{Time: start.UTC(), Host: opt.Host, Paths: paths, Base: basePath(paths),
		Tags: opt.Tags, Excludes: opt.Excludes, Program: "coffer " + Version}
	if u, err := user.Current(); err == nil {
		sn.User = u.Username
	}
	parent, err := findParent(ctx, r, opt.Host, paths)
	if err != nil {
		return nil, err
	}
	if parent != nil {
		sn.Parent = parent.ID
	}

	a := &archiver{repo: r, opt: opt, prog: opt.Progress, names: newIDNames(), skip: map[string]bool{}, devs: map[uint64]bool{}}
	if a.prog == nil {
		a.prog = nopProgress{}
	}
	var patterns []gitignore.Pattern
	for _, p := range opt.Excludes {
		patterns = append(patterns, gitignore.ParsePattern(p, nil))
	}
	a.ignore = gitignore.NewMatcher(patterns)
	for _, p := range opt.SkipPaths {
		if abs, err := filepath.Abs(p); err == nil {
			a.skip[filepath.Clean(abs)] = true
		}
	}
	cfg := r.Config()
	a.chunk = chunkers.ChunkerOpts{MinSize: cfg.Chunker.Min, NormalSize: cfg.Chunker.Avg, MaxSize: cfg.Chunker.Max, Key: r.ChunkerKey()}
	// Chunks are cut as the repository's chunker says, whatever the pack
	// size, and only those over what a pack holds are split after: a
	// lower chunker maximum would move the cuts after every chunk that
	// hit it, and lose dedup against earlier backups for whole files.
	a.maxBlob = repo.MaxBlobInPack(packSize)

	var stats repo.SaveStats
	run := func(ctx context.Context, s blobSaver) error {
		a.saver = s
		tree, err := a.run(ctx, paths, parent)
		sn.Tree = tree
		return err
	}
	if opt.DryRun {
		err = run(ctx, dryRunSaver{r, a.maxBlob})
	} else {
		stats, err = r.WithBlobSaver(ctx, func(ctx context.Context, s *repo.BlobSaver) error {
			if err := s.SetCompression(opt.Compression); err != nil {
				return err
			}
			if err := s.SetPackSize(packSize); err != nil {
				return err
			}
			return run(ctx, s)
		})
	}
	if err != nil {
		return nil, err
	}
	sn.Summary = Summary{
		Files: a.files.Load(), Dirs: a.dirs.Load(), Others: a.others.Load(), Size: a.size.Load(),
		NewFiles: a.newFiles.Load(), ChangedFiles: a.changed.Load(), UnchangedFiles: a.unchanged.Load(),
		FilesRead: a.filesRead.Load(), BytesRead: a.bytesRead.Load(), Errors: a.errs.Load(),
		NewBlobs: stats.NewBlobs, NewBytes: stats.NewRawBytes, StoredBytes: stats.PackBytes,
		Start: start.UTC(), Duration: time.Since(start),
	}
	if opt.DryRun {
		return sn, nil
	}
	if err := r.ReadyToCommit(ctx, nil); err != nil {
		return nil, err
	}
	if err := Save(ctx, r, sn); err != nil {
		return nil, err
	}
	return sn, nil
}

// dryRunSaver computes ids and reports what would be new without storing.
type dryRunSaver struct {
	r       *repo.Repository
	maxBlob int
}

// MaxBlob is what the backup's BlobSaver would say.
func (d dryRunSaver) MaxBlob() int { return d.maxBlob }

func (d dryRunSaver) Save(_ context.Context, t repo.BlobType, b []byte) (repo.ID, bool, error) {
	id := d.r.BlobID(t, b)
	return id, !d.r.Index().Has(id), nil
}

// cleanPaths makes paths absolute, sorts them, and drops paths inside
// another one, which are backed up with it. A path below a symlink is kept
// (link/f with link, or with a directory holding link): the walk of the
// other one stores the symlink, not what it points to, so dropping the
// path would lose it; the walk then goes through the link to it (see
// walkChain).
func cleanPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("nothing to back up: give at least one path")
	}
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(abs); err != nil {
			return nil, fmt.Errorf("cannot back up %s: %w", p, err)
		}
		out = append(out, filepath.Clean(abs))
	}
	slices.Sort(out)
	out = slices.Compact(out)
	kept := out[:0]
	for _, p := range out {
		if len(kept) > 0 && covered(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	return kept, nil
}

// covered reports whether backing up dir backs up p: p lies below dir,
// and neither dir nor any directory between them is a symlink.
func covered(p, dir string) bool {
	if !within(p, dir) {
		return false
	}
	for d := filepath.Dir(p); within(d, dir); d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return false
		}
		if d == dir || d == "/" {
			break
		}
	}
	return true
}

// within reports whether p is dir or lies below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// basePath is the directory relative snapshot paths resolve against: a
// single directory itself, otherwise the deepest common parent directory.
func basePath(paths []string) string {
	if len(paths) == 1 {
		// Lstat, as the tree records: a symlink is a leaf, not a directory.
		if fi, err := os.Lstat(paths[0]); err == nil && fi.IsDir() {
			return paths[0]
		}
		return filepath.Dir(paths[0])
	}
	base := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for !within(p, base) {
			base = filepath.Dir(base)
		}
	}
	return base
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

// run performs the backup and returns the root tree id.
func (a *archiver) run(ctx context.Context, paths []string, parent *Snapshot) (repo.ID, error) {
	ctx, a.cancel = context.WithCancel(ctx)
	defer a.cancel()
	a.fileCh = make(chan *fileJob)
	a.blobCh = make(chan blobJob, 2*runtime.GOMAXPROCS(0))
	a.chunkers = make(chan *chunkers.Chunker, min(fileReaders, runtime.GOMAXPROCS(0)))
	for range cap(a.chunkers) {
		a.chunkers <- nil // made on first use
	}

	var readers, workers sync.WaitGroup
	for range fileReaders {
		readers.Go(func() { a.readFiles(ctx) })
	}
	for range runtime.GOMAXPROCS(0) {
		workers.Go(func() { a.saveBlobs(ctx) })
	}
	// The scanner only feeds the progress display: it is stopped with the
	// backup, so nothing reports progress after Backup returns.
	var scanner sync.WaitGroup
	scanCtx, stopScan := context.WithCancel(ctx)
	defer func() {
		stopScan()
		scanner.Wait()
	}()
	if a.opt.Scan {
		scanner.Go(func() { a.scan(scanCtx, paths) })
	}

	a.prefetch = newPrefetcher(ctx, a.loadPrevDir)
	root, err := a.walkRoots(ctx, paths, parent)
	a.prefetch.close()

	close(a.fileCh)
	readers.Wait()
	close(a.blobCh)
	workers.Wait()
	if a.firstErr != nil {
		return repo.ID{}, a.firstErr
	}
	if err != nil {
		return repo.ID{}, err
	}
	return root, ctx.Err()
}

// pathTrie holds the directories from "/" down to each backed-up path.
// Below a backed-up directory, it holds the paths given below it that lie
// through a symlink, which the walk must follow.
type pathTrie struct {
	children map[string]*pathTrie
	target   string // set on a backed-up path
}

// walkRoots backs up each path and then stores the trees of the
// directories above them, up to "/".
func (a *archiver) walkRoots(ctx context.Context, paths []string, parent *Snapshot) (repo.ID, error) {
	trie := &pathTrie{children: map[string]*pathTrie{}}
	for _, p := range paths {
		t := trie
		for _, el := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			if el == "" {
				continue
			}
			if t.children[el] == nil {
				t.children[el] = &pathTrie{children: map[string]*pathTrie{}}
			}
			t = t.children[el]
		}
		t.target = p
	}
	var prevRoot repo.ID
	if parent != nil {
		prevRoot = parent.Tree
	}
	if trie.target != "" { // backing up "/" itself
		rootNode, err := a.readMetaOf("/", "/")
		if err != nil {
			return repo.ID{}, err
		}
		a.devs[rootNode.Device] = true
		return a.walkTop(ctx, "/", rootNode, prevRoot, trie)
	}
	return a.walkChain(ctx, "/", trie, prevRoot)
}

// walkChain stores an intermediate directory holding only the entries on
// the way to backed-up paths.
func (a *archiver) walkChain(ctx context.Context, dir string, t *pathTrie, prevTree repo.ID) (repo.ID, error) {
	prev := a.loadPrev(ctx, prevTree)
	var nodes []*Node
	names := make([]string, 0, len(t.children))
	for name := range t.children {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		child := t.children[name]
		p := filepath.Join(dir, name)
		n, err := a.readMetaOf(p, name)
		if err != nil {
			return repo.ID{}, err
		}
		if n.Type == TypeSymlink && (child.target == "" || len(child.children) > 0) {
			// A path given through a symlink is backed up under the
			// path given: the link is stored as the directory it points
			// to. A symlink given itself stays a symlink, unless a path
			// below it is given too: then it has to be that directory.
			target := n.LinkTarget
			if n, err = a.followLink(p, name); err != nil {
				return repo.ID{}, err
			}
			if child.target != "" {
				a.prog.Warn(p, fmt.Errorf("is a symlink (to %s), and a path below it is backed up too: backed up as the directory it points to", target))
			}
		}
		if child.target != "" {
			a.devs[n.Device] = true
		}
		prevNode := prev.node(name)
		var prevSub repo.ID
		if prevNode != nil && prevNode.Type == TypeDir {
			prevSub = prevNode.Subtree
		}
		switch {
		case child.target != "" && n.Type == TypeDir:
			n.Subtree, err = a.walkTop(ctx, p, n, prevSub, child)
		case child.target != "":
			err = a.addTopFile(ctx, p, n, prevNode)
		case n.Type == TypeDir:
			n.Subtree, err = a.walkChain(ctx, p, child, prevSub)
		default:
			err = fmt.Errorf("cannot back up below %s: not a directory", p)
		}
		if err != nil {
			return repo.ID{}, err
		}
		nodes = append(nodes, n)
	}
	return saveTree(ctx, a.saver, nodes)
}

func (a *archiver) readMetaOf(path, name string) (*Node, error) {
	n, err := readMeta(path, name, a.names)
	if err != nil {
		return nil, fmt.Errorf("cannot back up %s: %w", path, err)
	}
	return n, nil
}

// followLink returns the node of the directory the symlink path points
// to, named name, for a backed-up path that lies through the link.
func (a *archiver) followLink(path, name string) (*Node, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("cannot back up below %s: %w", path, err)
	}
	n, err := readMeta(real, name, a.names)
	if err != nil {
		return nil, fmt.Errorf("cannot back up below %s: %w", path, err)
	}
	if n.Type != TypeDir {
		return nil, fmt.Errorf("cannot back up below %s: it is a symlink to %s, which is a %s, not a directory", path, real, n.Type)
	}
	return n, nil
}

// walkTop backs up a whole directory tree and waits for it to complete.
// below holds the paths given below it that the walk must follow.
func (a *archiver) walkTop(ctx context.Context, path string, n *Node, prevTree repo.ID, below *pathTrie) (repo.ID, error) {
	var done sync.WaitGroup
	done.Add(1)
	a.dirs.Add(1)
	a.walkDir(ctx, path, nil, n, prevTree, &done, below)
	done.Wait()
	if a.firstErr != nil {
		return repo.ID{}, a.firstErr
	}
	return n.Subtree, ctx.Err()
}

// addTopFile backs up a single file given on the command line.
func (a *archiver) addTopFile(ctx context.Context, path string, n *Node, prev *Node) error {
	var done sync.WaitGroup
	a.addEntry(ctx, path, nil, n, prev, &done)
	done.Wait()
	if a.firstErr != nil {
		return a.firstErr
	}
	return ctx.Err()
}

// prevDir is a directory of the parent snapshot.
type prevDir struct {
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

// loadPrev returns the parent snapshot's directory with tree id, which
// the prefetcher has usually loaded already.
func (a *archiver) loadPrev(ctx context.Context, id repo.ID) *prevDir {
	if id.IsZero() {
		return nil
	}
	d, _ := a.prefetch.take(ctx, id)
	return d
}

// loadPrevDir loads a directory of the parent snapshot. A parent tree that
// cannot be read is no error: it only costs re-reading the files.
func (a *archiver) loadPrevDir(ctx context.Context, id repo.ID) (*prevDir, error) {
	nodes, err := LoadTree(ctx, a.repo, id)
	if err != nil {
		return nil, nil
	}
	d := &prevDir{byName: make(map[string]*Node, len(nodes))}
	for _, n := range nodes {
		d.byName[n.Name] = n
		if n.Type == TypeDir && !n.Subtree.IsZero() {
			d.subtrees = append(d.subtrees, n.Subtree)
		}
	}
	return d, nil
}

// walkDir reads directory path, whose node is n, and arranges for
// n.Subtree to be set and done.Done() called once all entries are stored.
// rel holds the path elements below the backed-up root, for excludes;
// below, if not nil, the paths given below this directory, of which those
// through a symlink are followed.
func (a *archiver) walkDir(ctx context.Context, path string, rel []string, n *Node, prevTree repo.ID, done *sync.WaitGroup, below *pathTrie) {
	var children []*Node
	var pending sync.WaitGroup
	defer func() {
		go func() {
			pending.Wait()
			if ctx.Err() == nil {
				id, err := saveTree(ctx, a.saver, children)
				if err != nil {
					a.fail(fmt.Errorf("storing directory %s: %w", path, err))
				}
				n.Subtree = id
			}
			done.Done()
		}()
	}()

	if a.opt.OneFileSystem && !a.devs[n.Device] {
		return // the mount point is recorded, its contents are not
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		a.warn(path, n, err)
	}
	prev := a.loadPrev(ctx, prevTree)
	if prev != nil {
		a.prefetch.queue(prev.subtrees)
		defer a.prefetch.forget(prev.subtrees)
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		name := e.Name()
		p := filepath.Join(path, name)
		if a.skip[p] {
			continue
		}
		childRel := append(rel[:len(rel):len(rel)], name)
		if a.ignore.Match(childRel, e.IsDir()) {
			continue
		}
		child, err := readMeta(p, name, a.names)
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
				children = append(children, child)
				continue
			}
			if dir.Subtree, err = a.walkChain(ctx, p, sub, prevSub); err != nil {
				a.fail(err)
				return
			}
			children = append(children, dir)
			continue
		}
		children = append(children, child)
		if child.Type == TypeDir {
			a.dirs.Add(1)
			pending.Add(1)
			a.walkDir(ctx, p, childRel, child, prevSub, &pending, sub)
			continue
		}
		a.addEntry(ctx, p, childRel, child, prev.node(name), &pending)
	}
}

// addEntry handles a non-directory entry: unchanged files take their
// content from the parent snapshot, other files go to the readers.
func (a *archiver) addEntry(ctx context.Context, path string, rel []string, n *Node, prev *Node, pending *sync.WaitGroup) {
	if n.Type != TypeFile {
		a.others.Add(1)
		a.prog.Processed(1, 0)
		return
	}
	a.files.Add(1)
	if a.unchangedFile(prev, n) {
		n.Content = prev.Content
		a.unchanged.Add(1)
		a.size.Add(n.Size)
		a.prog.Processed(1, n.Size)
		return
	}
	if prev == nil {
		a.newFiles.Add(1)
	} else {
		a.changed.Add(1)
	}
	pending.Add(1)
	select {
	case a.fileCh <- &fileJob{path: path, node: n, done: pending}:
	case <-ctx.Done():
		pending.Done()
	}
}

// openNoAtime opens a file for reading without updating its access time
// where the kernel allows it (O_NOATIME needs ownership or CAP_FOWNER).
func openNoAtime(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOATIME|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	return f, err
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

// fileJob is one file to read. remaining counts the reader's hold plus
// one per chunk not yet stored; whoever drops it to zero completes the file.
type fileJob struct {
	path      string
	node      *Node
	done      *sync.WaitGroup
	mu        sync.Mutex
	content   []Extent
	remaining atomic.Int64
}

// release drops one hold; the last one completes the file's node.
func (f *fileJob) release(a *archiver) {
	if f.remaining.Add(-1) != 0 {
		return
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
	f.done.Done()
}

type blobJob struct {
	file *fileJob
	idx  int     // index in file.content
	buf  *[]byte // pooled; data is (*buf)[:n]
	n    int
}

// readFiles is a reader: it chunks files and hands the chunks on.
func (a *archiver) readFiles(ctx context.Context) {
	for job := range a.fileCh {
		if ctx.Err() != nil {
			job.done.Done()
			continue
		}
		a.readFile(ctx, job)
	}
}

// takeChunker waits for a free chunker, making it on first use. Chunkers
// are fewer than readers: each holds a 2 x 8 MiB buffer, and chunking is
// CPU work that more chunkers than CPUs would not speed up, while readers
// of small files, which need no chunker, mostly wait for the disk.
func (a *archiver) takeChunker(ctx context.Context) (*chunkers.Chunker, error) {
	var ch *chunkers.Chunker
	select {
	case ch = <-a.chunkers:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if ch != nil {
		return ch, nil
	}
	opts := a.chunk // each chunker needs its own copy: Setup fills defaults in
	ch, err := chunkers.NewChunkerBuffer(gearChunkerName, nil, &opts, make([]byte, 2*a.chunk.MaxSize))
	if err != nil {
		a.chunkers <- nil
		return nil, fmt.Errorf("setting up the chunker: %w", err)
	}
	return ch, nil
}

func (a *archiver) readFile(ctx context.Context, job *fileJob) {
	job.remaining.Store(1)
	n := job.node
	defer func() {
		a.prog.Processed(1, 0)
		job.release(a)
	}()

	f, err := openNoAtime(job.path)
	if err != nil {
		a.warn(job.path, n, err)
		return
	}
	defer f.Close()
	a.filesRead.Add(1)
	fi, err := f.Stat()
	if err != nil {
		a.warn(job.path, n, err)
		return
	}
	n.Size = fi.Size()
	if n.Size == 0 {
		// Files of procfs, sysfs and FUSE often have a stat size of 0 but
		// content when read: read to EOF and store what was read (an
		// empty file costs one read).
		read, err := a.readToEOF(ctx, job, f)
		if err != nil {
			if ctx.Err() == nil {
				a.warn(job.path, n, err)
			}
			return
		}
		a.bytesRead.Add(read)
		a.prog.Processed(0, read)
		return
	}
	regions, err := dataRegions(f, n.Size)
	if err != nil {
		a.warn(job.path, n, err)
		return
	}
	var pos int64
	var ch *chunkers.Chunker
	defer func() {
		if ch != nil {
			a.chunkers <- ch
		}
	}()
	for _, reg := range regions {
		if reg.Off > pos {
			job.addExtent(Extent{Hole: true, Size: reg.Off - pos})
		}
		var read int64
		if reg.Len <= int64(a.chunk.MinSize) {
			// FastCDC never cuts a region this short: it is one chunk,
			// read without a chunker.
			read, err = a.readWhole(ctx, job, f, reg)
		} else {
			if ch == nil {
				if ch, err = a.takeChunker(ctx); err != nil {
					a.fail(err)
					return
				}
			}
			read, err = a.chunkRegion(ctx, ch, job, f, reg)
		}
		if err != nil {
			// Chunks already handed on still write into job.content, so
			// it is dropped only when the file completes.
			if ctx.Err() == nil {
				a.warn(job.path, n, err)
			}
			return
		}
		a.bytesRead.Add(read)
		a.prog.Processed(0, read)
		pos = reg.Off + read
	}
	if pos < n.Size {
		job.addExtent(Extent{Hole: true, Size: n.Size - pos})
	}
}

// readToEOF reads a file of unknown length from its current offset to EOF
// and hands its chunks on, as they would be cut had its size been known,
// and returns how many bytes it read.
func (a *archiver) readToEOF(ctx context.Context, job *fileJob, f *os.File) (int64, error) {
	// Up to MinSize bytes are one chunk, which needs no chunker.
	b := a.getBuf(a.chunk.MinSize + 1)
	n, err := io.ReadFull(f, *b)
	switch {
	case err == io.EOF:
		a.bufs.Put(b)
		return 0, nil
	case err == io.ErrUnexpectedEOF:
		return int64(n), a.sendChunk(ctx, job, b, n)
	case err != nil:
		a.bufs.Put(b)
		return int64(n), err
	}
	defer a.bufs.Put(b)
	ch, err := a.takeChunker(ctx)
	if err != nil {
		a.fail(err)
		return 0, err
	}
	defer func() { a.chunkers <- ch }()
	return a.chunkStream(ctx, ch, job, io.MultiReader(bytes.NewReader((*b)[:n]), f))
}

// chunkRegion cuts a data region into chunks and hands them on, and
// returns how many bytes it read.
func (a *archiver) chunkRegion(ctx context.Context, ch *chunkers.Chunker, job *fileJob, f *os.File, reg region) (int64, error) {
	return a.chunkStream(ctx, ch, job, io.NewSectionReader(f, reg.Off, reg.Len))
}

// chunkStream cuts r into chunks and hands them on, and returns how many
// bytes it read.
func (a *archiver) chunkStream(ctx context.Context, ch *chunkers.Chunker, job *fileJob, r io.Reader) (int64, error) {
	counted := &countingReader{r: r}
	ch.Reset(counted)
	for {
		chunk, err := ch.Next()
		if err != nil && err != io.EOF {
			return counted.n, err
		}
		if len(chunk) > 0 {
			b := a.getBuf(len(chunk))
			copy(*b, chunk)
			if err := a.sendChunk(ctx, job, b, len(chunk)); err != nil {
				return counted.n, err
			}
		}
		if err == io.EOF {
			return counted.n, nil
		}
	}
}

// readWhole reads a data region as one chunk and hands it on. A file that
// shrank since it was examined gives a shorter chunk, as the chunker would.
func (a *archiver) readWhole(ctx context.Context, job *fileJob, f *os.File, reg region) (int64, error) {
	b := a.getBuf(int(reg.Len))
	n, err := io.ReadFull(io.NewSectionReader(f, reg.Off, reg.Len), *b)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		a.bufs.Put(b)
		return int64(n), err
	}
	if n == 0 {
		a.bufs.Put(b)
		return 0, nil
	}
	return int64(n), a.sendChunk(ctx, job, b, n)
}

// sendChunk records the next extent of job and hands its bytes, (*b)[:n],
// to the blob workers. A chunk larger than a pack of the backup's pack
// size holds is sent as consecutive pieces that fit, each an extent.
func (a *archiver) sendChunk(ctx context.Context, job *fileJob, b *[]byte, n int) error {
	if n <= a.maxBlob {
		return a.sendExtent(ctx, job, b, n)
	}
	// The later pieces are copied out first: the workers return b to the
	// pool once its piece is saved.
	var pieces []*[]byte
	for off := a.maxBlob; off < n; off += a.maxBlob {
		p := a.getBuf(min(a.maxBlob, n-off))
		copy(*p, (*b)[off:])
		pieces = append(pieces, p)
	}
	if err := a.sendExtent(ctx, job, b, a.maxBlob); err != nil {
		return err
	}
	for _, p := range pieces {
		if err := a.sendExtent(ctx, job, p, len(*p)); err != nil {
			return err
		}
	}
	return nil
}

// sendExtent records the next extent of job and hands its bytes, (*b)[:n],
// to the blob workers.
func (a *archiver) sendExtent(ctx context.Context, job *fileJob, b *[]byte, n int) error {
	idx := job.addExtent(Extent{Size: int64(n)})
	job.remaining.Add(1)
	select {
	case a.blobCh <- blobJob{file: job, idx: idx, buf: b, n: n}:
		return nil
	case <-ctx.Done():
		job.remaining.Add(-1)
		return ctx.Err()
	}
}

func (f *fileJob) addExtent(e Extent) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.content = append(f.content, e)
	return len(f.content) - 1
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (a *archiver) getBuf(n int) *[]byte {
	if b, ok := a.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, max(n, 1<<20))
	return &b
}

// saveBlobs is a blob worker.
func (a *archiver) saveBlobs(ctx context.Context) {
	for job := range a.blobCh {
		if ctx.Err() == nil {
			id, _, err := a.saver.Save(ctx, repo.BlobData, (*job.buf)[:job.n])
			if err != nil {
				a.fail(fmt.Errorf("storing %s: %w", job.file.path, err))
			} else {
				job.file.mu.Lock()
				job.file.content[job.idx].ID = id
				job.file.mu.Unlock()
			}
		}
		a.bufs.Put(job.buf)
		job.file.release(a)
	}
}

// scan walks the paths ahead of the backup to total files and bytes.
func (a *archiver) scan(ctx context.Context, paths []string) {
	for _, root := range paths {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil || a.skip[p] {
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if p != root {
				rel, _ := filepath.Rel(root, p)
				if a.ignore.Match(strings.Split(rel, string(filepath.Separator)), d.IsDir()) {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
			}
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					a.prog.Scanned(1, fi.Size())
				}
			} else if !d.IsDir() {
				a.prog.Scanned(1, 0)
			}
			return nil
		})
	}
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
