//go:build linux

package testutil

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recorder stands in for a test so that CompareTrees' complaints can be
// inspected instead of failing the test that provoked them on purpose.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func TestBytesDeterministic(t *testing.T) {
	if !bytes.Equal(RandomBytes(1, 1000), RandomBytes(1, 1000)) || bytes.Equal(RandomBytes(1, 1000), RandomBytes(2, 1000)) {
		t.Error("RandomBytes is not a function of its seed")
	}
	if !bytes.Equal(RandomBytes(1, 100), RandomBytes(1, 1000)[:100]) {
		t.Error("RandomBytes(seed, n) is not a prefix of a longer run")
	}
	if !bytes.Equal(CompressibleBytes(1, 1000), CompressibleBytes(1, 1000)) || bytes.Equal(CompressibleBytes(1, 1000), CompressibleBytes(2, 1000)) {
		t.Error("CompressibleBytes is not a function of its seed")
	}
	for _, n := range []int{0, 1, 17, 4096} {
		if len(RandomBytes(3, n)) != n || len(CompressibleBytes(3, n)) != n {
			t.Errorf("length %d not honoured", n)
		}
	}
	// The point of the two helpers is how they compress.
	if r := ratio(t, CompressibleBytes(5, 256<<10)); r > 0.5 {
		t.Errorf("CompressibleBytes compresses only to %.2f", r)
	}
	if r := ratio(t, RandomBytes(5, 256<<10)); r < 0.99 {
		t.Errorf("RandomBytes compresses to %.2f", r)
	}
}

func ratio(t *testing.T, b []byte) float64 {
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return float64(out.Len()) / float64(len(b))
}

func TestGenerateTreeDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	opt := TreeOptions{Seed: 42}
	ma := GenerateTree(t, a, opt)
	mb := GenerateTree(t, b, opt)
	if !reflect.DeepEqual(ma, mb) {
		t.Errorf("manifests differ:\n%+v\n%+v", ma, mb)
	}
	r := &recorder{TB: t}
	CompareTrees(r, a, b)
	if len(r.errs) > 0 {
		t.Errorf("two trees from one seed differ:\n%s", strings.Join(r.errs, "\n"))
	}
	CompareTrees(t, a, b)

	// A different seed must change content, or tests with several seeds
	// would test one tree.
	c := t.TempDir()
	GenerateTree(t, c, TreeOptions{Seed: 43})
	r = &recorder{TB: t}
	CompareTrees(r, a, c)
	if !hasError(r.errs, "text.txt", "content differs") {
		t.Errorf("trees of seeds 42 and 43 compare without a content difference in text.txt:\n%s", strings.Join(r.errs, "\n"))
	}
}

