//go:build linux

package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// TestDedupSameTreeTwice backs up one tree twice into the same repository.
// The second backup, by the next run of coffer, must add under 1% of what
// the first stored, whether it finds the first as its parent (and skips
// reading) or, from another host, reads everything again and dedups by
// the index alone.
func TestDedupSameTreeTwice(t *testing.T) {
	t.Parallel()
	for _, sk := range storeKinds {
		for _, host := range []string{"", "another-host"} {
			t.Run(fmt.Sprintf("%s/host=%q", sk.name, host), func(t *testing.T) {
				src := t.TempDir()
				testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 4, LargeFileSize: 2 << 20})
				st := sk.open(t)
				r := newRepo(t, st)
				empty := storeBytes(t, st)
				first := backup(t, r, src, BackupOptions{})
				once := storeBytes(t, st)
				second := backup(t, reopen(t, st), src, BackupOptions{Host: host})
				twice := storeBytes(t, st)

				stored := once - empty
				if stored < 2<<20 {
					t.Fatalf("the first backup stored only %d bytes", stored)
				}
				if grown := twice - once; grown*100 >= stored {
					t.Errorf("the second backup grew the store by %d bytes, %.2f%% of the %d the first stored",
						grown, float64(grown)*100/float64(stored), stored)
				}
				if s := second.Summary; s.NewBytes*100 >= first.Summary.NewBytes {
					t.Errorf("the second backup has %d new bytes in %d new blobs, the first %d", s.NewBytes, s.NewBlobs, first.Summary.NewBytes)
				}
				wantRead := int64(0)
				if host != "" {
					wantRead = first.Summary.Files
				}
				if second.Summary.FilesRead != wantRead {
					t.Errorf("the second backup read %d files, want %d", second.Summary.FilesRead, wantRead)
				}
			})
		}
	}
}

// TestDedupWithinTree backs up two copies of a 4 MiB random file: the
// store must grow by one copy (and under 1% more), not two.
func TestDedupWithinTree(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			src := t.TempDir()
			data := testutil.RandomBytes(5, size)
			writeFile(t, filepath.Join(src, "one/copy.bin"), data, 0o644)
			writeFile(t, filepath.Join(src, "two/other name.bin"), data, 0o600)
			st := sk.open(t)
			r := newRepo(t, st)
			before := storeBytes(t, st)
			sn := backup(t, r, src, BackupOptions{})
			grown := storeBytes(t, st) - before
			if grown < size || grown*100 >= size*101 {
				t.Errorf("two copies of %d random bytes grew the store by %d bytes (%.2f%% over one copy)",
					size, grown, float64(grown-size)*100/size)
			}
			if s := sn.Summary; s.NewBytes < size || s.NewBytes*100 >= size*101 || s.Size != 2*size || s.BytesRead != 2*size {
				t.Errorf("summary: %d new bytes, size %d, read %d; want one copy new of two read", s.NewBytes, s.Size, s.BytesRead)
			}
			// Both copies name the same blobs.
			nodes := listSnapshot(t, r, sn)
			a, b := nodes["one/copy.bin"], nodes["two/other name.bin"]
			if a == nil || b == nil || !slices.Equal(a.Content, b.Content) {
				t.Errorf("the copies' content differs: %v vs %v", a, b)
			}
		})
	}
}

