//go:build linux

package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage/mem"
)

// TestBackupDamagedParentTree damages the parent snapshot's tree of one
// directory: the next backup warns about it, reads the files below it
// again, and makes a snapshot that restores the tree as it is.
func TestBackupDamagedParentTree(t *testing.T) {
	t.Parallel()
	f := newTamperFixture(t)
	tree := f.nodes["a/b"].Subtree
	loc, ok := f.r.Index().Lookup(tree)
	if !ok || loc.Type != repo.BlobTree {
		t.Fatalf("tree of a/b not indexed as a tree: %+v", loc)
	}
	flipByte(t, packPath(f.repoDir, loc.Pack), int64(loc.Offset)+int64(loc.Length)/2)
	// A new file gives a/b a new tree: the damaged one, which the
	// repository already holds, would be reused for an unchanged a/b.
	writeFile(t, filepath.Join(f.src, "a/b/new.txt"), []byte("new since the parent"), 0o644)
	below := countTree(t, filepath.Join(f.src, "a/b")).files

	rec := &progressRecorder{}
	r := reopen(t, f.st)
	sn := backup(t, r, f.src, BackupOptions{Progress: rec})

	w := rec.warnings()
	dir := filepath.Join(f.src, "a/b")
	if len(w) != 1 || w[0].path != dir || !errors.Is(w[0].err, repo.ErrCorrupt) ||
		!strings.Contains(w[0].err.Error(), "parent snapshot's tree of this directory is damaged") ||
		!strings.Contains(w[0].err.Error(), "read again") {
		t.Fatalf("warnings %v; want one that the parent's tree of %s is damaged", w, dir)
	}
	s := sn.Summary
	if sn.Parent != f.sn.ID || s.Errors != 0 || s.FilesRead != below || s.UnchangedFiles != s.Files-below {
		t.Errorf("summary: parent %s, %d errors, %d files read, %d of %d unchanged; want %s, 0, %d, %d",
			sn.Parent.Short(), s.Errors, s.FilesRead, s.UnchangedFiles, s.Files, f.sn.ID.Short(), below, s.Files-below)
	}
	dst := t.TempDir()
	restore(t, reopen(t, f.st), sn, "", dst)
	testutil.CompareTrees(t, f.src, dst)
}

// failingSaver fails the save of the blob of type typ after the first
// left ones, and saves the others with next.
type failingSaver struct {
	next blobSaver
	typ  repo.BlobType
	left atomic.Int64
	err  error
}

func (s *failingSaver) Save(ctx context.Context, t repo.BlobType, b []byte) (repo.ID, bool, error) {
	if t == s.typ && s.left.Add(-1) < 0 {
		return repo.ID{}, false, s.err
	}
	return s.next.Save(ctx, t, b)
}

// TestBackupFirstErrorStopsAll fails one stage of a backup of many
// directories early on: the backup returns that error, not the
// cancellation it caused in the other stages, the walk stops soon after,
// and no goroutine of the backup is left. A chunker that cannot be set up
// fails the backup before any stage starts, with the same guarantees.
func TestBackupFirstErrorStopsAll(t *testing.T) {
	const dirs, filesPerDir = 40, 40
	src := t.TempDir()
	for d := range dirs {
		for f := range filesPerDir {
			writeFile(t, filepath.Join(src, fmt.Sprintf("d%02d/f%02d", d, f)), []byte(fmt.Sprintf("file %d of directory %d", f, d)), 0o644)
		}
		// One file per directory large enough to need a chunker.
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%02d/large", d)), testutil.RandomBytes(int64(d), 80<<10), 0o644)
	}
	total := int64(dirs * (filesPerDir + 1))
	injected := errors.New("injected failure")

	for _, tc := range []struct {
		name  string
		setup func(a *archiver)
	}{
		{"blob worker", func(a *archiver) {
			s := &failingSaver{next: a.saver, typ: repo.BlobData, err: injected}
			s.left.Store(20)
			a.saver = s
		}},
		{"tree saver", func(a *archiver) {
			a.saver = &failingSaver{next: a.saver, typ: repo.BlobTree, err: injected}
		}},
		{"chunker setup", func(a *archiver) {
			a.chunk.Key = []byte("not a chunker key")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSmallChunkRepo(t, mem.New())
			paths := []string{src}
			a := newArchiver(r, BackupOptions{Paths: paths, Scan: true}, r.Config().PackSize)
			a.saver = newDryRunSaver(r, a.maxBlob)
			tc.setup(a)

			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err := a.run(ctx, paths, nil)
			if tc.name == "chunker setup" {
				if !errors.Is(err, errChunkerSetup) {
					t.Fatalf("backup returned %v, want the chunker's setup error", err)
				}
			} else if !errors.Is(err, injected) {
				t.Fatalf("backup returned %v, want the injected error", err)
			}
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				t.Errorf("backup returned %v (deadline: %v), want the first error alone", err, ctx.Err())
			}
			t.Logf("walk saw %d files, err %v", a.files.Load(), err)
			if seen := a.files.Load(); seen > total/2 {
				t.Errorf("the walk went on to %d of %d files after the error", seen, total)
			}
			if left := archiverGoroutines(); left != "" {
				t.Errorf("goroutines of the backup left after it returned:\n%s", left)
			}
		})
	}
}

