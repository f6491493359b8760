package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"golang.org/x/sync/errgroup"

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
	// Scan gives Progress.Scanned the totals of what is to be backed up,
	// for displays that show a total and an estimated time left. With a
	// parent snapshot, its totals are the estimate, which the walk
	// corrects once it has seen every entry; without one, a scanner walks
	// the paths ahead of the backup, which reads every directory and
	// lstat()s every file a second time.
	Scan bool
	// StdinName, if not empty, backs up Stdin instead of Paths (which must
	// be empty): read to EOF and stored as one regular file of that name
	// (see CheckStdinName) at the top of the snapshot, whose path is
	// "/"+StdinName and whose base is "/". The file has mode StdinMode,
	// the current user as owner and the backup's start as its mtime. An
	// empty Stdin is a warning (ErrEmptyStdin) counted in
	// Summary.Errors; the snapshot, holding an empty file, is saved.
	StdinName string
	Stdin     io.Reader
}

// BackupProgress receives progress events from a backup. Its methods are
// called from several goroutines at once.
type BackupProgress interface {
	// Scanned adds to the totals, to give an ETA: what the scanner found
	// so far, or the parent snapshot's totals and, once the walk has seen
	// every entry, the difference to what it found (which can be
	// negative).
	Scanned(files, bytes int64)
	// Processed adds files and bytes the backup has dealt with.
	Processed(files, bytes int64)
	// Warn reports an entry that could not be read, or something else the
	// user should know of; the backup goes on.
	Warn(path string, err error)
}

type nopProgress struct{}

func (nopProgress) Scanned(int64, int64)   {}
func (nopProgress) Processed(int64, int64) {}
func (nopProgress) Warn(string, error)     {}

// maxWalkers is how many goroutines walk the backed-up directories at
// most, given cpus. Walkers mostly wait in lstat() and getdents(), and on
// a cold page cache for the disk, so there are a few more than CPUs.
func maxWalkers(cpus int) int { return min(max(cpus, 2)*2, 16) }

// fileReaders is how many files are read at once. Reading is mostly
// waiting for the disk; a few readers keep the CPU-bound blob workers fed
// even when files are small.
const fileReaders = 3

// errChunkerSetup marks a chunker that cannot be set up from the
// repository's configuration: no large file could be read, so the backup
// does not start.
var errChunkerSetup = errors.New("setting up the chunker")

// archiver is the state of one backup. The pipeline, top to bottom (run
// sets it up; each stage has a file of its own):
//
//  1. walk (archiver_walk.go and archiver_roots.go): reads directories
//     and lstat()s entries in order, reuses the parent snapshot's content
//     for unchanged files, and sends the others to fileCh. One goroutine
//     walks depth first and hands a subdirectory to another walker when
//     one of maxWalkers is idle, since lstat() is most of an incremental
//     backup of small files and one walker keeps one core busy;
//  2. readers (fileReaders goroutines, archiver_read.go): open a file, find
//     its data regions, cut them into content-defined chunks and send each
//     chunk to blobCh;
//  3. blob workers (one per CPU, archiver_save.go): MAC, compress, encrypt
//     and pack a chunk (repo.BlobSaver), then record its id in the file's
//     extent list;
//  4. tree savers (one per CPU, archiver_save.go): store the tree of each
//     directory sent to treeCh, which whoever completes its last entry
//     sends, so the walk never waits for a directory's files.
//
// Every channel is bounded, so a stage that falls behind holds up the
// stages before it rather than letting work pile up in memory. The first
// error of any stage cancels the others and is what the backup returns.
type archiver struct {
	repo     *repo.Repository
	saver    blobSaver
	opt      BackupOptions
	prog     BackupProgress
	names    *idNames
	excludes gitignore.Matcher
	skip     map[string]bool
	chunk    chunkers.ChunkerOpts
	// maxBlob is the largest data blob a pack of the backup's pack size
	// holds; sendChunk splits larger chunks.
	maxBlob  int
	fileCh   chan *fileJob
	blobCh   chan blobJob
	treeCh   chan *dirJob
	cutter   *chunkReader
	prefetch *prefetcher[*prevDir]
	bufs     sync.Pool
	// walkers holds a token per walker busy beside the first; walking
	// counts them all, for the stages after the walk to know when it is
	// over; group runs them.
	walkers chan struct{}
	walking *sync.WaitGroup
	group   *errgroup.Group

	devsMu sync.Mutex
	devs   map[uint64]bool // filesystems of the backed-up paths, for OneFileSystem

	// xattrsFromParent lets the walk take an unchanged entry's extended
	// attributes from the parent snapshot (readMetaSince): only when the
	// same user made it, since which attributes a process may list
	// depends on its privileges.
	xattrsFromParent bool
	// walkBytes adds up the sizes the walk found of regular files, to
	// correct an estimate of the totals.
	walkBytes atomic.Int64

	files, dirs, others, size    atomic.Int64
	newFiles, changed, unchanged atomic.Int64
	filesRead, bytesRead, errs   atomic.Int64
}

