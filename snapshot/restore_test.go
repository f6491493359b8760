//go:build linux

package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// TestRoundTrip backs up the full test tree (every file type, sparse files,
// hard links, xattrs, odd modes and, as root, devices and foreign owners),
// reopens the repository and restores into an empty directory, which must
// then equal the source byte for byte and in every piece of metadata.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			src := t.TempDir()
			m := testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 1})
			// The same 1 MiB of random data twice in one file: some chunk
			// ids repeat within the file, so the restorer must write one
			// blob at several offsets of one file.
			block := testutil.RandomBytes(11, 1<<20)
			writeFile(t, filepath.Join(src, "twice.bin"), append(slices.Clone(block), block...), 0o644)
			want := countTree(t, src)

			dst := t.TempDir()
			rt := backupAndRestore(t, sk.open(t), src, dst)
			s := rt.saved.Summary
			if s.Errors != 0 || s.Files != want.files || s.Dirs != want.dirs || s.Others != want.others || s.Size != want.size {
				t.Errorf("summary: %d files, %d dirs, %d others, %d bytes, %d errors; want %d, %d, %d, %d, 0",
					s.Files, s.Dirs, s.Others, s.Size, s.Errors, want.files, want.dirs, want.others, want.size)
			}
			if s.NewFiles != s.Files || s.FilesRead != s.Files || s.UnchangedFiles != 0 {
				t.Errorf("first backup: new %d, read %d, unchanged %d of %d files", s.NewFiles, s.FilesRead, s.UnchangedFiles, s.Files)
			}
			if l := rt.loaded; l.ID != rt.saved.ID || l.Tree != rt.saved.Tree || !slices.Equal(l.Paths, []string{src}) || l.Base != src || l.Summary.Files != s.Files {
				t.Errorf("loaded snapshot %+v differs from the one saved %+v", l, rt.saved)
			}
			sum := rt.sum
			if len(rt.warns) != 0 || sum.Warnings != 0 {
				t.Errorf("restore warned %d times: %v", sum.Warnings, rt.warns)
			}
			// Counted as the backup counted them, the target (which gets
			// the backed-up directory's metadata) included.
			if sum.Files != want.files || sum.Dirs != want.dirs || sum.Others != want.others || sum.Bytes != want.size {
				t.Errorf("restore summary %+v, want %d files, %d dirs, %d others, %d bytes", sum, want.files, want.dirs, want.others, want.size)
			}
			testutil.CompareTrees(t, src, dst)
			rt.progress.checkDone(t)

			// In batches of three entries: hard links, a blob written at
			// two offsets, directories' metadata all span batches.
			dst3 := t.TempDir()
			rec := &progressRecorder{}
			sum3, err := Restore(t.Context(), rt.r, rt.loaded, "", RestoreOptions{Target: dst3, Progress: rec, batch: 3})
			if err != nil {
				t.Fatalf("restore in batches of 3: %v", err)
			}
			if sum3 != sum {
				t.Errorf("restore in batches of 3: summary %+v, in one batch %+v", sum3, sum)
			}
			testutil.CompareTrees(t, src, dst3)
			rec.checkDone(t)

			// CompareTrees covers these too; spelled out, since they are
			// the easiest to lose.
			for _, group := range m.HardLinks {
				first, err := os.Lstat(filepath.Join(dst, group[0]))
				if err != nil {
					t.Fatal(err)
				}
				for _, other := range group[1:] {
					fi, err := os.Lstat(filepath.Join(dst, other))
					if err != nil || !os.SameFile(first, fi) {
						t.Errorf("%s and %s are not restored as one inode (%v)", group[0], other, err)
					}
				}
			}
			for _, p := range m.SparseFiles {
				var ws, gs syscall.Stat_t
				if err := syscall.Stat(filepath.Join(src, p), &ws); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Stat(filepath.Join(dst, p), &gs); err != nil {
					t.Fatal(err)
				}
				if gs.Blocks > ws.Blocks+128 { // 64 KiB of slack
					t.Errorf("%s: %d bytes allocated, the source %d: holes were filled", p, gs.Blocks*512, ws.Blocks*512)
				}
			}
		})
	}
}

