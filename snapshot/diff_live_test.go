//go:build linux

package snapshot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/mem"
)

// collectLive returns every change DiffLive reports between path p of sn
// and root on disk.
func collectLive(t *testing.T, r LiveDiffRepository, sn *Snapshot, p, root string, opt LiveDiffOptions) []Change {
	t.Helper()
	n, abs, err := Resolve(t.Context(), r, sn, p)
	if err != nil {
		t.Fatalf("resolving %q: %v", p, err)
	}
	var changes []Change
	err = DiffLive(t.Context(), r, abs, n, root, opt, func(c Change) error {
		changes = append(changes, c)
		return nil
	})
	if err != nil {
		t.Fatalf("diff of %s:%s against %s: %v", sn.ID.Short(), p, root, err)
	}
	return changes
}

// pinTimes gives every entry below root, root included, one fixed mtime,
// so that what a test changes afterwards is the only difference.
func pinTimes(t *testing.T, root string, when time.Time) {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, p) // after their entries: creating those moved them
		case d.Type()&fs.ModeSymlink == 0:
			return os.Chtimes(p, when, when)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := os.Chtimes(d, when, when); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDiffLive changes a backed-up tree on disk in each way DiffLive
// tells apart, and compares its report with what was done.
func TestDiffLive(t *testing.T) {
	t.Parallel()
	past := time.Date(2021, 3, 4, 5, 6, 7, 89, time.UTC)
	big := testutil.RandomBytes(3, 1<<20) // several of the small chunks below
	ch := func(k ChangeKind, p string, typ NodeType, old, new int64) Change {
		return Change{Kind: k, Path: p, Type: typ, OldSize: old, NewSize: new}
	}
	cases := []struct {
		name   string
		opt    LiveDiffOptions
		change func(t *testing.T, p func(string) string)
		// want lists the changes with paths relative to the source ("" is
		// the source itself).
		want []Change
	}{
		{name: "unchanged", change: func(*testing.T, func(string) string) {}},
		{name: "unchanged, every file read", opt: LiveDiffOptions{Content: true},
			change: func(*testing.T, func(string) string) {}},
		{name: "content and size", change: func(t *testing.T, p func(string) string) {
			writeFile(t, p("d/a.txt"), []byte("a longer text"), 0o644)
			pinTimes(t, p("d"), past) // the size alone must tell
		}, want: []Change{ch(Modified, "d/a.txt", TypeFile, 5, 13)}},
		{name: "content, same size, new mtime", change: func(t *testing.T, p func(string) string) {
			writeFile(t, p("d/a.txt"), []byte("ALPHA"), 0o644)
		}, want: []Change{ch(Modified, "d/a.txt", TypeFile, 5, 5)}},
		{name: "mtime only", change: func(t *testing.T, p func(string) string) {
			touch(t, p("d/a.txt"), past.Add(time.Hour))
		}, want: []Change{ch(Metadata, "d/a.txt", TypeFile, 5, 5)}},
		{name: "mode", change: func(t *testing.T, p func(string) string) {
			chmod(t, p("d/a.txt"), 0o600)
			chmod(t, p("d"), 0o700)
		}, want: []Change{ch(Metadata, "d", TypeDir, 0, 0), ch(Metadata, "d/a.txt", TypeFile, 5, 5)}},
		{name: "added", change: func(t *testing.T, p func(string) string) {
			writeFile(t, p("new.txt"), []byte("new"), 0o644)
			writeFile(t, p("newdir/f"), []byte("fresh"), 0o644)
		}, want: []Change{ch(Metadata, "", TypeDir, 0, 0), ch(Added, "new.txt", TypeFile, 0, 3),
			ch(Added, "newdir", TypeDir, 0, 0), ch(Added, "newdir/f", TypeFile, 0, 5)}},
		{name: "removed", change: func(t *testing.T, p func(string) string) {
			if err := os.RemoveAll(p("d")); err != nil {
				t.Fatal(err)
			}
		}, want: []Change{ch(Metadata, "", TypeDir, 0, 0), ch(Removed, "d", TypeDir, 0, 0),
			ch(Removed, "d/a.txt", TypeFile, 5, 0), ch(Removed, "d/b.txt", TypeFile, 5, 0),
			ch(Removed, "d/link", TypeSymlink, 7, 0)}},
		{name: "excluded additions", opt: LiveDiffOptions{Excludes: []string{"*.tmp", "/cache/"}},
			change: func(t *testing.T, p func(string) string) {
				writeFile(t, p("d/x.tmp"), []byte("scratch"), 0o644)
				writeFile(t, p("cache/c"), []byte("cached"), 0o644)
				pinTimes(t, p(""), past)
			}},
		{name: "skipped path", change: func(t *testing.T, p func(string) string) {
			writeFile(t, p("repo/config"), []byte("a repository inside the source"), 0o644)
			pinTimes(t, p(""), past)
		}, opt: LiveDiffOptions{SkipPaths: []string{"repo"}}}, // made absolute in the loop
		{name: "type and link target", change: func(t *testing.T, p func(string) string) {
			if err := os.Remove(p("d/link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("b.txt", p("d/link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(p("empty")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, p("empty"), []byte("now a file"), 0o644)
			pinTimes(t, p(""), past)
		}, want: []Change{ch(Modified, "d/link", TypeSymlink, 7, 5),
			ch(Removed, "empty", TypeDir, 0, 0), ch(Added, "empty", TypeFile, 0, 10)}},
		{name: "changed behind a restored mtime, not read", change: func(t *testing.T, p func(string) string) {
			flip(t, p("big.bin"), 700<<10)
			touch(t, p("big.bin"), past)
		}},
		{name: "changed behind a restored mtime, read", opt: LiveDiffOptions{Content: true},
			change: func(t *testing.T, p func(string) string) {
				flip(t, p("big.bin"), 700<<10)
				touch(t, p("big.bin"), past)
			}, want: []Change{ch(Modified, "big.bin", TypeFile, 1<<20, 1<<20)}},
		{name: "data written into a hole", opt: LiveDiffOptions{Content: true},
			change: func(t *testing.T, p func(string) string) {
				f, err := os.OpenFile(p("sparse"), os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte{1}, 10); err != nil {
					t.Fatal(err)
				}
				f.Close()
				touch(t, p("sparse"), past)
			}, want: []Change{ch(Modified, "sparse", TypeFile, 3<<20, 3<<20)}},
	}
	st := mem.New()
	r := newSmallChunkRepo(t, st)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			p := func(rel string) string { return filepath.Join(src, rel) }
			writeFile(t, p("d/a.txt"), []byte("alpha"), 0o644)
			writeFile(t, p("d/b.txt"), []byte("bravo"), 0o640)
			if err := os.Symlink("a.txt/x", p("d/link")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, p("big.bin"), big, 0o644)
			if err := os.Mkdir(p("empty"), 0o755); err != nil {
				t.Fatal(err)
			}
			sparse, err := os.Create(p("sparse")) // a hole, 1 KiB of data, a hole
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sparse.WriteAt(testutil.RandomBytes(4, 1<<10), 1<<20); err != nil {
				t.Fatal(err)
			}
			if err := sparse.Truncate(3 << 20); err != nil {
				t.Fatal(err)
			}
			sparse.Close()
			pinTimes(t, src, past)
			sn := backup(t, r, src, BackupOptions{})

			tc.change(t, p)
			opt := tc.opt
			for i, s := range opt.SkipPaths {
				opt.SkipPaths[i] = p(s)
			}
			got := collectLive(t, r, sn, "", src, opt)
			var want []Change
			for _, c := range tc.want {
				c.Path = p(c.Path)
				want = append(want, c)
			}
			if !slices.Equal(got, want) {
				t.Errorf("diff:\n%s\nwant:\n%s", fmtChanges(got), fmtChanges(want))
			}
		})
	}
}