// newArchiver prepares a backup of opt into r with packs of packSize
// bytes; the caller sets its saver.
func newArchiver(r *repo.Repository, opt BackupOptions, packSize int) *archiver {
	a := &archiver{repo: r, opt: opt, prog: opt.Progress, names: newIDNames(), skip: map[string]bool{}, devs: map[uint64]bool{}}
	if a.prog == nil {
		a.prog = nopProgress{}
	}
	a.excludes = newExcludes(opt.Excludes)
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
	return a
}

// newExcludes parses gitignore patterns. It and excluded are all the
// archiver knows of the matcher's library.
func newExcludes(patterns []string) gitignore.Matcher {
	var ps []gitignore.Pattern
	for _, p := range patterns {
		ps = append(ps, gitignore.ParsePattern(p, nil))
	}
	return gitignore.NewMatcher(ps)
}

// excluded reports whether the entry at rel, its path elements below the
// backed-up path, is excluded.
func (a *archiver) excluded(rel []string, isDir bool) bool {
	return a.excludes.Match(rel, isDir)
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
	var paths []string
	var err error
	if opt.StdinName != "" {
		if paths, err = stdinPaths(opt); err != nil {
			return nil, err
		}
	} else if paths, err = cleanPaths(opt.Paths); err != nil {
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
	if opt.StdinName != "" {
		sn.Base = "/" // not basePath: a directory /name on this host is not what is stored
	}
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

	a := newArchiver(r, opt, packSize)
	a.xattrsFromParent = parent != nil && parent.User == sn.User
	var stats repo.SaveStats
	run := func(ctx context.Context, s blobSaver) error {
		a.saver = s
		tree, err := a.run(ctx, paths, parent)
		sn.Tree = tree
		return err
	}
	if opt.DryRun {
		d := newDryRunSaver(r, a.maxBlob)
		err = run(ctx, d)
		stats.NewBlobs, stats.NewRawBytes = d.newBlobs, d.newBytes
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

// dryRunSaver computes ids and reports what would be new without
// storing, counting the new blobs once each: the estimate of what the
// backup would add that -dry-run prints.
type dryRunSaver struct {
	r       *repo.Repository
	maxBlob int

	mu       sync.Mutex
	seen     map[repo.ID]bool // new blobs met so far
	newBlobs int64
	newBytes int64
}

func newDryRunSaver(r *repo.Repository, maxBlob int) *dryRunSaver {
	return &dryRunSaver{r: r, maxBlob: maxBlob, seen: map[repo.ID]bool{}}
}

// MaxBlob is what the backup's BlobSaver would say.
func (d *dryRunSaver) MaxBlob() int { return d.maxBlob }

func (d *dryRunSaver) Save(_ context.Context, t repo.BlobType, b []byte) (repo.ID, bool, error) {
	id := d.r.BlobID(t, b)
	if d.r.Index().Has(id) {
		return id, false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[id] {
		return id, false, nil
	}
	d.seen[id] = true
	d.newBlobs++
	d.newBytes += int64(len(b))
	return id, true, nil
}

// run performs the backup and returns the root tree id. It starts the
// stages, each in its own goroutines, and closes each channel once every
// stage that sends to it has returned. The first error a stage returns
// cancels ctx for all of them, and is what run returns.
func (a *archiver) run(ctx context.Context, paths []string, parent *Snapshot) (repo.ID, error) {
	cpus := runtime.GOMAXPROCS(0)
	a.fileCh = make(chan *fileJob)
	a.blobCh = make(chan blobJob, 2*cpus)
	// Directories queue for the tree savers as chunks do for the blob
	// workers: a walk racing through unchanged directories waits for them
	// rather than piling up trees to store.
	a.treeCh = make(chan *dirJob, 2*cpus)
	cutter, err := newChunkReader(a.chunk)
	if err != nil {
		return repo.ID{}, fmt.Errorf("%w: %w", errChunkerSetup, err)
	}
	a.cutter = cutter

	// Progress totals: the parent snapshot's, when it has any, are an
	// estimate that costs nothing, and the walk makes them exact at its
	// end; a scan would lstat every file a second time and read every
	// directory again (docs/benchmarks.md: a sixth of the CPU of a
	// no-change backup of small files with a progress display).
	// Standard input's length is known at its end only.
	scan, estimate := a.opt.Scan && a.opt.StdinName == "", Summary{}
	if scan && parent != nil && parent.Summary.Files > 0 {
		scan, estimate = false, parent.Summary
		a.prog.Scanned(estimate.Files, estimate.Size)
	}

	g, gctx := errgroup.WithContext(ctx)
	var root repo.ID
	a.group, a.walkers = g, make(chan struct{}, max(maxWalkers(cpus)-1, 0))
	// walking is set before the first walker starts, which reads it.
	a.walking = new(sync.WaitGroup)
	a.walking.Add(1)
	g.Go(func() error {
		defer a.walking.Done()
		a.prefetch = newPrefetcher(gctx, a.loadPrevDir)
		defer a.prefetch.close()
		var err error
		if a.opt.StdinName != "" {
			root, err = a.backupStdin(gctx)
		} else {
			root, err = a.walkRoots(gctx, paths, parent)
		}
		if err == nil && estimate.Files > 0 {
			a.prog.Scanned(a.files.Load()-estimate.Files, a.walkBytes.Load()-estimate.Size)
		}
		return err
	})
	reading := goWorkers(g, fileReaders, func() error { return a.readFiles(gctx) })
	saving := goWorkers(g, cpus, func() error { return a.saveBlobs(gctx) })
	goWorkers(g, cpus, func() error { return a.saveTrees(gctx) })
	g.Go(func() error {
		a.walking.Wait()
		close(a.fileCh)
		reading.Wait()
		close(a.blobCh)
		// The walk, the readers and the blob workers all complete
		// directories.
		saving.Wait()
		close(a.treeCh)
		return nil
	})

	// The scanner only feeds the progress display: it is stopped with the
	// backup, so nothing reports progress after Backup returns.
	var scanning sync.WaitGroup
	scanCtx, stopScan := context.WithCancel(gctx)
	if scan {
		scanning.Go(func() { a.scan(scanCtx, paths) })
	}
	err = g.Wait()
	stopScan()
	scanning.Wait()
	if err == nil {
		// A stage that saw the caller cancel may have stopped without
		// saying so.
		err = ctx.Err()
	}
	if err != nil {
		return repo.ID{}, err
	}
	return root, nil
}

// goWorkers runs n copies of work in g and returns a WaitGroup that is
// done once all of them have returned.
func goWorkers(g *errgroup.Group, n int, work func() error) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(n)
	for range n {
		g.Go(func() error {
			defer wg.Done()
			return work()
		})
	}
	return &wg
}