// TestRestoreSubPath restores parts of a snapshot: a directory (its
// contents go into the target), a single file (into target/<name>), and
// "/" (the whole chain of parent directories).
func TestRestoreSubPath(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 2, Files: 20, LargeFileSize: 1 << 20})
	st := mem.New()
	backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)
	sn, err := Find(t.Context(), r, "latest")
	if err != nil {
		t.Fatal(err)
	}

	dirCases := []struct {
		name, path, want string
		wantIn           func(dst string) string // where the restored copy lands
	}{
		{"relative dir", "a/b", "a/b", func(dst string) string { return dst }},
		{"absolute dir", filepath.Join(src, "files"), "files", func(dst string) string { return dst }},
		{"trailing slash", "perms/", "perms", func(dst string) string { return dst }},
		{"root", "/", ".", func(dst string) string { return filepath.Join(dst, src) }},
	}
	for _, c := range dirCases {
		t.Run(c.name, func(t *testing.T) {
			dst := t.TempDir()
			restore(t, r, sn, c.path, dst)
			testutil.CompareTrees(t, filepath.Join(src, c.want), c.wantIn(dst))
			if c.path != "/" {
				if ents, _ := os.ReadDir(dst); len(ents) == 0 {
					t.Errorf("nothing restored")
				}
			}
		})
	}

	fileCases := []string{"text.txt", "large.bin", "sparse.bin", "holes.bin", "zero", "perms/setuid", "hard/pair1", "a/b/c/d/deep.txt"}
	for _, p := range fileCases {
		t.Run("file "+p, func(t *testing.T) {
			dst := t.TempDir()
			sum := restore(t, r, sn, p, dst)
			if sum.Files != 1 || sum.Dirs != 0 || sum.Others != 0 {
				t.Errorf("summary %+v, want exactly one file", sum)
			}
			ents, err := os.ReadDir(dst)
			if err != nil || len(ents) != 1 || ents[0].Name() != filepath.Base(p) {
				t.Fatalf("target holds %v (%v), want only %s", ents, err, filepath.Base(p))
			}
			sameFile(t, filepath.Join(src, p), filepath.Join(dst, filepath.Base(p)))
		})
	}

	t.Run("symlink", func(t *testing.T) {
		dst := t.TempDir()
		restore(t, r, sn, "links/dangling", dst)
		if got, err := os.Readlink(filepath.Join(dst, "dangling")); err != nil || got != "../no/such/file" {
			t.Errorf("restored symlink: %q, %v", got, err)
		}
	})
}

// TestCat writes files' content, holes as zeros, and refuses directories.
func TestCat(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 3, Files: 5, NoSpecial: true})
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)
	for _, p := range []string{"large.bin", "sparse.bin", "holes.bin", "zero", "text.txt", "dup/one.bin", "a/b/triple3", "files/ünïcødé ✓.txt"} {
		t.Run(p, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(src, p))
			if err != nil {
				t.Fatal(err)
			}
			n, abs, err := Resolve(t.Context(), r, sn, p)
			if err != nil {
				t.Fatal(err)
			}
			if abs != filepath.Join(src, p) {
				t.Errorf("Resolve gave path %s, want %s", abs, filepath.Join(src, p))
			}
			var buf bytes.Buffer
			if err := Cat(t.Context(), r, n, &buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("cat gave %d bytes, want %d (equal: %v)", buf.Len(), len(want), bytes.Equal(buf.Bytes(), want))
			}
		})
	}
	for _, p := range []string{"a", "links/rel", "/"} {
		n, _, err := Resolve(t.Context(), r, sn, p)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Cat(t.Context(), r, n, &buf); err == nil || buf.Len() != 0 {
			t.Errorf("cat of %s (a %s) succeeded with %d bytes", p, n.Type, buf.Len())
		}
	}
}