// TestIncremental backs up one tree repeatedly, each run by a fresh
// repository handle, changing it in between, and checks that exactly the
// changed files are read again and that each snapshot restores to the
// tree as it was.
func TestIncremental(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 6, Files: 20, LargeFileSize: 1 << 20})
	st := mem.New()
	prev := backup(t, newRepo(t, st), src, BackupOptions{})
	files := prev.Summary.Files

	newMtime := time.Date(2024, 1, 2, 3, 4, 5, 600700800, time.UTC)
	steps := []struct {
		name                   string
		change                 func(t *testing.T)
		read, changed, newFile int64
		bytes                  int64 // BytesRead
	}{
		{name: "unchanged", change: func(*testing.T) {}},
		{name: "content and mtime", change: func(t *testing.T) {
			writeFile(t, filepath.Join(src, "text.txt"), testutil.CompressibleBytes(60, 50000), 0o644)
			if err := os.Chtimes(filepath.Join(src, "text.txt"), newMtime, newMtime); err != nil {
				t.Fatal(err)
			}
		}, read: 1, changed: 1, bytes: 50000},
		{name: "mtime only", change: func(t *testing.T) {
			if err := os.Chtimes(filepath.Join(src, "files/with space.txt"), newMtime, newMtime); err != nil {
				t.Fatal(err)
			}
		}, read: 1, changed: 1, bytes: 777},
		// Same size, same mtime, new content: only the ctime tells.
		{name: "content behind an unchanged mtime", change: func(t *testing.T) {
			p := filepath.Join(src, "dup/one.bin")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, testutil.RandomBytes(61, int(fi.Size())), 0o644)
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, read: 1, changed: 1, bytes: 1<<20 + 4321},
		{name: "new file", change: func(t *testing.T) {
			writeFile(t, filepath.Join(src, "a/new.txt"), []byte("a new file"), 0o644)
			files++
		}, read: 1, newFile: 1, bytes: 10},
		{name: "removed file", change: func(t *testing.T) {
			if err := os.Remove(filepath.Join(src, "a/new.txt")); err != nil {
				t.Fatal(err)
			}
			files--
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change(t)
			r := reopen(t, st)
			sn := backup(t, r, src, BackupOptions{})
			got := sn.Summary
			if sn.Parent != prev.ID {
				t.Errorf("parent %s, want the previous snapshot %s", sn.Parent.Short(), prev.ID.Short())
			}
			if got.Files != files || got.FilesRead != s.read || got.ChangedFiles != s.changed || got.NewFiles != s.newFile ||
				got.UnchangedFiles != files-s.changed-s.newFile || got.BytesRead != s.bytes || got.Errors != 0 {
				t.Errorf("summary: %d files, %d read (%d bytes), %d changed, %d new, %d unchanged; want %d, %d (%d), %d, %d, %d",
					got.Files, got.FilesRead, got.BytesRead, got.ChangedFiles, got.NewFiles, got.UnchangedFiles,
					files, s.read, s.bytes, s.changed, s.newFile, files-s.changed-s.newFile)
			}
			dst := t.TempDir()
			restore(t, r, sn, "", dst)
			testutil.CompareTrees(t, src, dst)
			prev = sn
		})
	}

	// The first snapshot still restores the tree as it was.
	r := reopen(t, st)
	sns, err := List(t.Context(), r)
	if err != nil || len(sns) != len(steps)+1 {
		t.Fatalf("%d snapshots (%v), want %d", len(sns), err, len(steps)+1)
	}
	dst := t.TempDir()
	restore(t, r, sns[0], "text.txt", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, "text.txt")); len(got) != 64<<10 {
		t.Errorf("text.txt from the first snapshot has %d bytes, want the original %d", len(got), 64<<10)
	}
}