// A tree holding everything a backup records (hard links, sparse files,
// xattrs, special files, odd modes and names) compares equal to its own
// backup, read or not: the nodes DiffLive builds from disk are the ones
// backup stored. So does a restore of it, against which -content is
// what a user checks a restore with.
func TestDiffLiveEqualsBackup(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 11, Files: 30, LargeFileSize: 2 << 20})
	r := newRepo(t, mem.New())
	sn := backup(t, r, src, BackupOptions{})
	for _, opt := range []LiveDiffOptions{{}, {Content: true}} {
		if got := collectLive(t, r, sn, "", src, opt); len(got) != 0 {
			t.Errorf("source against its backup (content %v):\n%s", opt.Content, fmtChanges(got))
		}
	}
	dst := t.TempDir()
	restore(t, r, sn, "", dst)
	// A whole restore gives the target the base directory's metadata too.
	if got := collectLive(t, r, sn, "", dst, LiveDiffOptions{Content: true}); len(got) != 0 {
		t.Errorf("restored copy against its snapshot:\n%s", fmtChanges(got))
	}
	// A subpath against the same directory on disk.
	if got := collectLive(t, r, sn, "a", filepath.Join(src, "a"), LiveDiffOptions{Content: true}); len(got) != 0 {
		t.Errorf("a subtree against its source:\n%s", fmtChanges(got))
	}
}