// archiverGoroutines returns the stacks of goroutines running the
// archiver's code, waiting a little for those that are returning.
func archiverGoroutines() string {
	var found string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		found = ""
		for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
			if bytes.Contains(g, []byte("snapshot.(*archiver)")) || bytes.Contains(g, []byte("snapshot.(*prefetcher")) ||
				bytes.Contains(g, []byte("snapshot.goWorkers")) {
				found += string(g) + "\n\n"
			}
		}
		if found == "" {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return found
}

// TestBackupProgressTotals checks the totals a backup gives a progress
// display: a first backup scans the tree; a backup with a parent snapshot
// takes the parent's totals as its estimate, without scanning (which
// lstat()s every file a second time), and ends with the totals of what it
// backed up, here fewer files and more bytes than the parent's.
func TestBackupProgressTotals(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	const files = 40
	for i := range files {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d/f%02d", i%4, i)), bytes.Repeat([]byte{byte(i)}, 100+i), 0o644)
	}
	r := newRepo(t, mem.New())

	first := &progressRecorder{}
	sn := backup(t, r, src, BackupOptions{Scan: true, Progress: first})
	if s := sn.Summary; first.scannedFiles != s.Files || first.scannedBytes != s.Size || s.Files != files {
		t.Errorf("first backup: totals %d files, %d bytes; the snapshot has %d, %d", first.scannedFiles, first.scannedBytes, s.Files, s.Size)
	}

	for i := range 5 {
		if err := os.Remove(filepath.Join(src, fmt.Sprintf("d%d/f%02d", i%4, i))); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(src, "d0/big"), make([]byte, 10<<10), 0o644)
	next := &progressRecorder{}
	sn2 := backup(t, r, src, BackupOptions{Scan: true, Progress: next})
	s := sn2.Summary
	if sn2.Parent != sn.ID || next.scannedFiles != s.Files || next.scannedBytes != s.Size || s.Files != files-4 {
		t.Errorf("backup with a parent: totals %d files, %d bytes; the snapshot has %d, %d (parent %s)",
			next.scannedFiles, next.scannedBytes, s.Files, s.Size, sn2.Parent.Short())
	}
	// The estimate and its correction: a scan would have reported each
	// file.
	if next.scans != 2 {
		t.Errorf("backup with a parent: Scanned called %d times, want 2 (the parent's totals, then the correction)", next.scans)
	}
	if next.files != s.Files || next.bytes != s.Size {
		t.Errorf("backup with a parent: processed %d files, %d bytes; want %d, %d", next.files, next.bytes, s.Files, s.Size)
	}
}