// TestRestoreExistingTarget checks that a restore touching existing
// entries fails with ErrTargetExists before it writes anything, and that
// Overwrite replaces what is there.
func TestRestoreExistingTarget(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a from the snapshot"), 0o644)
	writeFile(t, filepath.Join(src, "dir/b.txt"), []byte("b from the snapshot"), 0o600)
	writeFile(t, filepath.Join(src, "dir/sub/c.txt"), []byte("c from the snapshot"), 0o640)
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)

	cases := []struct {
		name  string
		setup func(t *testing.T, dst string)
	}{
		{"file over file", func(t *testing.T, dst string) {
			writeFile(t, filepath.Join(dst, "dir/b.txt"), []byte("mine"), 0o644)
		}},
		{"file over symlink", func(t *testing.T, dst string) {
			writeFile(t, filepath.Join(dst, "x"), []byte("x"), 0o644)
			if err := os.Symlink("x", filepath.Join(dst, "a.txt")); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink over file", func(t *testing.T, dst string) {
			writeFile(t, filepath.Join(dst, "link"), []byte("mine"), 0o644)
		}},
		{"several", func(t *testing.T, dst string) {
			writeFile(t, filepath.Join(dst, "a.txt"), []byte("mine"), 0o644)
			writeFile(t, filepath.Join(dst, "dir/sub/c.txt"), []byte("mine too"), 0o644)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := t.TempDir()
			c.setup(t, dst)
			before := dirState(t, dst)
			_, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst})
			if !errors.Is(err, ErrTargetExists) {
				t.Fatalf("restore over existing entries: %v, want ErrTargetExists", err)
			}
			if after := dirState(t, dst); !maps.Equal(before, after) {
				t.Errorf("a refused restore changed the target:\nbefore %q\nafter  %q", before, after)
			}
			if _, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst, Overwrite: true}); err != nil {
				t.Fatalf("restore with Overwrite: %v", err)
			}
			// The symlink a.txt was replaced, not written through: x, which
			// the snapshot does not have, is left as it was.
			if b, err := os.ReadFile(filepath.Join(dst, "x")); err == nil {
				if string(b) != "x" {
					t.Errorf("restore wrote through a symlink: x holds %q", b)
				}
				os.Remove(filepath.Join(dst, "x"))
			}
			testutil.CompareTrees(t, src, dst)
		})
	}
}

// TestRestoreOverwriteChangesType covers Overwrite where the target holds
// an entry of another type than the snapshot at the same path. The
// conflict check reports these as conflicts ("use -overwrite to
// replace"), so with Overwrite a restore must either put the snapshot's
// entry in place, or refuse with ErrTargetExists before writing anything,
// as Restore promises; it must never write outside the target or fail
// half-way with another error.
func TestRestoreOverwriteChangesType(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "dir/b.txt"), []byte("b from the snapshot"), 0o644)
	writeFile(t, filepath.Join(src, "file"), []byte("a file in the snapshot"), 0o644)
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)

	cases := []struct {
		name  string
		setup func(t *testing.T, dst, outside string)
	}{
		// The target has a file where the snapshot has a directory.
		{"directory over file", func(t *testing.T, dst, _ string) {
			writeFile(t, filepath.Join(dst, "dir"), []byte("a file in the way"), 0o644)
		}},
		// The target has a symlink to a directory outside it where the
		// snapshot has a directory: following it would write outside the
		// target.
		{"directory over symlink to a directory", func(t *testing.T, dst, outside string) {
			if err := os.Symlink(outside, filepath.Join(dst, "dir")); err != nil {
				t.Fatal(err)
			}
		}},
		// The target has an (empty) directory where the snapshot has a file.
		{"file over empty directory", func(t *testing.T, dst, _ string) {
			if err := os.Mkdir(filepath.Join(dst, "file"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst, outside := t.TempDir(), t.TempDir()
			c.setup(t, dst, outside)
			before, outsideBefore := dirState(t, dst), dirState(t, outside)
			if _, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst}); !errors.Is(err, ErrTargetExists) {
				t.Errorf("without Overwrite: %v, want ErrTargetExists", err)
			}
			if after := dirState(t, dst); !maps.Equal(before, after) {
				t.Errorf("a refused restore changed the target:\nbefore %q\nafter  %q", before, after)
			}
			_, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst, Overwrite: true})
			if after := dirState(t, outside); !maps.Equal(outsideBefore, after) {
				t.Errorf("restore with Overwrite changed %s, outside the target:\nbefore %q\nafter  %q", outside, outsideBefore, after)
			}
			switch {
			case err == nil:
				testutil.CompareTrees(t, src, dst)
			case errors.Is(err, ErrTargetExists):
				if after := dirState(t, dst); !maps.Equal(before, after) {
					t.Errorf("restore with Overwrite refused (%v) after changing the target:\nbefore %q\nafter  %q", err, before, after)
				}
			default:
				t.Errorf("restore with Overwrite neither replaced the entry nor refused up front with ErrTargetExists: %v\ntarget before %q\nafter %q", err, before, dirState(t, dst))
			}
		})
	}
}