// TestExcludes backs up a tree with gitignore-style excludes and compares
// the snapshot's paths with what git would ignore.
func TestExcludes(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	all := []string{
		"app.log", "keep.log", "main.go", "top-only",
		"build/", "build/out.bin", "build/keep.log",
		"logs.log/", "logs.log/inner.txt",
		"notbuild/", "notbuild/build", // a file named build
		"sub/", "sub/x.log", "sub/keep.log", "sub/top-only", "sub/main.go",
		"sub/build/", "sub/build/out.bin",
	}
	for _, p := range all {
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(filepath.Join(src, p), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFile(t, filepath.Join(src, p), []byte(p), 0o644)
	}
	without := func(drop ...string) []string {
		var out []string
		for _, p := range all {
			p = strings.TrimSuffix(p, "/")
			if !slices.ContainsFunc(drop, func(d string) bool { return p == d || strings.HasPrefix(p, d+"/") }) {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	cases := []struct {
		name     string
		excludes []string
		want     []string
	}{
		{"none", nil, without()},
		{"glob", []string{"*.log"}, without("app.log", "keep.log", "build/keep.log", "logs.log", "sub/x.log", "sub/keep.log")},
		{"negation", []string{"*.log", "!keep.log"}, without("app.log", "logs.log", "sub/x.log")},
		{"directory only", []string{"build/"}, without("build", "sub/build")},
		{"anchored", []string{"/top-only"}, without("top-only")},
		{"path", []string{"sub/main.go"}, without("sub/main.go")},
		{"all", []string{"*.log", "build/", "/top-only", "!keep.log"},
			without("app.log", "logs.log", "sub/x.log", "build", "sub/build", "top-only")},
	}
	st := mem.New()
	r := newRepo(t, st)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sn := backup(t, r, src, BackupOptions{Excludes: c.excludes, Progress: &progressRecorder{}})
			got := sortedKeys(listSnapshot(t, r, sn))
			if !slices.Equal(got, c.want) {
				t.Errorf("excludes %q:\nbacked up %q\nwant      %q", c.excludes, got, c.want)
			}
			var files int64
			for _, p := range c.want {
				if !slices.Contains(all, p+"/") {
					files++
				}
			}
			if sn.Summary.Files != files {
				t.Errorf("summary counts %d files, want %d", sn.Summary.Files, files)
			}
			if !slices.Equal(sn.Excludes, c.excludes) {
				t.Errorf("snapshot records excludes %q, want %q", sn.Excludes, c.excludes)
			}
		})
	}
}

// TestSkipPaths backs up a directory holding the repository it writes to:
// with the repository in SkipPaths, none of it is in the snapshot.
func TestSkipPaths(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "data/file.txt"), []byte("data"), 0o644)
	repoDir := filepath.Join(src, "data/repo")
	st := newFSStore(t, repoDir)
	r := newRepo(t, st)
	for _, skip := range []bool{false, true} {
		opt := BackupOptions{Progress: &progressRecorder{}}
		if skip {
			// Not clean, to show it is cleaned.
			opt.SkipPaths = []string{repoDir + "/"}
		}
		sn := backup(t, r, src, opt)
		nodes := listSnapshot(t, r, sn)
		if nodes["data/file.txt"] == nil {
			t.Errorf("skip=%v: data/file.txt not backed up", skip)
		}
		var inRepo []string
		for p := range nodes {
			if p == "data/repo" || strings.HasPrefix(p, "data/repo/") {
				inRepo = append(inRepo, p)
			}
		}
		if skip && len(inRepo) > 0 {
			t.Errorf("SkipPaths: backed up %d paths of the repository: %q", len(inRepo), inRepo)
		}
		if !skip && len(inRepo) == 0 {
			t.Errorf("without SkipPaths the repository is not in the snapshot: the test proves nothing")
		}
	}
}

// partialEnv, set, makes TestBackupUnreadableFile the helper run as nobody,
// backing up <dir>/src into the repository at <dir>/repo.
const partialEnv = "COFFER_SNAPSHOT_TEST_PARTIAL_DIR"

