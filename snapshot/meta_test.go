//go:build linux

package snapshot

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMetaIDNames(t *testing.T) {
	names := newIDNames()
	if u, err := user.LookupId("0"); err == nil {
		if got := names.user(0); got != u.Username {
			t.Errorf("user(0) = %q, want %q", got, u.Username)
		}
	}
	if g, err := user.LookupGroupId("0"); err == nil {
		if got := names.group(0); got != g.Name {
			t.Errorf("group(0) = %q, want %q", got, g.Name)
		}
	}
	const unknown = 3999999999
	if got := names.user(unknown); got != "" {
		t.Errorf("user(%d) = %q, want empty", uint32(unknown), got)
	}
	if name, ok := names.users[unknown]; !ok || name != "" {
		t.Errorf("failed lookup not cached as empty: %q, %v", name, ok)
	}
	// A cached answer must win over a fresh lookup: that is the point of
	// the cache, and it is what makes one backup see one name per id.
	names.users[12345] = "cached"
	if got := names.user(12345); got != "cached" {
		t.Errorf("user(12345) = %q, want the cached %q", got, "cached")
	}

	var nilNames *idNames
	if nilNames.user(0) != "" || nilNames.group(0) != "" {
		t.Error("nil *idNames resolved a name")
	}

	// Run under -race to make this meaningful.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for id := range uint32(8) {
				names.user(id + uint32(i%2))
				names.group(id)
			}
		})
	}
	wg.Wait()
}

// metaTestTimes sets distinct atime and mtime with non-zero nanoseconds on
// path itself, symlinks included, and returns them.
func metaTestTimes(t *testing.T, path string, seq int64) (atime, mtime time.Time) {
	t.Helper()
	mtime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC).Add(time.Duration(seq)*time.Hour + 123456789)
	atime = mtime.Add(90*time.Minute + 987654321)
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("utimensat %s: %v", path, err)
	}
	return atime, mtime
}

// metaTestXattrs reports whether dir's filesystem takes user.* attributes.
func metaTestXattrs(t *testing.T, dir string) bool {
	t.Helper()
	err := unix.Lsetxattr(dir, "user.coffer.probe", []byte("1"), 0)
	if err != nil {
		t.Logf("user xattrs unsupported in %s (%v): skipping xattr checks", dir, err)
		return false
	}
	if err := unix.Lremovexattr(dir, "user.coffer.probe"); err != nil {
		t.Fatal(err)
	}
	return true
}