// TestDiffNodes compares subtrees and single entries of two snapshots.
func TestDiffNodes(t *testing.T) {
	t.Parallel()
	past := time.Date(2022, 1, 1, 0, 0, 0, 7, time.UTC)
	src := t.TempDir()
	p := func(rel string) string { return filepath.Join(src, rel) }
	writeFile(t, p("sub/f"), []byte("one"), 0o644)
	writeFile(t, p("sub/g"), []byte("gone"), 0o644)
	writeFile(t, p("other/f"), []byte("one"), 0o644)
	writeFile(t, p("top"), []byte("top"), 0o644)
	pinTimes(t, src, past)
	r := newRepo(t, mem.New())
	before := backup(t, r, src, BackupOptions{})
	writeFile(t, p("sub/f"), []byte("two!"), 0o644)
	if err := os.Remove(p("sub/g")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p("top"), []byte("changed outside sub"), 0o644)
	if err := os.Remove(p("other/f")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p("other/f/inside"), []byte("a dir now"), 0o644)
	pinTimes(t, src, past)
	after := backup(t, r, src, BackupOptions{})

	ch := func(k ChangeKind, rel string, typ NodeType, old, new int64) Change {
		return Change{Kind: k, Path: p(rel), Type: typ, OldSize: old, NewSize: new}
	}
	cases := []struct {
		name   string
		a, b   string // paths in before and after
		want   []Change
		wantAt string // the path changes are reported under
	}{
		{name: "same subtree", a: "sub", b: "sub",
			want: []Change{ch(Modified, "sub/f", TypeFile, 3, 4), ch(Removed, "sub/g", TypeFile, 4, 0)}},
		{name: "type change inside", a: "other", b: "other",
			want: []Change{ch(Removed, "other/f", TypeFile, 3, 0), ch(Added, "other/f", TypeDir, 0, 0),
				ch(Added, "other/f/inside", TypeFile, 0, 9)}},
		{name: "different subtrees, shown under the first", a: "other", b: "sub",
			want: []Change{ch(Modified, "other/f", TypeFile, 3, 4)}},
		{name: "files", a: "sub/f", b: "sub/f", want: []Change{ch(Modified, "sub/f", TypeFile, 3, 4)}},
		{name: "files at different paths", a: "other/f", b: "sub/f", want: []Change{ch(Modified, "other/f", TypeFile, 3, 4)}},
		{name: "file against a directory: a type change", a: "other/f", b: "other/f",
			want: []Change{ch(Removed, "other/f", TypeFile, 3, 0), ch(Added, "other/f", TypeDir, 0, 0),
				ch(Added, "other/f/inside", TypeFile, 0, 9)}},
		{name: "root against root", a: "/", b: "/"}, // filtered to src below
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			na, absA, err := Resolve(t.Context(), r, before, tc.a)
			if err != nil {
				t.Fatal(err)
			}
			nb, _, err := Resolve(t.Context(), r, after, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			var got []Change
			if err := DiffNodes(t.Context(), r, absA, na, nb, func(c Change) error { got = append(got, c); return nil }); err != nil {
				t.Fatal(err)
			}
			if tc.a == "/" {
				got = splitDiff(t, got, src)
				tc.want = []Change{ch(Removed, "other/f", TypeFile, 3, 0), ch(Added, "other/f", TypeDir, 0, 0),
					ch(Added, "other/f/inside", TypeFile, 0, 9), ch(Modified, "sub/f", TypeFile, 3, 4),
					ch(Removed, "sub/g", TypeFile, 4, 0), ch(Modified, "top", TypeFile, 3, 19)}
				if whole := splitDiff(t, collectDiff(t, r, before, after), src); !slices.Equal(whole, tc.want) {
					t.Errorf("Diff of the whole snapshots:\n%s", fmtChanges(whole))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("diff %s:%s %s:%s:\n%s\nwant:\n%s", before.ID.Short(), tc.a, after.ID.Short(), tc.b, fmtChanges(got), fmtChanges(tc.want))
			}
		})
	}
}