// TestRestoreNotWritable restores into a target that cannot be written:
// a read-only filesystem as root (who ignores modes), a 0500 directory
// otherwise.
func TestRestoreNotWritable(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("content"), 0o644)
	writeFile(t, filepath.Join(src, "dir/b.txt"), []byte("more content"), 0o644)
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)

	dir := t.TempDir()
	if os.Geteuid() == 0 {
		mountTmpfs(t, dir, syscall.MS_RDONLY, "size=1m")
	} else {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
	}
	for _, target := range []string{dir, filepath.Join(dir, "missing/sub")} {
		_, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: target})
		if !errors.Is(err, ErrTargetNotWritable) {
			t.Errorf("restore into %s: %v, want ErrTargetNotWritable", target, err)
		}
		if err != nil && !strings.Contains(err.Error(), dir) {
			t.Errorf("error %q does not name the target", err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the unwritable target holds %v", ents)
	}
}

// TestRestoreDiskFull restores 4 MiB of random data into a 1 MiB tmpfs.
func TestRestoreDiskFull(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t, "the disk-full test mounts a 1 MiB tmpfs")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "big.bin"), testutil.RandomBytes(4, 4<<20), 0o644)
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)
	dst := t.TempDir()
	mountTmpfs(t, dst, 0, "size=1m")
	_, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("restore of 4 MiB into a 1 MiB filesystem: %v, want ErrDiskFull", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dst, "big.bin")) {
		t.Errorf("error %q does not name the file", err)
	}
	if errors.Is(err, ErrTargetNotWritable) {
		t.Errorf("disk full also reported as not writable: %v", err)
	}
}