// TestBackupUnreadableFile backs up a tree with one file the backup cannot
// read. As root, which reads everything, the backup runs as nobody in a
// re-run of this test binary, with the file owned by root and mode 000.
func TestBackupUnreadableFile(t *testing.T) {
	if dir := os.Getenv(partialEnv); dir != "" {
		if os.Geteuid() == 0 {
			t.Fatal("the helper runs as root: dropping privileges failed")
		}
		partialBackup(t, filepath.Join(dir, "repo"), filepath.Join(dir, "src"))
		return
	}
	t.Parallel()
	asRoot := os.Geteuid() == 0
	base := sharedTempDir(t, "coffer-snapshot-partial-")
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "readable.txt"), []byte("anyone may read this"), 0o644)
	writeFile(t, filepath.Join(src, "sub/also.txt"), []byte("and this"), 0o644)
	writeFile(t, filepath.Join(src, "secret.txt"), []byte("nobody may read this"), 0o000)
	repoDir := filepath.Join(base, "repo")
	st := newFSStore(t, repoDir)
	newRepo(t, st)
	if asRoot {
		chownTree(t, repoDir, nobodyUID, nobodyUID)
		runTestAsNobody(t, "TestBackupUnreadableFile", partialEnv+"="+base)
	} else {
		partialBackup(t, repoDir, src)
	}

	r := reopen(t, st)
	sn, err := Find(t.Context(), r, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if s := sn.Summary; s.Errors != 1 || s.Files != 3 || s.FilesRead != 2 {
		t.Errorf("summary: %d errors, %d files, %d read; want 1, 3, 2", s.Errors, s.Files, s.FilesRead)
	}
	nodes := listSnapshot(t, r, sn)
	for p, n := range nodes {
		switch {
		case p == "secret.txt":
			if !strings.Contains(n.Error, "permission denied") || len(n.Content) != 0 || n.Mode != 0 {
				t.Errorf("secret.txt: error %q, %d extents, mode %#o; want permission denied, no content, mode 0", n.Error, len(n.Content), n.Mode)
			}
		case n.Error != "":
			t.Errorf("%s: unexpected error %q", p, n.Error)
		}
	}
	if nodes["secret.txt"] == nil {
		t.Fatal("the unreadable file is not in the snapshot")
	}

	// Restore warns about the file and still creates it.
	dst := t.TempDir()
	rec := &progressRecorder{}
	sum, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst, Progress: rec})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	w := rec.warnings()
	if len(w) != 1 || w[0].path != filepath.Join(dst, "secret.txt") || sum.Warnings != 1 {
		t.Errorf("restore warnings %v (summary %d), want one about %s", w, sum.Warnings, filepath.Join(dst, "secret.txt"))
	}
	if fi, err := os.Lstat(filepath.Join(dst, "secret.txt")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0 {
		t.Errorf("restored secret.txt: %v, %v; want a regular file with mode 0", fi, err)
	}
	for _, p := range []string{"readable.txt", "sub/also.txt"} {
		sameFile(t, filepath.Join(src, p), filepath.Join(dst, p))
	}

	// The next backup that can read the file reads it, and only it,
	// although its metadata did not change.
	if !asRoot {
		if err := os.Chmod(filepath.Join(src, "secret.txt"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	next := backup(t, reopen(t, st), src, BackupOptions{})
	if s := next.Summary; s.Errors != 0 || s.FilesRead != 1 || s.UnchangedFiles != 2 || next.Parent != sn.ID {
		t.Errorf("next backup: %d errors, %d read, %d unchanged, parent %s; want 0, 1, 2, %s",
			s.Errors, s.FilesRead, s.UnchangedFiles, next.Parent.Short(), sn.ID.Short())
	}
}

// partialBackup is the half of TestBackupUnreadableFile that must not run
// as root: it backs up src, whose secret.txt it cannot read.
func partialBackup(t *testing.T, repoDir, src string) {
	r := reopen(t, newFSStore(t, repoDir))
	rec := &progressRecorder{}
	sn := backup(t, r, src, BackupOptions{Progress: rec})
	w := rec.warnings()
	if len(w) != 1 || w[0].path != filepath.Join(src, "secret.txt") || !errors.Is(w[0].err, fs.ErrPermission) {
		t.Errorf("backup warnings %v, want one permission error about %s", w, filepath.Join(src, "secret.txt"))
	}
	if sn.Summary.Errors != 1 {
		t.Errorf("summary: %d errors, want 1", sn.Summary.Errors)
	}
}

// TestLargeDirectory backs up a directory of 10,000 entries, which is
// stored as a tree of parts, and restores it.
func TestLargeDirectory(t *testing.T) {
	t.Parallel()
	const entries = 10_000
	src := fastTempDir(t)
	big := filepath.Join(src, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		// Decimal names without padding sort differently as strings and
		// as numbers, so the parts must be cut from sorted names.
		if err := os.WriteFile(filepath.Join(big, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := fastTempDir(t)
	rt := backupAndRestore(t, mem.New(), src, dst)
	r, sn := rt.r, rt.loaded
	if rt.sum.Files != entries || rt.sum.Dirs != 2 || len(rt.warns) != 0 {
		t.Errorf("restored %d files and %d directories with warnings %v, want %d and 2 without", rt.sum.Files, rt.sum.Dirs, rt.warns, entries)
	}
	// CompareTrees would do, but reads 10,000 pairs of files with large
	// buffers; names, types, modes, sizes and mtimes are what matter here.
	sameMeta := func(a, b os.FileInfo) bool { return a.Mode() == b.Mode() && a.ModTime().Equal(b.ModTime()) }
	if w, err1 := os.Lstat(big); err1 != nil {
		t.Fatal(err1)
	} else if g, err2 := os.Lstat(filepath.Join(dst, "big")); err2 != nil || !sameMeta(w, g) {
		t.Errorf("restored directory: %v, %v; want mode %v mtime %v", g, err2, w.Mode(), w.ModTime())
	}
	want, got := dirState(t, big), dirState(t, filepath.Join(dst, "big"))
	if len(got) != entries+1 {
		t.Errorf("restored %d entries, want %d", len(got)-1, entries)
	}
	for name, w := range want {
		if name == "." {
			continue // a directory's size depends on its history
		}
		// dirState includes the inode number, which differs.
		w, g := w[:strings.Index(w, " ino=")], got[name]
		if g == "" || !strings.HasPrefix(g, w) {
			t.Errorf("%s restored as %q, want %q", name, g, w)
			break
		}
	}

	n, _, err := Resolve(t.Context(), r, sn, "big")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := LoadTree(t.Context(), r, n.Subtree)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != entries {
		t.Fatalf("LoadTree returned %d nodes, want %d", len(nodes), entries)
	}
	for i := 1; i < len(nodes); i++ {
		if nodes[i-1].Name >= nodes[i].Name {
			t.Fatalf("nodes %d and %d out of order: %q, %q", i-1, i, nodes[i-1].Name, nodes[i].Name)
		}
	}

	raw, err := r.LoadBlob(t.Context(), repo.BlobTree, n.Subtree)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := decodeTree(raw)
	if err != nil {
		t.Fatal(err)
	}
	// At most maxTreeNodes nodes go in a part; parts may be cut smaller
	// to bound their encoded size.
	if least := (entries + maxTreeNodes - 1) / maxTreeNodes; len(tb.Parts) < least || len(tb.Nodes) != 0 {
		t.Fatalf("the directory's tree blob has %d parts and %d nodes, want at least %d parts and no nodes", len(tb.Parts), len(tb.Nodes), least)
	}
	total := 0
	for _, part := range tb.Parts {
		raw, err := r.LoadBlob(t.Context(), repo.BlobTree, part)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := decodeTree(raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(pb.Parts) != 0 || len(pb.Nodes) == 0 || len(pb.Nodes) > maxTreeNodes {
			t.Errorf("part %s has %d nodes and %d parts", part.Short(), len(pb.Nodes), len(pb.Parts))
		}
		total += len(pb.Nodes)
	}
	if total != entries {
		t.Errorf("the parts hold %d nodes, want %d", total, entries)
	}
}

// Regions no longer than the minimum chunk size are read as one chunk
// without the chunker; every file must still be cut exactly where the
// chunker alone cuts it, or dedup against earlier backups would break
// (chunks too large for a pack alone are split after, at fixed offsets).
func TestChunksMatchTheChunker(t *testing.T) {
	t.Parallel()
	r := newRepo(t, mem.New())
	cfg := r.Config()
	minSize := cfg.Chunker.Min
	sizes := []int{1, minSize - 1, minSize, minSize + 1, 3*minSize + 12345, 20 << 20}
	src := t.TempDir()
	for i, size := range sizes {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), testutil.RandomBytes(int64(i), size), 0o644)
	}
	snap := backup(t, r, src, BackupOptions{})
	files := map[string]*Node{}
	err := Walk(t.Context(), r, "", snap.Tree, func(p string, n *Node) error {
		files[n.Name] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range sizes {
		node := files[fmt.Sprintf("f%d", i)]
		if node == nil {
			t.Fatalf("f%d is not in the snapshot", i)
		}
		opts := chunkers.ChunkerOpts{MinSize: cfg.Chunker.Min, NormalSize: cfg.Chunker.Avg, MaxSize: cfg.Chunker.Max, Key: r.ChunkerKey()}
		ch, err := chunkers.NewChunker(repo.ChunkerAlgorithm, bytes.NewReader(testutil.RandomBytes(int64(i), size)), &opts)
		if err != nil {
			t.Fatal(err)
		}
		var want []repo.ID
		for {
			chunk, err := ch.Next()
			// A chunk too large for a pack of the repository's (1 MiB)
			// alone is stored as pieces that fit.
			for piece := repo.MaxBlobInPack(cfg.PackSize); len(chunk) > 0; {
				n := min(piece, len(chunk))
				want = append(want, r.BlobID(repo.BlobData, chunk[:n]))
				chunk = chunk[n:]
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		var got []repo.ID
		for _, e := range node.Content {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("a %d-byte file was cut into %d chunks, the chunker cuts it into %d (or at other places)", size, len(got), len(want))
		}
	}
}

// TestBackupUnknownCompression refuses a compression choice that does not
// exist before reading or storing anything, dry run or not.
func TestBackupUnknownCompression(t *testing.T) {
	st := mem.New()
	r := newRepo(t, st)
	src := t.TempDir()
	for _, dry := range []bool{false, true} {
		_, err := Backup(t.Context(), r, BackupOptions{Paths: []string{src}, DryRun: dry, Compression: repo.Compression(200)})
		if err == nil || !strings.Contains(err.Error(), "unknown compression") {
			t.Errorf("dry run %v: %v; want an unknown-compression error", dry, err)
		}
	}
	for _, kind := range []storage.Kind{storage.KindPack, storage.KindIndex, storage.KindSnapshot} {
		var n int
		if err := st.List(t.Context(), kind, func(string, int64) error { n++; return nil }); err != nil || n != 0 {
			t.Errorf("the refused backups stored %d %s objects (%v)", n, kind, err)
		}
	}
}

// TestBackupDeeperThanHeldDirs backs up a tree nested deeper than the walk
// holds directories open (maxHeldDirs), with entries at every level, and
// restores it whole: below that depth entries are looked up by path.
func TestBackupDeeperThanHeldDirs(t *testing.T) {
	src := t.TempDir()
	p := src
	for i := range maxHeldDirs + 6 {
		writeFile(t, filepath.Join(p, "f"), []byte(fmt.Sprintf("level %d", i)), 0o644)
		if err := os.Symlink(fmt.Sprintf("target-%d", i), filepath.Join(p, "l")); err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(p, "d")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()
	backupAndRestore(t, newFSStore(t, t.TempDir()), src, dst)
	want, got := dirState(t, src), dirState(t, dst)
	if len(want) != 3*(maxHeldDirs+6)+1 {
		t.Fatalf("the source holds %d entries", len(want))
	}
	for rel, w := range want {
		if rel == "." {
			continue
		}
		// Inode numbers differ; everything else dirState records must not.
		if g := got[rel]; stripIno(g) != stripIno(w) {
			t.Errorf("%s: restored %s, want %s", rel, g, w)
		}
	}
}

// stripIno drops dirState's inode number.
func stripIno(desc string) string {
	if i := strings.Index(desc, " ino="); i >= 0 {
		if j := strings.IndexByte(desc[i+1:], ' '); j >= 0 {
			return desc[:i] + desc[i+1+j:]
		}
		return desc[:i]
	}
	return desc
}