// TestGenerateTreeCoverage checks that the tree holds what GenerateTree
// promises, so a backup test that passes on it has really seen each case.
func TestGenerateTreeCoverage(t *testing.T) {
	root := t.TempDir()
	m := GenerateTree(t, root, TreeOptions{Seed: 1})
	asRoot := os.Geteuid() == 0
	p := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	stat := func(rel string) *unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(p(rel), &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}

	// The manifest lists exactly what is there.
	var walked []string
	types := map[uint32]int{}
	mtimes := map[unix.Timespec]string{}
	inodes := map[uint64]bool{}
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if path == root {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		walked = append(walked, rel)
		st := stat(rel)
		types[st.Mode&unix.S_IFMT]++
		if inodes[st.Ino] {
			return nil // another name of a hard link
		}
		inodes[st.Ino] = true
		if st.Mtim.Nsec == 0 {
			t.Errorf("%s: mtime has no nanoseconds", rel)
		}
		// Times were set after all content: none is from today.
		if mt := time.Unix(st.Mtim.Unix()); mt.After(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: mtime %v was not set by GenerateTree, or was disturbed after", rel, mt)
		}
		if other, ok := mtimes[st.Mtim]; ok {
			t.Errorf("%s: same mtime as %s", rel, other)
		}
		mtimes[st.Mtim] = rel
		return nil
	})
	slices.Sort(walked)
	if !reflect.DeepEqual(walked, m.Paths) {
		t.Errorf("manifest paths differ from the tree:\n%q\n%q", m.Paths, walked)
	}
	if len(m.Paths) < 50 {
		t.Errorf("only %d entries", len(m.Paths))
	}
	for typ, name := range map[uint32]string{unix.S_IFREG: "file", unix.S_IFDIR: "dir", unix.S_IFLNK: "symlink", unix.S_IFIFO: "fifo", unix.S_IFSOCK: "socket"} {
		if types[typ] == 0 {
			t.Errorf("no %s in the tree", name)
		}
	}
	if asRoot && !m.Device {
		t.Log("running as root but no device was made")
	}
	if m.Device && stat("special/null").Rdev != unix.Mkdev(1, 3) {
		t.Error("special/null is not device 1,3")
	}

	if _, err := os.Stat(p("a/b/c/d/deep.txt")); err != nil {
		t.Error(err)
	}
	if ents, err := os.ReadDir(p("empty")); err != nil || len(ents) != 0 {
		t.Errorf("empty: %d entries, %v", len(ents), err)
	}
	if st := stat("zero"); st.Size != 0 {
		t.Errorf("zero has %d bytes", st.Size)
	}
	if st := stat(m.LargeFile); st.Size != 3<<20 {
		t.Errorf("%s has %d bytes", m.LargeFile, st.Size)
	}
	d0, _ := os.ReadFile(p(m.DupFiles[0]))
	d1, _ := os.ReadFile(p(m.DupFiles[1]))
	if len(d0) < 1<<20 || !bytes.Equal(d0, d1) || stat(m.DupFiles[0]).Ino == stat(m.DupFiles[1]).Ino {
		t.Errorf("%v are not two distinct identical files of 1 MiB or more", m.DupFiles)
	}
	for _, group := range m.HardLinks {
		for _, rel := range group[1:] {
			if stat(rel).Ino != stat(group[0]).Ino {
				t.Errorf("%s is not a hard link of %s", rel, group[0])
			}
		}
	}
	if len(m.HardLinks) != 2 || len(m.HardLinks[0]) != 2 || len(m.HardLinks[1]) != 3 {
		t.Errorf("hard-link groups %v, want a pair and a triple", m.HardLinks)
	}

	st := stat("sparse.bin")
	if st.Size != 8<<20 {
		t.Errorf("sparse.bin has %d bytes", st.Size)
	}
	if st.Blocks*512 >= 1<<20 {
		t.Logf("sparse.bin uses %d bytes: filesystem keeps no holes", st.Blocks*512)
	} else {
		f, err := os.Open(p("sparse.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		data, _ := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
		hole, _ := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if data != 2<<20 || hole >= 8<<20 {
			t.Errorf("sparse.bin: data at %d, hole after it at %d; want a hole at the start, middle and end", data, hole)
		}
	}

	for rel, target := range map[string]string{"links/rel": "../text.txt", "links/abs": "/etc/passwd", "links/dangling": "../no/such/file"} {
		if got, err := os.Readlink(p(rel)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %q", rel, got, err, target)
		}
	}
	if _, err := os.Stat(p("links/dangling")); err == nil {
		t.Error("links/dangling resolves")
	}

	modes := map[string]uint32{
		"perms/p0600": 0o600, "perms/p0640": 0o640, "perms/p0755.sh": 0o755, "perms/ro0444": 0o444,
		"perms/setuid": 0o4755, "perms/setgid-file": 0o2755, "perms/setgid": 0o2775, "perms/sticky": 0o1777,
	}
	if asRoot {
		modes["perms/readonly"] = 0o555
	}
	if m.Owned {
		modes["owned/setuid"] = 0o4750
		modes["owned/setgid-dir"] = 0o2770
		for _, rel := range []string{"owned", "owned/file", "owned/setuid", "owned/link", "owned/setgid-dir"} {
			if st := stat(rel); st.Uid != OwnerUID || st.Gid != OwnerGID {
				t.Errorf("%s owned by %d:%d", rel, st.Uid, st.Gid)
			}
		}
	} else if asRoot {
		t.Log("running as root but ownership was not set")
	}
	for rel, mode := range modes {
		if got := stat(rel).Mode & 0o7777; got != mode {
			t.Errorf("%s: mode %#o, want %#o", rel, got, mode)
		}
	}

	if m.Xattrs {
		x, err := userXattrs(p("xattr/file.txt"))
		if err != nil || string(x["user.coffer.text"]) != "hello, coffer" || len(x) != 3 {
			t.Errorf("xattr/file.txt: %s, %v", fmtXattrs(x), err)
		}
		if x, err := userXattrs(p("xattr")); err != nil || len(x) != 1 {
			t.Errorf("xattr: %s, %v", fmtXattrs(x), err)
		}
	}
}

func TestGenerateTreeOptions(t *testing.T) {
	root := t.TempDir()
	m := GenerateTree(t, root, TreeOptions{Seed: 9, Files: -1, LargeFileSize: -1, NoSpecial: true})
	if m.LargeFile != "" || len(m.Special) != 0 || m.Device {
		t.Errorf("options not honoured: %+v", m)
	}
	for _, rel := range m.Paths {
		if strings.HasPrefix(rel, "special") || strings.Contains(rel, "/f0") || rel == "large.bin" {
			t.Errorf("%s present despite the options", rel)
		}
	}
	m = GenerateTree(t, t.TempDir(), TreeOptions{Seed: 9, Files: 3, LargeFileSize: 1000})
	n := 0
	for _, rel := range m.Paths {
		if strings.Contains(rel, "/f00") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d small files, want 3", n)
	}
}

func hasError(errs []string, rel, what string) bool {
	for _, e := range errs {
		if strings.HasPrefix(e, rel+": ") && strings.Contains(e, what) {
			return true
		}
	}
	return false
}

// keepTimes records the times of paths under root and returns a function
// that puts them back, so a mutation changes only what it means to.
func keepTimes(t *testing.T, root string, rels ...string) func() {
	t.Helper()
	saved := make([][]unix.Timespec, len(rels))
	for i, rel := range rels {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
			t.Fatal(err)
		}
		saved[i] = []unix.Timespec{st.Atim, st.Mtim}
	}
	return func() {
		t.Helper()
		for i, rel := range rels {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, rel), saved[i], unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func shiftMtime(t *testing.T, path string, d time.Duration) {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(path, &st))
	mt := time.Unix(st.Mtim.Unix()).Add(d)
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{st.Atim, unix.NsecToTimespec(mt.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW))
}

// TestCompareTreesDetects proves the comparer can fail: each case changes
// one thing in a copy of the tree and expects CompareTrees to name it, and
// to name nothing else.
func TestCompareTreesDetects(t *testing.T) {
	opt := TreeOptions{Seed: 7, Files: 6, LargeFileSize: 300 << 10}
	want := t.TempDir()
	m := GenerateTree(t, want, opt)
	sparse, err := hasHole(filepath.Join(want, "sparse.bin"), 8<<20)
	must(t, err)

	cases := []struct {
		name string
		rel  string // the path the complaint must name
		what string // a word the complaint must contain
		n    int    // how many complaints in all
		skip bool
		do   func(t *testing.T, root string)
	}{
		{name: "content byte", rel: "text.txt", what: "content differs at byte 1000", n: 1, do: func(t *testing.T, root string) {
			p := filepath.Join(root, "text.txt")
			defer keepTimes(t, root, "text.txt")()
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			b := make([]byte, 1)
			_, err = f.ReadAt(b, 1000)
			must(t, err)
			b[0] ^= 0x20
			_, err = f.WriteAt(b, 1000)
			must(t, err)
		}},
		{name: "last byte of large file", rel: "large.bin", what: "content differs", n: 1, do: func(t *testing.T, root string) {
			p := filepath.Join(root, "large.bin")
			defer keepTimes(t, root, "large.bin")()
			b, err := os.ReadFile(p)
			must(t, err)
			b[len(b)-1]++
			must(t, os.WriteFile(p, b, 0))
		}},
		{name: "size", rel: "text.txt", what: "size", n: 1, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "text.txt")()
			must(t, os.Truncate(filepath.Join(root, "text.txt"), 100))
		}},
		{name: "permission", rel: "perms/p0640", what: "mode", n: 1, do: func(t *testing.T, root string) {
			must(t, unix.Chmod(filepath.Join(root, "perms/p0640"), 0o644))
		}},
		{name: "setuid", rel: "perms/setuid", what: "mode", n: 1, do: func(t *testing.T, root string) {
			must(t, unix.Chmod(filepath.Join(root, "perms/setuid"), 0o755))
		}},
		{name: "setgid dir", rel: "perms/setgid", what: "mode", n: 1, do: func(t *testing.T, root string) {
			must(t, unix.Chmod(filepath.Join(root, "perms/setgid"), 0o775))
		}},
		{name: "sticky", rel: "perms/sticky", what: "mode", n: 1, do: func(t *testing.T, root string) {
			must(t, unix.Chmod(filepath.Join(root, "perms/sticky"), 0o777))
		}},
		{name: "file mtime", rel: "zero", what: "mtime", n: 1, do: func(t *testing.T, root string) {
			shiftMtime(t, filepath.Join(root, "zero"), time.Nanosecond)
		}},
		{name: "symlink mtime", rel: "links/rel", what: "mtime", n: 1, do: func(t *testing.T, root string) {
			shiftMtime(t, filepath.Join(root, "links/rel"), time.Nanosecond)
		}},
		{name: "dir mtime", rel: "a/b", what: "mtime", n: 1, do: func(t *testing.T, root string) {
			shiftMtime(t, filepath.Join(root, "a/b"), -time.Nanosecond)
		}},
		{name: "symlink target", rel: "links/rel", what: "symlink target", n: 1, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "links", "links/rel")()
			p := filepath.Join(root, "links/rel")
			must(t, os.Remove(p))
			must(t, os.Symlink("../zero", p))
		}},
		{name: "broken hard link", rel: "hard/pair2", what: "hard links [hard/pair2], want [hard/pair1, hard/pair2]", n: 2, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "hard", "hard/pair2")()
			p := filepath.Join(root, "hard/pair2")
			b, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(p+".tmp", b, 0o644))
			must(t, unix.Chmod(p+".tmp", 0o644))
			must(t, os.Rename(p+".tmp", p))
		}},
		{name: "extra hard link", rel: "a/b/dup-two.bin", what: "hard links", do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "a/b")()
			p := filepath.Join(root, "a/b/dup-two.bin")
			must(t, os.Remove(p))
			must(t, os.Link(filepath.Join(root, "dup/one.bin"), p))
		}},
		{name: "xattr value", rel: "xattr/file.txt", what: "xattrs", n: 1, skip: !m.Xattrs, do: func(t *testing.T, root string) {
			must(t, unix.Lsetxattr(filepath.Join(root, "xattr/file.txt"), "user.coffer.text", []byte("changed"), 0))
		}},
		{name: "xattr removed", rel: "xattr", what: "xattrs", n: 1, skip: !m.Xattrs, do: func(t *testing.T, root string) {
			must(t, unix.Lremovexattr(filepath.Join(root, "xattr"), "user.coffer.dir"))
		}},
		{name: "missing", rel: "a/b/c/d/deep.txt", what: "missing in got", n: 1, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "a/b/c/d")()
			must(t, os.Remove(filepath.Join(root, "a/b/c/d/deep.txt")))
		}},
		{name: "unexpected", rel: "empty/new", what: "unexpected in got", n: 1, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "empty")()
			must(t, os.WriteFile(filepath.Join(root, "empty/new"), nil, 0o644))
		}},
		{name: "type", rel: "special/fifo", what: "type file, want fifo", n: 1, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "special", "special/fifo")()
			p := filepath.Join(root, "special/fifo")
			must(t, os.Remove(p))
			must(t, os.WriteFile(p, nil, 0o644))
			must(t, unix.Chmod(p, 0o644))
		}},
		{name: "not sparse", rel: "sparse.bin", what: "not sparse", n: 1, skip: !sparse, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "sparse.bin")()
			f, err := os.OpenFile(filepath.Join(root, "sparse.bin"), os.O_WRONLY, 0)
			must(t, err)
			defer f.Close()
			_, err = f.WriteAt(make([]byte, 2<<20), 0) // zeros: same content, no hole
			must(t, err)
		}},
		{name: "owner", rel: "owned/file", what: "owner", n: 1, skip: !m.Owned, do: func(t *testing.T, root string) {
			must(t, unix.Lchown(filepath.Join(root, "owned/file"), 0, 0))
		}},
		{name: "rdev", rel: "special/null", what: "rdev 1,5, want 1,3", n: 1, skip: !m.Device, do: func(t *testing.T, root string) {
			defer keepTimes(t, root, "special", "special/null")()
			p := filepath.Join(root, "special/null")
			must(t, os.Remove(p))
			must(t, unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
			must(t, unix.Chmod(p, 0o666))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip {
				t.Skip("not possible in this environment")
			}
			got := t.TempDir()
			GenerateTree(t, got, opt)
			c.do(t, got)
			r := &recorder{TB: t}
			CompareTrees(r, want, got)
			if !hasError(r.errs, c.rel, c.what) {
				t.Errorf("no complaint about %s containing %q; got:\n%s", c.rel, c.what, strings.Join(r.errs, "\n"))
			}
			if c.n > 0 && len(r.errs) != c.n {
				t.Errorf("%d complaints, want %d:\n%s", len(r.errs), c.n, strings.Join(r.errs, "\n"))
			}
		})
	}
}