func touch(t *testing.T, path string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// flip inverts the byte at off of the file at path.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// unreadableEnv, set, makes TestDiffLiveUnreadable the helper run as
// nobody, comparing <dir>/src with the latest snapshot in <dir>/repo.
const unreadableEnv = "COFFER_SNAPSHOT_TEST_DIFF_UNREADABLE_DIR"

// TestDiffLiveUnreadable compares a tree holding a directory and a file
// the diff cannot read: with Warn they are reported to it and left out
// (nothing below the directory is "removed", the file is not "modified"),
// and the rest is compared; without Warn the diff fails. As root, which
// reads everything, the diff runs as nobody in a re-run of this test
// binary, the entries being root's and private.
func TestDiffLiveUnreadable(t *testing.T) {
	if dir := os.Getenv(unreadableEnv); dir != "" {
		if os.Geteuid() == 0 {
			t.Fatal("the helper runs as root: dropping privileges failed")
		}
		unreadableDiff(t, filepath.Join(dir, "repo"), filepath.Join(dir, "src"))
		return
	}
	t.Parallel()
	base := sharedTempDir(t, "coffer-snapshot-diff-unreadable-")
	src := filepath.Join(base, "src")
	p := func(rel string) string { return filepath.Join(src, rel) }
	writeFile(t, p("open.txt"), []byte("anyone may read this"), 0o644)
	writeFile(t, p("locked/inside.txt"), []byte("only root may see this"), 0o644)
	chmod(t, p("locked"), 0o700)
	writeFile(t, p("secret.txt"), []byte("nobody may read this"), 0o600)
	if err := os.Chmod(src, 0o755); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(base, "repo")
	st := newFSStore(t, repoDir)
	backup(t, newRepo(t, st), src, BackupOptions{})
	// After the backup: a new directory nobody may list, and secret.txt
	// touched, so that its content would have to be read.
	writeFile(t, p("newlocked/f"), []byte("new"), 0o644)
	chmod(t, p("newlocked"), 0o700)
	touch(t, p("secret.txt"), time.Now().Add(-time.Hour))
	if os.Geteuid() == 0 {
		chownTree(t, repoDir, nobodyUID, nobodyUID)
		runTestAsNobody(t, "TestDiffLiveUnreadable", unreadableEnv+"="+base)
		return
	}
	chmod(t, p("secret.txt"), 0)
	t.Cleanup(func() { os.Chmod(p("secret.txt"), 0o600) })
	unreadableDiff(t, repoDir, src)
}

func unreadableDiff(t *testing.T, repoDir, src string) {
	r := reopen(t, newFSStore(t, repoDir))
	sn, err := Find(t.Context(), r, "latest")
	if err != nil {
		t.Fatal(err)
	}
	p := func(rel string) string { return filepath.Join(src, rel) }
	var warned []string
	opt := LiveDiffOptions{Warn: func(path string, err error) {
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("warning about %s: %v, want a permission error", path, err)
		}
		warned = append(warned, path)
	}}
	got := collectLive(t, r, sn, "", src, opt)
	want := []Change{
		{Kind: Metadata, Path: src, Type: TypeDir},
		{Kind: Added, Path: p("newlocked"), Type: TypeDir},
		{Kind: Metadata, Path: p("secret.txt"), Type: TypeFile, OldSize: 20, NewSize: 20},
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff:\n%s\nwant:\n%s", fmtChanges(got), fmtChanges(want))
	}
	if w := []string{p("locked"), p("newlocked"), p("secret.txt")}; !slices.Equal(warned, w) {
		t.Errorf("warnings about %v, want %v", warned, w)
	}
	n, abs, err := Resolve(t.Context(), r, sn, "")
	if err != nil {
		t.Fatal(err)
	}
	err = DiffLive(t.Context(), r, abs, n, src, LiveDiffOptions{}, func(Change) error { return nil })
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("without Warn: %v, want a permission error", err)
	}
}