// TestFindSnapshot names snapshots by id prefix. Seventeen snapshots make
// two share a first hex digit (there are sixteen).
func TestFindSnapshot(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	st := mem.New()
	r := newRepo(t, st)

	if _, err := Find(t.Context(), r, "latest"); !errors.Is(err, ErrSnapshotNotFound) {
		t.Errorf("latest in an empty repository: %v, want ErrSnapshotNotFound", err)
	}

	first := backup(t, r, src, BackupOptions{})
	ids := []repo.ID{first.ID}
	byDigit := map[byte][]repo.ID{first.ID.String()[0]: {first.ID}}
	var latest *Snapshot
	for i := range 16 {
		// Saving copies is enough: Find only lists and loads objects.
		sn := *first
		sn.Tags = []string{fmt.Sprint("copy-", i)}
		sn.Time = first.Time.Add(time.Duration(i+1) * time.Second)
		if err := Save(t.Context(), r, &sn); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sn.ID)
		byDigit[sn.ID.String()[0]] = append(byDigit[sn.ID.String()[0]], sn.ID)
		latest = &sn
	}
	var shared, unused string
	for d, group := range byDigit {
		if len(group) > 1 {
			shared = string(d)
		}
	}
	for _, c := range "0123456789abcdef" {
		for _, c2 := range "0123456789abcdef" {
			p := string(c) + string(c2)
			if !slices.ContainsFunc(ids, func(id repo.ID) bool { return strings.HasPrefix(id.String(), p) }) {
				unused = p
			}
		}
	}

	r = reopen(t, st)
	for _, id := range ids {
		for _, p := range []string{id.String(), id.String()[:12], strings.ToUpper(id.String()[:12])} {
			sn, err := Find(t.Context(), r, p)
			if err != nil || sn.ID != id {
				t.Errorf("Find(%s): %v, %v; want snapshot %s", p, sn, err, id.Short())
			}
		}
	}
	if sn, err := Find(t.Context(), r, "latest"); err != nil || sn.ID != latest.ID {
		t.Errorf("Find(latest): %v, %v; want %s", sn, err, latest.ID.Short())
	}
	cases := []struct {
		prefix string
		want   error
	}{
		{shared, ErrAmbiguousSnapshot},
		{unused, ErrSnapshotNotFound},
		{"", ErrSnapshotNotFound},
		{"xyz", ErrSnapshotNotFound},
		{"lat", ErrSnapshotNotFound},
		{strings.Repeat("0", 65), ErrSnapshotNotFound},
	}
	for _, c := range cases {
		sn, err := Find(t.Context(), r, c.prefix)
		if !errors.Is(err, c.want) || sn != nil {
			t.Errorf("Find(%q): %v, %v; want %v", c.prefix, sn, err, c.want)
		}
	}
	if _, err := Find(t.Context(), r, shared); err == nil || !strings.Contains(err.Error(), byDigit[shared[0]][0].String()[:8]) {
		t.Errorf("ambiguous prefix error %q does not list the candidates", err)
	}
}

// TestFindSnapshotLongAmbiguousPrefix gives Find a 63-digit prefix shared
// by two snapshot names. SHA-256 names never collide that far by chance,
// but the names come from the store, which may hold anything.
func TestFindSnapshotLongAmbiguousPrefix(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	st := mem.New()
	r := newRepo(t, st)
	sn := backup(t, r, src, BackupOptions{})
	name := sn.ID.String()
	twin := name[:63] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", name[63])+1)%16])
	if err := st.Put(t.Context(), "snapshot", twin, storage.BytesBody([]byte("foreign"))); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Find with a 63-digit ambiguous prefix panicked: %v", p)
			}
		}()
		if _, err := Find(t.Context(), r, name[:63]); !errors.Is(err, ErrAmbiguousSnapshot) {
			t.Errorf("Find(%s): %v, want ErrAmbiguousSnapshot", name[:63], err)
		}
	}()
	if got, err := Find(t.Context(), r, name); err != nil || got.ID != sn.ID {
		t.Errorf("Find of the full id: %v, %v", got, err)
	}
}

// TestResolvePathNotFound looks up paths a snapshot does not have.
func TestResolvePathNotFound(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "dir/file"), []byte("x"), 0o644)
	if err := os.Symlink("dir", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)
	for _, p := range []string{"nope", "dir/nope", "dir/file/below", "link/file", "/no/such/root", filepath.Join(filepath.Dir(src), "sibling")} {
		n, _, err := Resolve(t.Context(), r, sn, p)
		if !errors.Is(err, ErrPathNotFound) || n != nil {
			t.Errorf("Resolve(%q): %v, %v; want ErrPathNotFound", p, n, err)
		}
		dst := t.TempDir()
		if _, err := Restore(t.Context(), r, sn, p, RestoreOptions{Target: dst}); !errors.Is(err, ErrPathNotFound) {
			t.Errorf("Restore(%q): %v, want ErrPathNotFound", p, err)
		}
	}
	for _, p := range []string{"", ".", "dir", "dir/file", "./dir/../dir/file", src, "/", filepath.Dir(src), "link"} {
		if _, _, err := Resolve(t.Context(), r, sn, p); err != nil {
			t.Errorf("Resolve(%q): %v", p, err)
		}
	}
}