// TestBackupXattrsSinceParent checks that a backup with a parent snapshot,
// which takes the attributes of unchanged entries from it, still records
// an attribute set since then.
func TestBackupXattrsSinceParent(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	for _, name := range []string{"a", "b"} {
		writeFile(t, filepath.Join(src, name), []byte("content of "+name), 0o644)
		if err := unix.Lsetxattr(filepath.Join(src, name), "user.x", []byte(name), 0); err != nil {
			t.Fatalf("%s takes no user.* attributes, which this test needs: %v", src, err)
		}
	}
	r := newRepo(t, mem.New())
	backup(t, r, src, BackupOptions{})
	time.Sleep(20 * time.Millisecond) // a tick of the coarse clock ctime takes
	if err := unix.Lsetxattr(filepath.Join(src, "b"), "user.y", []byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	sn := backup(t, r, src, BackupOptions{})
	nodes := listSnapshot(t, r, sn)
	want := map[string][]Xattr{"a": {{"user.x", []byte("a")}}, "b": {{"user.x", []byte("b")}, {"user.y", []byte("new")}}}
	for name, xs := range want {
		if n := nodes[name]; n == nil || !reflect.DeepEqual(n.Xattrs, xs) {
			t.Errorf("%s: %+v; want attributes %q", name, n, xs)
		}
	}
	if s := sn.Summary; s.UnchangedFiles != 1 || sn.Parent.IsZero() {
		t.Errorf("second backup: %d files unchanged, parent %s; want 1 and the first", s.UnchangedFiles, sn.Parent.Short())
	}
}

// countingSaver counts the tree blobs a backup saves.
type countingSaver struct {
	next  blobSaver
	trees atomic.Int64
}

func (s *countingSaver) Save(ctx context.Context, t repo.BlobType, b []byte) (repo.ID, bool, error) {
	if t == repo.BlobTree {
		s.trees.Add(1)
	}
	return s.next.Save(ctx, t, b)
}

// TestBackupReusesParentTrees checks that a directory whose entries all
// came out as the parent snapshot recorded them takes the parent's tree
// without saving it again: a backup of an unchanged tree saves only the
// directories above the backed-up one (saved every time), not the 41
// backed up; with one file changed, the two directories on its way are
// saved besides. The snapshot restores as the source. Trees in condemned
// packs are saved again.
func TestBackupReusesParentTrees(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	const dirs = 40
	for d := range dirs {
		for f := range 3 {
			writeFile(t, filepath.Join(src, fmt.Sprintf("d%02d/f%d", d, f)), []byte(fmt.Sprintf("file %d of %d", f, d)), 0o644)
		}
	}
	st := mem.New()
	r := newRepo(t, st)
	parent := backup(t, r, src, BackupOptions{})

	saves := func(parent *Snapshot) int64 {
		t.Helper()
		a := newArchiver(r, BackupOptions{Paths: []string{src}}, r.Config().PackSize)
		s := &countingSaver{next: newDryRunSaver(r, a.maxBlob)}
		a.saver = s
		if _, err := a.run(t.Context(), []string{src}, parent); err != nil {
			t.Fatal(err)
		}
		return s.trees.Load()
	}
	all := saves(nil)
	above := saves(parent)
	if all-above != dirs+1 {
		t.Errorf("an unchanged tree's backup saved %d trees, one without a parent %d: want the %d directories backed up spared", above, all, dirs+1)
	}

	writeFile(t, filepath.Join(src, "d07/f1"), []byte("changed, and longer than before"), 0o644)
	if n := saves(parent); n != above+2 {
		t.Errorf("with one file changed the backup saved %d trees, want %d (d07 and its parent besides)", n, above+2)
	}
	sn := backup(t, r, src, BackupOptions{})
	dst := t.TempDir()
	restore(t, reopen(t, st), sn, "", dst)
	testutil.CompareTrees(t, src, dst)

	// Trees in packs a prune plan condemns are not referred to: with
	// every pack condemned, every tree is saved again.
	var packs []repo.ID
	r.Index().Each(func(_ repo.ID, loc repo.Location) { packs = append(packs, loc.Pack) })
	r.Index().Condemn(packs)
	if n := saves(sn); n != all {
		t.Errorf("with the parent's packs condemned the backup saved %d trees, want all %d", n, all)
	}
}