func metaTestStat(t *testing.T, path string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func TestMetaReadMeta(t *testing.T) {
	dir := t.TempDir()
	xattrs := metaTestXattrs(t, dir)
	root := os.Geteuid() == 0
	p := func(name string) string { return filepath.Join(dir, name) }

	if err := os.WriteFile(p("file"), []byte("hello, coffer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(p("file"), p("link2")); err != nil {
		t.Fatal(err)
	}
	if xattrs {
		// Set out of order so the test sees readMeta sort them.
		for _, x := range []Xattr{{"user.zz", []byte("last")}, {"user.aa", []byte{0, 1, 2, 255}}, {"user.empty", []byte{}}} {
			if err := unix.Lsetxattr(p("file"), x.Name, x.Value, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := unix.Chmod(p("file"), 0o4750); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p("dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("dir/inside"), make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p("dir"), 0o3755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../somewhere/else", p("symlink")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p("fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p("socket"), unix.S_IFSOCK|0o755, 0); err != nil {
		t.Fatal(err)
	}
	if root {
		if err := unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Logf("cannot mknod as root (%v): skipping the device case", err)
		} else if err := unix.Chmod(p("null"), 0o666); err != nil { // past the umask
			t.Fatal(err)
		}
	}

	type want struct {
		typ    NodeType
		mode   uint32
		size   int64
		target string
		rdev   uint64
		links  uint64
		xattrs []Xattr
	}
	cases := map[string]want{
		"file":    {typ: TypeFile, mode: 0o4750, size: 13, links: 2},
		"dir":     {typ: TypeDir, mode: 0o3755, links: 2},
		"symlink": {typ: TypeSymlink, mode: 0o777, size: int64(len("../somewhere/else")), target: "../somewhere/else", links: 1},
		"fifo":    {typ: TypeFifo, mode: 0o640, links: 1},
		"socket":  {typ: TypeSocket, mode: 0o755, links: 1},
	}
	if xattrs {
		c := cases["file"]
		c.xattrs = []Xattr{{"user.aa", []byte{0, 1, 2, 255}}, {"user.empty", []byte{}}, {"user.zz", []byte("last")}}
		cases["file"] = c
	}
	if _, err := os.Lstat(p("null")); err == nil {
		cases["null"] = want{typ: TypeCharDev, mode: 0o666, rdev: unix.Mkdev(1, 3), links: 1}
	}

	names := newIDNames()
	seq := int64(0)
	for name, w := range cases {
		seq++
		atime, mtime := metaTestTimes(t, p(name), seq)
		st := metaTestStat(t, p(name))
		n, err := readMeta(p(name), name, names)
		if err != nil {
			t.Fatalf("readMeta %s: %v", name, err)
		}
		if n.Name != name || n.Type != w.typ || n.Mode != w.mode || n.Size != w.size || n.LinkTarget != w.target || n.Rdev != w.rdev || n.Links != w.links {
			t.Errorf("%s: got name %q type %s mode %#o size %d target %q rdev %#x links %d, want type %s mode %#o size %d target %q rdev %#x links %d",
				name, n.Name, n.Type, n.Mode, n.Size, n.LinkTarget, n.Rdev, n.Links, w.typ, w.mode, w.size, w.target, w.rdev, w.links)
		}
		_ = atime // not recorded: see Node
		if !n.ModTime.Equal(mtime) || n.ModTime.Location() != time.UTC {
			t.Errorf("%s: mtime %v, want %v in UTC", name, n.ModTime, mtime)
		}
		if ctime := time.Unix(st.Ctim.Unix()).UTC(); !n.ChangeTime.Equal(ctime) {
			t.Errorf("%s: ctime %v, want %v", name, n.ChangeTime, ctime)
		}
		if n.Inode != st.Ino || n.Device != st.Dev || n.UID != st.Uid || n.GID != st.Gid {
			t.Errorf("%s: inode %d dev %d uid %d gid %d, want %d %d %d %d", name, n.Inode, n.Device, n.UID, n.GID, st.Ino, st.Dev, st.Uid, st.Gid)
		}
		if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil && n.User != u.Username {
			t.Errorf("%s: user %q, want %q", name, n.User, u.Username)
		}
		if g, err := user.LookupGroupId(strconv.Itoa(int(st.Gid))); err == nil && n.Group != g.Name {
			t.Errorf("%s: group %q, want %q", name, n.Group, g.Name)
		}
		if !slices.EqualFunc(n.Xattrs, w.xattrs, func(a, b Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) {
			t.Errorf("%s: xattrs %q, want %q", name, n.Xattrs, w.xattrs)
		}
		if n.Content != nil || !n.Subtree.IsZero() || n.Error != "" {
			t.Errorf("%s: readMeta filled content fields: %+v", name, n)
		}
	}

	// Hard links must be recognisable as one inode.
	a, err := readMeta(p("file"), "file", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readMeta(p("link2"), "link2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Inode != b.Inode || a.Device != b.Device || a.User != "" {
		t.Errorf("hard links: %d/%d vs %d/%d, user %q with nil names", a.Device, a.Inode, b.Device, b.Inode, a.User)
	}
}

func TestMetaReadMetaSystemFiles(t *testing.T) {
	// devtmpfs and procfs: a real device number from the kernel, and a
	// filesystem whose xattr support is at best partial must not fail.
	n, err := readMeta("/dev/null", "null", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.Type != TypeCharDev || n.Rdev != unix.Mkdev(1, 3) || n.Size != 0 {
		t.Errorf("/dev/null: type %s rdev %#x size %d", n.Type, n.Rdev, n.Size)
	}
	if _, err := readMeta("/proc/self/status", "status", nil); err != nil {
		t.Errorf("/proc/self/status: %v", err)
	}
}

func TestMetaReadMetaMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	_, err := readMeta(path, "nope", nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("readMeta of a missing path: %v; want ErrNotExist naming the path", err)
	}
}

// metaTestFile builds a file of the given size holding data at the given
// offsets, made by truncate and WriteAt so the gaps are real holes.
func metaTestFile(t *testing.T, path string, size int64, writes map[int64][]byte) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range writes {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	// Hole detection must hold for what is on disk, not only for dirty
	// pages still in the cache.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return f
}

func metaTestPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed | 1 // never zero, so a lost byte shows
	}
	return b
}

func TestMetaDataRegions(t *testing.T) {
	const (
		KiB = 1 << 10
		MiB = 1 << 20
		// Filesystems track holes in blocks or larger units; a region may
		// extend that far past the written bytes.
		slack = 64 * KiB
	)
	dir := t.TempDir()

	probe := metaTestFile(t, filepath.Join(dir, "probe"), MiB, nil)
	pr, err := dataRegions(probe, MiB)
	if err != nil {
		t.Fatal(err)
	}
	holes := len(pr) == 0
	if !holes {
		t.Logf("filesystem of %s reports no holes (%v); checking only the fallback semantics", dir, pr)
	}

	cases := []struct {
		name   string
		size   int64
		writes map[int64][]byte
		// want is the exact answer on a filesystem with holes, nil for
		// "check coverage and compactness only".
		want []region
		// count is the number of regions expected on a filesystem with
		// holes; -1 to skip.
		count int
	}{
		{name: "empty", size: 0, want: []region{}, count: 0},
		{name: "dense", size: 100 * KiB, writes: map[int64][]byte{0: metaTestPattern(100*KiB, 1)}, want: []region{{0, 100 * KiB}}, count: 1},
		{name: "dense-unaligned", size: 12345, writes: map[int64][]byte{0: metaTestPattern(12345, 2)}, want: []region{{0, 12345}}, count: 1},
		// Holes at the start, middle and end, like the shared test tree.
		{name: "sparse", size: 8 * MiB, writes: map[int64][]byte{2 * MiB: metaTestPattern(100*KiB, 3)}, count: 1},
		{name: "all-hole", size: MiB, want: []region{}, count: 0},
		{name: "data-at-end", size: MiB, writes: map[int64][]byte{MiB - 10: metaTestPattern(10, 4)}, count: 1},
		{name: "hole-at-end", size: MiB, writes: map[int64][]byte{0: metaTestPattern(5000, 5)}, count: 1},
		{name: "several", size: 4*MiB + 7, writes: map[int64][]byte{
			0:       metaTestPattern(3000, 6),
			MiB:     metaTestPattern(200*KiB, 7),
			3 * MiB: metaTestPattern(5, 8),
			4 * MiB: metaTestPattern(7, 9),
		}, count: 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := metaTestFile(t, filepath.Join(dir, c.name), c.size, c.writes)
			// The caller may have read part of the file already; its
			// position must survive.
			if _, err := f.Seek(17, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got, err := dataRegions(f, c.size)
			if err != nil {
				t.Fatal(err)
			}
			if pos, _ := f.Seek(0, io.SeekCurrent); pos != 17 {
				t.Errorf("file offset %d after dataRegions, want 17", pos)
			}
			metaTestCheckRegions(t, f, c.size, got)
			// dense, which lets readContent skip dataRegions, must not
			// hide the holes of these files (nothing is allocated past
			// their ends).
			if fi, err := f.Stat(); err != nil {
				t.Fatal(err)
			} else if dense(fi) && c.size > 0 && !slices.Equal(got, []region{{0, c.size}}) {
				t.Errorf("dense says %d blocks cover %d bytes, but dataRegions finds %v", fi.Sys().(*syscall.Stat_t).Blocks, c.size, got)
			} else if c.name == "dense" && !dense(fi) {
				t.Errorf("a file written in full is not dense (%d blocks)", fi.Sys().(*syscall.Stat_t).Blocks)
			}
			for off, b := range c.writes {
				if !metaTestCovered(got, off, int64(len(b))) {
					t.Errorf("data [%d,%d) not covered by %v", off, off+int64(len(b)), got)
				}
			}
			if !holes {
				if c.size > 0 && !slices.Equal(got, []region{{0, c.size}}) {
					t.Errorf("regions %v, want the whole file on a filesystem without holes", got)
				}
				return
			}
			if c.want != nil && !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
				t.Errorf("regions %v, want %v", got, c.want)
			}
			if c.count >= 0 && len(got) != c.count {
				t.Errorf("%d regions %v, want %d", len(got), got, c.count)
			}
			var written, stored int64
			for _, b := range c.writes {
				written += int64(len(b))
			}
			for _, r := range got {
				stored += r.Len
			}
			if stored > written+int64(len(c.writes))*2*slack {
				t.Errorf("regions %v hold %d bytes for %d written: holes not detected", got, stored, written)
			}
		})
	}

	t.Run("clip-to-size", func(t *testing.T) {
		// The file grew after it was stat'ed: only the recorded size counts.
		f := metaTestFile(t, filepath.Join(dir, "grown"), MiB, map[int64][]byte{0: metaTestPattern(MiB, 10)})
		got, err := dataRegions(f, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []region{{0, 1000}}) {
			t.Errorf("regions %v, want [{0 1000}]", got)
		}
	})

	t.Run("unsupported", func(t *testing.T) {
		// procfs answers SEEK_DATA with EINVAL, like filesystems that
		// predate it: the whole file must then count as data.
		f, err := os.Open("/proc/self/status")
		if err != nil {
			t.Skip(err)
		}
		defer f.Close()
		got, err := dataRegions(f, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []region{{0, 4096}}) {
			t.Errorf("regions %v, want [{0 4096}]", got)
		}
	})

	t.Run("closed", func(t *testing.T) {
		f := metaTestFile(t, filepath.Join(dir, "closed"), 10, nil)
		f.Close()
		if _, err := dataRegions(f, 10); err == nil || !strings.Contains(err.Error(), f.Name()) {
			t.Errorf("dataRegions on a closed file: %v; want an error naming it", err)
		}
	})
}

func metaTestCovered(regions []region, off, n int64) bool {
	for _, r := range regions {
		if off >= r.Off && off+n <= r.Off+r.Len {
			return true
		}
	}
	return false
}

// metaTestCheckRegions checks the invariants every answer must have, holes or
// not: ordered, disjoint, non-empty, within size, and no non-zero byte left
// outside them (which would be data lost from the backup).
func metaTestCheckRegions(t *testing.T, f *os.File, size int64, regions []region) {
	t.Helper()
	end := int64(0)
	for i, r := range regions {
		if r.Len <= 0 || r.Off < end || r.Off+r.Len > size || (i > 0 && r.Off == end) {
			t.Errorf("bad region %d in %v for size %d", i, regions, size)
		}
		end = r.Off + r.Len
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	for _, r := range regions {
		clear(buf[r.Off : r.Off+r.Len])
	}
	if i := slices.IndexFunc(buf, func(b byte) bool { return b != 0 }); i >= 0 {
		t.Errorf("non-zero byte at %d outside regions %v", i, regions)
	}
}

func TestMetaCreateSpecial(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		n   Node
		fmt uint32
	}{
		{Node{Name: "fifo", Type: TypeFifo, Mode: 0o644}, unix.S_IFIFO},
		{Node{Name: "socket", Type: TypeSocket, Mode: 0o755}, unix.S_IFSOCK},
		{Node{Name: "null", Type: TypeCharDev, Mode: 0o666, Rdev: unix.Mkdev(1, 3)}, unix.S_IFCHR},
		{Node{Name: "loop", Type: TypeBlkDev, Mode: 0o660, Rdev: unix.Mkdev(7, 200)}, unix.S_IFBLK},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.n.Name)
		err := createSpecial(path, &c.n)
		if errors.Is(err, errNeedRoot) {
			if os.Geteuid() == 0 {
				t.Logf("%s: %v (root without CAP_MKNOD?)", c.n.Name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.n.Name, err)
			continue
		}
		st := metaTestStat(t, path)
		if st.Mode&unix.S_IFMT != c.fmt || st.Mode&0o7777 != 0o600 {
			t.Errorf("%s: st_mode %#o, want type %#o with private mode 0600 until applyMeta", c.n.Name, st.Mode, c.fmt)
		}
		if (c.fmt == unix.S_IFCHR || c.fmt == unix.S_IFBLK) && st.Rdev != c.n.Rdev {
			t.Errorf("%s: rdev %#x, want %#x", c.n.Name, st.Rdev, c.n.Rdev)
		}
		// The restorer applies the mode next; the pair must round-trip.
		if err := applyMeta(path, &c.n, false); err != nil {
			t.Errorf("%s: applyMeta: %v", c.n.Name, err)
		}
		n, err := readMeta(path, c.n.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n.Type != c.n.Type || n.Mode != c.n.Mode || n.Rdev != c.n.Rdev {
			t.Errorf("%s: read back type %s mode %#o rdev %#x", c.n.Name, n.Type, n.Mode, n.Rdev)
		}
	}

	for _, n := range []*Node{{Type: TypeFile}, {Type: TypeDir}, {Type: TypeSymlink}, {Type: "bogus"}} {
		path := filepath.Join(dir, "bad-"+string(n.Type))
		if err := createSpecial(path, n); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("createSpecial(%s): %v; want an error naming the path", n.Type, err)
		}
	}
	if err := createSpecial(filepath.Join(dir, "fifo"), &Node{Type: TypeFifo}); !errors.Is(err, fs.ErrExist) || errors.Is(err, errNeedRoot) {
		t.Errorf("createSpecial over an existing node: %v; want ErrExist", err)
	}
	if err := createSpecial(filepath.Join(dir, "huge"), &Node{Type: TypeCharDev, Rdev: 1 << 40}); err == nil || errors.Is(err, errNeedRoot) {
		t.Errorf("createSpecial with a 64-bit rdev: %v; want a range error", err)
	}
}

const metaTestNobodyEnv = "COFFER_META_TEST_AS_NOBODY"

// TestMetaCreateSpecialNeedsRoot proves the errNeedRoot path against the real
// kernel. Run as root (as CI is), it re-runs itself as nobody, since the
// interesting case is exactly the one root never hits.
func TestMetaCreateSpecialNeedsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		dir, err := os.MkdirTemp("", "coffer-meta-nobody")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		err = createSpecial(filepath.Join(dir, "null"), &Node{Type: TypeCharDev, Rdev: unix.Mkdev(1, 3)})
		if !errors.Is(err, errNeedRoot) || !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), dir) {
			t.Errorf("createSpecial of a device as uid %d: %v; want errNeedRoot wrapping EPERM and naming the path", os.Geteuid(), err)
		}
		// Fifos and sockets need no privilege and must not be reported so.
		if err := createSpecial(filepath.Join(dir, "fifo"), &Node{Type: TypeFifo}); err != nil {
			t.Errorf("fifo as uid %d: %v", os.Geteuid(), err)
		}
		if err := createSpecial(filepath.Join(dir, "socket"), &Node{Type: TypeSocket}); err != nil {
			t.Errorf("socket as uid %d: %v", os.Geteuid(), err)
		}
		return
	}
	if os.Getenv(metaTestNobodyEnv) != "" {
		t.Fatal("still root after dropping privileges")
	}

	// The go test binary lives in a private build directory; give nobody a
	// copy it can execute.
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	tmp, err := os.MkdirTemp("", "coffer-meta-exe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Skip(err)
	}
	copyExe := filepath.Join(tmp, "snapshot.test")
	if err := os.WriteFile(copyExe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(copyExe, "-test.run=^TestMetaCreateSpecialNeedsRoot$", "-test.count=1", "-test.v")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), metaTestNobodyEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			t.Skipf("cannot run as nobody: %v", err)
		}
		t.Errorf("as nobody: %v\n%s", err, out)
	} else if !bytes.Contains(out, []byte("--- PASS: TestMetaCreateSpecialNeedsRoot")) {
		t.Errorf("as nobody: the test did not run:\n%s", out)
	}
}