// devicesEnv, set, makes TestRestoreDevicesUnprivileged the helper run as
// nobody, restoring the snapshot in the repository at <dir>/repo.
const devicesEnv = "COFFER_SNAPSHOT_TEST_DEVICES_DIR"

// TestRestoreDevicesUnprivileged restores device nodes, one of them with
// two hard-linked names, without the privilege to create devices: the
// restore must skip them with one errNeedRoot warning each and restore
// everything else (see errNeedRoot). As root the restore runs as nobody in
// a re-run of this test binary.
func TestRestoreDevicesUnprivileged(t *testing.T) {
	if dir := os.Getenv(devicesEnv); dir != "" {
		if os.Geteuid() == 0 {
			t.Fatal("the helper runs as root: dropping privileges failed")
		}
		restoreDevicesUnprivileged(t, filepath.Join(dir, "repo"))
		return
	}
	t.Parallel()
	base := sharedTempDir(t, "coffer-snapshot-devices-")
	repoDir := filepath.Join(base, "repo")
	st := newFSStore(t, repoDir)
	r := newRepo(t, st)

	// The tree is made by hand, so that no privilege is needed to make it.
	mtime := time.Date(2022, 3, 4, 5, 6, 7, 8, time.UTC)
	var dataTree repo.ID
	_, err := r.WithBlobSaver(t.Context(), func(ctx context.Context, s *repo.BlobSaver) error {
		content := []byte("plain content")
		id, _, err := s.Save(ctx, repo.BlobData, content)
		if err != nil {
			return err
		}
		dev := func(name string, inode, links uint64) *Node {
			return &Node{Name: name, Type: TypeCharDev, Mode: 0o666, ModTime: mtime, Rdev: unix.Mkdev(1, 3), Inode: inode, Device: 42, Links: links}
		}
		dataTree, err = saveTree(ctx, s, []*Node{
			dev("null1", 100, 2), dev("null2", 100, 2), dev("single", 101, 1),
			{Name: "plain", Type: TypeFile, Mode: 0o644, ModTime: mtime, Size: int64(len(content)), Inode: 102, Device: 42, Links: 1,
				Content: []Extent{{ID: id, Size: int64(len(content))}}},
		})
		if err != nil {
			return err
		}
		root, err := saveTree(ctx, s, []*Node{{Name: "data", Type: TypeDir, Mode: 0o755, ModTime: mtime, Subtree: dataTree}})
		if err != nil {
			return err
		}
		return Save(ctx, r, &Snapshot{Time: mtime, Host: "crafted", Paths: []string{"/data"}, Base: "/data", Tree: root})
	})
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		chownTree(t, repoDir, nobodyUID, nobodyUID)
		runTestAsNobody(t, "TestRestoreDevicesUnprivileged", devicesEnv+"="+base)
		return
	}
	restoreDevicesUnprivileged(t, repoDir)
}

func restoreDevicesUnprivileged(t *testing.T, repoDir string) {
	r := reopen(t, newFSStore(t, repoDir))
	sn, err := Find(t.Context(), r, "latest")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	rec := &progressRecorder{}
	_, err = Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst, Progress: rec})
	if err != nil {
		t.Errorf("restore of device nodes without privilege: %v; want them skipped with warnings", err)
	}
	warned := map[string]int{}
	for _, w := range rec.warnings() {
		warned[filepath.Base(w.path)]++
		if !errors.Is(w.err, errNeedRoot) {
			t.Errorf("warning about %s: %v; want only errNeedRoot warnings", w.path, w.err)
		}
	}
	if warned["null1"] != 1 || warned["single"] != 1 || warned["null2"] > 1 || warned["plain"] != 0 {
		t.Errorf("warnings per name %v; want one each for null1 and single, at most one for null2 (its hard link)", warned)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "plain")); err != nil || string(got) != "plain content" {
		t.Errorf("plain: %q, %v", got, err)
	}
}