// metaTestSameMeta compares what applyMeta promises to restore.
func metaTestSameMeta(t *testing.T, what string, got, want *Node, owner bool) {
	t.Helper()
	if got.Type != want.Type || got.Mode != want.Mode || got.LinkTarget != want.LinkTarget || got.Rdev != want.Rdev || got.Size != want.Size {
		t.Errorf("%s: type %s mode %#o target %q rdev %#x size %d, want %s %#o %q %#x %d",
			what, got.Type, got.Mode, got.LinkTarget, got.Rdev, got.Size, want.Type, want.Mode, want.LinkTarget, want.Rdev, want.Size)
	}
	if owner && (got.UID != want.UID || got.GID != want.GID) {
		t.Errorf("%s: owner %d:%d, want %d:%d", what, got.UID, got.GID, want.UID, want.GID)
	}
	if !got.ModTime.Equal(want.ModTime) {
		t.Errorf("%s: mtime %v, want %v", what, got.ModTime, want.ModTime)
	}
	if !slices.EqualFunc(got.Xattrs, want.Xattrs, func(a, b Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) {
		t.Errorf("%s: xattrs %q, want %q", what, got.Xattrs, want.Xattrs)
	}
}

// TestMetaApplyMeta restores recorded metadata onto freshly created objects,
// as the restorer does, and reads it back.
func TestMetaApplyMeta(t *testing.T) {
	root := os.Geteuid() == 0
	src, dst := t.TempDir(), t.TempDir()
	xattrs := metaTestXattrs(t, src)
	s := func(name string) string { return filepath.Join(src, name) }

	// Source objects. As root they belong to someone else and carry
	// setuid/setgid, which the kernel clears on chown: applyMeta must chmod
	// after chown for them to survive.
	if err := os.WriteFile(s("file"), []byte("content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s("readonly"), []byte("ro"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s("dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s("sticky"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", s("symlink")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(s("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if xattrs {
		for _, name := range []string{"file", "readonly", "dir"} {
			if err := unix.Lsetxattr(s(name), "user.coffer.test", []byte("value of "+name), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	modes := map[string]uint32{"file": 0o6755, "readonly": 0o444, "dir": 0o2750, "sticky": 0o1777, "fifo": 0o620}
	for name, mode := range modes {
		if root {
			if err := unix.Lchown(s(name), 1234, 5678); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Chmod(s(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if root {
		if err := unix.Lchown(s("symlink"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}

	seq := int64(0)
	for _, name := range []string{"file", "readonly", "dir", "sticky", "symlink", "fifo"} {
		seq++
		metaTestTimes(t, s(name), seq)
		want, err := readMeta(s(name), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dst, name)
		// Create the object the way a restorer would: private, owned by
		// us, content first.
		switch want.Type {
		case TypeFile:
			var data []byte
			if data, err = os.ReadFile(s(name)); err == nil {
				err = os.WriteFile(path, data, 0o600)
			}
		case TypeDir:
			err = os.Mkdir(path, 0o700)
			if err == nil {
				err = os.WriteFile(filepath.Join(path, "entry"), nil, 0o600)
			}
		case TypeSymlink:
			err = os.Symlink(want.LinkTarget, path)
		default:
			err = createSpecial(path, want)
		}
		if err != nil {
			t.Fatal(err)
		}
		if name == "dir" {
			// Restoring entries changes a directory's times; applyMeta
			// runs after that, so none of it may show.
			if err := os.Remove(filepath.Join(path, "entry")); err != nil {
				t.Fatal(err)
			}
		}
		if err := applyMeta(path, want, root); err != nil {
			t.Errorf("applyMeta %s: %v", name, err)
		}
		got, err := readMeta(path, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		metaTestSameMeta(t, name, got, want, root)
		if root && (got.UID != 1234 || got.GID != 5678) {
			t.Errorf("%s: owner %d:%d, want 1234:5678", name, got.UID, got.GID)
		}
		if want.Type == TypeFile {
			metaTestThroughDescriptor(t, s(name), path+".fd", want, root)
		}
	}
}

// metaTestThroughDescriptor restores the regular file src as the
// restorer's data phase does: created, written and given its metadata
// through one open descriptor (targetFile), then checks it against want.
func metaTestThroughDescriptor(t *testing.T, src, dst string, want *Node, root bool) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := openTarget(dst, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.writeAt(data, 0); err != nil {
		t.Fatal(err)
	}
	metaErr, err := f.closeWithMeta(want, root)
	if err != nil {
		t.Fatal(err)
	}
	if metaErr != nil {
		t.Errorf("%s: closeWithMeta: %v", want.Name, metaErr)
	}
	got, err := readMeta(dst, want.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	metaTestSameMeta(t, want.Name+" (through its descriptor)", got, want, root)
	if root && (got.UID != 1234 || got.GID != 5678) {
		t.Errorf("%s through its descriptor: owner %d:%d, want 1234:5678", want.Name, got.UID, got.GID)
	}
	if b, err := os.ReadFile(dst); err != nil || !bytes.Equal(b, data) {
		t.Errorf("%s through its descriptor: content %q (%v), want %q", want.Name, b, err, data)
	}
}

func TestMetaApplyMetaSymlinkTimes(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tAtime, tMtime := metaTestTimes(t, target, 100)
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	n := &Node{
		Type: TypeSymlink, LinkTarget: "target", Mode: 0o777,
		ModTime: time.Date(2019, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	if err := applyMeta(link, n, false); err != nil {
		t.Fatal(err)
	}
	atime := metaTestAtime(t, link) // before readlink, which may touch it
	got, err := readMeta(link, "link", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ModTime.Equal(n.ModTime) || !atime.Equal(n.ModTime) {
		t.Errorf("symlink times %v %v, want both %v", got.ModTime, atime, n.ModTime)
	}
	// The link's target must be untouched: no chmod or utimes through it.
	tgt, err := readMeta(target, "target", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tgtAtime := metaTestAtime(t, target); tgt.Mode != 0o644 || !tgt.ModTime.Equal(tMtime) || !tgtAtime.Equal(tAtime) {
		t.Errorf("symlink target changed: mode %#o mtime %v atime %v", tgt.Mode, tgt.ModTime, tgtAtime)
	}
}

func TestMetaApplyMetaXattrUnsupported(t *testing.T) {
	// Linux refuses user.* attributes on symlinks (EPERM) on every
	// filesystem, which makes a portable stand-in for one without xattrs.
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("nowhere", link); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2022, 2, 2, 2, 2, 2, 222222222, time.UTC)
	n := &Node{Type: TypeSymlink, ModTime: mtime, Xattrs: []Xattr{{"user.a", []byte("1")}, {"user.b", []byte("2")}}}
	err := applyMeta(link, n, false)
	if !errors.Is(err, errXattrUnsupported) || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "user.b") {
		t.Fatalf("applyMeta: %v; want errXattrUnsupported naming the path and each attribute", err)
	}
	got, err := readMeta(link, "link", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ModTime.Equal(mtime) {
		t.Errorf("an unsupported xattr stopped the times: mtime %v, want %v", got.ModTime, mtime)
	}
}

func TestMetaApplyMetaAtimeFromMtime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	metaTestTimes(t, path, 1)
	mtime := time.Date(2023, 5, 6, 7, 8, 9, 10, time.UTC)
	if err := applyMeta(path, &Node{Type: TypeFile, Mode: 0o640, ModTime: mtime}, false); err != nil {
		t.Fatal(err)
	}
	got, err := readMeta(path, "f", nil)
	if err != nil {
		t.Fatal(err)
	}
	if atime := metaTestAtime(t, path); !got.ModTime.Equal(mtime) || !atime.Equal(mtime) || got.Mode != 0o640 {
		t.Errorf("mtime %v atime %v mode %#o, want %v for both and 0640", got.ModTime, atime, got.Mode, mtime)
	}
}

// metaTestAtime returns the access time of path itself (not following links).
func metaTestAtime(t *testing.T, path string) time.Time {
	t.Helper()
	st := metaTestStat(t, path)
	return time.Unix(st.Atim.Unix()).UTC()
}

func TestMetaApplyMetaMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone")
	for _, asRoot := range []bool{false, true} {
		err := applyMeta(path, &Node{Type: TypeFile, Mode: 0o644, ModTime: time.Now()}, asRoot)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("applyMeta(asRoot=%v) on a missing path: %v; want ErrNotExist naming it", asRoot, err)
		}
	}
}

// TestMetaReadMetaSince checks when readMetaSince takes the extended
// attributes from the parent snapshot's node instead of listing them: only
// for the same inode and type with the same ctime, which setting an
// attribute changes.
func TestMetaReadMetaSince(t *testing.T) {
	dir := t.TempDir()
	if !metaTestXattrs(t, dir) {
		t.Fatalf("%s takes no user.* attributes, which this test needs", dir)
	}
	path := filepath.Join(dir, "file")
	writeFile(t, path, []byte("content"), 0o644)
	if err := unix.Lsetxattr(path, "user.a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	prev, err := readMeta(path, "file", nil)
	if err != nil || len(prev.Xattrs) != 1 {
		t.Fatalf("readMeta: %+v, %v; want one attribute", prev, err)
	}
	// A parent whose attributes differ from the disk's shows where they
	// came from.
	recorded := []Xattr{{"user.recorded", []byte("in the parent")}}
	parent := func(change func(n *Node)) *Node {
		n := *prev
		n.Xattrs = recorded
		change(&n)
		return &n
	}
	for _, tc := range []struct {
		name       string
		prev       *Node
		fromParent bool
	}{
		{"no parent", nil, false},
		{"unchanged", parent(func(*Node) {}), true},
		{"another ctime", parent(func(n *Node) { n.ChangeTime = n.ChangeTime.Add(-time.Second) }), false},
		{"another inode", parent(func(n *Node) { n.Inode++ }), false},
		{"another type", parent(func(n *Node) { n.Type = TypeSymlink }), false},
		{"an error in the parent", parent(func(n *Node) { n.Error = "permission denied" }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := readMetaSince(noDir, path, "file", nil, tc.prev)
			if err != nil {
				t.Fatal(err)
			}
			want := prev.Xattrs
			if tc.fromParent {
				want = recorded
			}
			if !reflect.DeepEqual(n.Xattrs, want) {
				t.Errorf("xattrs %q, want %q", n.Xattrs, want)
			}
		})
	}

	// Setting an attribute changes the ctime (coarse clock ticks: wait one
	// out), so the next read lists them again.
	time.Sleep(20 * time.Millisecond)
	if err := unix.Lsetxattr(path, "user.b", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	n, err := readMetaSince(noDir, path, "file", nil, prev)
	if err != nil || len(n.Xattrs) != 2 || n.ChangeTime.Equal(prev.ChangeTime) {
		t.Errorf("after setting user.b: xattrs %q, ctime %v (was %v), %v; want user.a and user.b", n.Xattrs, n.ChangeTime, prev.ChangeTime, err)
	}
}

// TestMetaFromDirDescriptor checks that an entry looked up from its
// directory's descriptor, as the walk does, is the node its path gives,
// for each type, with a link target longer than the first read buffer.
func TestMetaFromDirDescriptor(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFile(t, p("file"), []byte("content"), 0o640)
	if err := os.Mkdir(p("dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("short", p("link")); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a-long-target/", 40) // 560 bytes: the buffer grows twice
	if err := os.Symlink(long, p("longlink")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range []string{"file", "dir", "link", "longlink", "fifo"} {
		want, err := readMeta(p(name), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readMetaSince(int(f.Fd()), p(name), name, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s from the directory's descriptor:\n%+v\nby path:\n%+v", name, got, want)
		}
	}
	if got, err := readMetaSince(int(f.Fd()), p("longlink"), "longlink", nil, nil); err != nil || got.LinkTarget != long {
		t.Errorf("long link target %q, %v; want %d bytes", got.LinkTarget, err, len(long))
	}
	_, err = readMetaSince(int(f.Fd()), p("gone"), "gone", nil, nil)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != p("gone") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing entry: %v; want a *PathError naming its whole path, not found", err)
	}
}
