//go:build linux

package testutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The owner GenerateTree gives some entries when it runs as root: ids that
// exist on no test machine, so a restore that drops ownership, or maps it
// through user names, cannot pass by accident.
const (
	OwnerUID = 1234
	OwnerGID = 5678
)

// TreeOptions shapes the tree GenerateTree makes. The zero value (apart from
// Seed) asks for the full default tree.
type TreeOptions struct {
	// Seed determines every byte of content, the placement of the small
	// files and every timestamp: equal options give equal trees.
	Seed int64
	// Files is the number of small files spread over the tree: 0 means 50,
	// a negative number none.
	Files int
	// LargeFileSize is the size of large.bin, random data meant to span
	// several content-defined chunks (512 KiB min, 1 MiB average): 0 means
	// 3 MiB, a negative number leaves the file out.
	LargeFileSize int64
	// NoSpecial leaves out the fifo, socket and device node, for tests of
	// code that cannot hold them. It is a negative option so that the zero
	// value includes everything.
	NoSpecial bool
}

// Manifest says what GenerateTree made. All paths are relative to the root,
// slash-separated.
type Manifest struct {
	// Paths lists every entry created (root excluded), sorted.
	Paths []string
	// LargeFile is the large random file, "" if left out.
	LargeFile string
	// DupFiles are two distinct files with identical content (1 MiB and a
	// bit), for deduplication tests.
	DupFiles [2]string
	// SparseFiles have holes: sparse.bin has holes at its start, middle and
	// end around 100 KiB of data at 2 MiB of 8 MiB; holes.bin is all hole.
	SparseFiles []string
	// HardLinks lists the groups of paths that share one inode.
	HardLinks [][]string
	// Symlinks lists every symlink; some are dangling, one is absolute.
	Symlinks []string
	// Special lists the fifo, socket and device node made.
	Special []string
	// Xattrs reports whether user.* extended attributes were set; false
	// when the filesystem of the root does not support them.
	Xattrs bool
	// Device reports whether a character device was made (root only).
	Device bool
	// Owned reports whether entries were given to OwnerUID:OwnerGID (root
	// only).
	Owned bool
}

// genEntry is one entry whose metadata GenerateTree applies after all
// entries exist, so creating a child cannot disturb its directory's times
// and a mode cannot block creating what comes after.
type genEntry struct {
	rel     string
	dir     bool
	symlink bool
	mode    uint32
	owned   bool
	xattrs  [][2]string
	mtime   time.Time
	atime   time.Time
	extName bool // a second name of a hard-linked inode: no metadata of its own
}

type gen struct {
	t       testing.TB
	root    string
	rng     *rand.Rand
	m       *Manifest
	entries []*genEntry
	asRoot  bool
}

// GenerateTree fills dir, which must be empty or absent, with a tree that
// holds everything a backup has to preserve, determined by opt.Seed:
//
//   - nested directories (a/b/c/d), an empty directory (empty);
//   - small files with random and with text-like content, a zero-byte file
//     (zero), names with spaces and non-ASCII letters, a large random file
//     (large.bin), two identical files (DupFiles);
//   - relative, absolute and dangling symlinks;
//   - a hard-link pair and a triple spanning directories;
//   - sparse files (SparseFiles);
//   - a fifo, a unix socket and, as root, a character device 1,3 (special/),
//     unless opt.NoSpecial;
//   - user.* extended attributes on a file and a directory (xattr/), if the
//     filesystem takes them;
//   - modes 0600, 0640, 0755, 0444, setuid and setgid files, setgid and
//     sticky directories, and as root a 0555 directory with content;
//   - as root, entries owned by OwnerUID:OwnerGID (owned/), including a
//     setuid file, whose bit only survives a restore that chmods after it
//     chowns.
//
// Every entry, symlinks and directories included, gets its own mtime with a
// non-zero nanosecond part, set after everything else.
//
// Parts the environment cannot provide are skipped with a t.Logf and reported
// in the Manifest. Any other failure is fatal.
func GenerateTree(t testing.TB, dir string, opt TreeOptions) *Manifest {
	t.Helper()
	if opt.Files == 0 {
		opt.Files = 50
	}
	if opt.LargeFileSize == 0 {
		opt.LargeFileSize = 3 << 20
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("GenerateTree: %v", err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		t.Fatalf("GenerateTree: %s must be an empty directory (%d entries, %v)", dir, len(ents), err)
	}
	g := &gen{
		t:      t,
		root:   dir,
		rng:    rand.New(rand.NewPCG(uint64(opt.Seed), 1)),
		m:      &Manifest{},
		asRoot: os.Geteuid() == 0,
	}
	g.m.Xattrs = g.probeXattrs()
	owned := g.asRoot && g.probeChown()

	// Entries whose presence depends on the environment come last, so the
	// content and times of all others stay the same whatever is skipped.
	g.dir("a", 0o755)
	g.dir("a/b", 0o750)
	g.dir("a/b/c", 0o700)
	g.dir("a/b/c/d", 0o755)
	g.file("a/b/c/d/deep.txt", CompressibleBytes(g.seed(), 3000), 0o644)
	g.dir("empty", 0o755)
	g.dir("files", 0o755)
	g.dir("files/sub", 0o711)
	g.dir("dup", 0o755)
	g.dir("links", 0o755)
	g.dir("hard", 0o755)
	g.dir("perms", 0o755)
	// Created setgid before its content, so new entries inherit the bit and
	// the group the way they do on a real system.
	g.dir("perms/setgid", 0o2775)
	g.chmodNow("perms/setgid")
	g.dir("perms/sticky", 0o1777)
	g.dir("xattr", 0o750)

	places := []string{"files", "files/sub", "a", "a/b", "a/b/c", "perms/setgid", "perms/sticky"}
	modes := []uint32{0o644, 0o600, 0o640}
	for i := range max(opt.Files, 0) {
		place, size, mode := places[g.rng.IntN(len(places))], 1+g.rng.IntN(16<<10), modes[g.rng.IntN(len(modes))]
		if i%2 == 0 {
			g.file(fmt.Sprintf("%s/f%03d.bin", place, i), RandomBytes(g.seed(), size), mode)
		} else {
			g.file(fmt.Sprintf("%s/f%03d.txt", place, i), CompressibleBytes(g.seed(), size), mode)
		}
	}
	g.file("files/with space.txt", CompressibleBytes(g.seed(), 777), 0o644)
	g.file("files/ünïcødé ✓.txt", CompressibleBytes(g.seed(), 1234), 0o644)
	g.file("files/-dash", RandomBytes(g.seed(), 100), 0o644)
	g.file("zero", nil, 0o644)
	g.file("text.txt", CompressibleBytes(g.seed(), 64<<10), 0o644)
	if opt.LargeFileSize > 0 {
		g.m.LargeFile = "large.bin"
		g.file("large.bin", RandomBytes(g.seed(), int(opt.LargeFileSize)), 0o644)
	}
	dup := RandomBytes(g.seed(), 1<<20+4321)
	g.m.DupFiles = [2]string{"dup/one.bin", "a/b/dup-two.bin"}
	g.file("dup/one.bin", dup, 0o644)
	g.file("a/b/dup-two.bin", dup, 0o600)

	g.sparse("sparse.bin", 8<<20, 2<<20, RandomBytes(g.seed(), 100<<10))
	g.sparse("holes.bin", 1<<20, 0, nil)

	g.file("perms/p0600", RandomBytes(g.seed(), 600), 0o600)
	g.file("perms/p0640", RandomBytes(g.seed(), 640), 0o640)
	g.file("perms/p0755.sh", []byte("#!/bin/sh\necho coffer\n"), 0o755)
	g.file("perms/ro0444", CompressibleBytes(g.seed(), 444), 0o444)
	g.file("perms/setuid", RandomBytes(g.seed(), 4755), 0o4755)
	g.file("perms/setgid-file", RandomBytes(g.seed(), 2755), 0o2755)
	g.file("perms/setgid/inner.txt", CompressibleBytes(g.seed(), 200), 0o644)
	g.file("perms/sticky/inner.txt", CompressibleBytes(g.seed(), 300), 0o666)

	g.file("hard/pair1", RandomBytes(g.seed(), 5000), 0o644)
	g.hardlink("hard/pair2", "hard/pair1")
	g.file("hard/triple1", CompressibleBytes(g.seed(), 9000), 0o640)
	g.hardlink("a/triple2", "hard/triple1")
	g.hardlink("a/b/triple3", "hard/triple1")
	g.m.HardLinks = [][]string{{"hard/pair1", "hard/pair2"}, {"hard/triple1", "a/triple2", "a/b/triple3"}}

	g.symlink("links/rel", "../text.txt")
	g.symlink("links/reldir", "../a/b")
	// Absolute targets must not name dir, or two trees made alike would
	// differ; /etc/passwd exists on any Linux system.
	g.symlink("links/abs", "/etc/passwd")
	g.symlink("links/dangling", "../no/such/file")
	g.symlink("a/b/c/up", "../../../zero")

	xf := g.file("xattr/file.txt", CompressibleBytes(g.seed(), 500), 0o644)
	xd := g.entry("xattr")
	bin := string(RandomBytes(g.seed(), 64))
	if g.m.Xattrs {
		xf.xattrs = [][2]string{{"user.coffer.text", "hello, coffer"}, {"user.coffer.bin", bin}, {"user.coffer.empty", ""}}
		xd.xattrs = [][2]string{{"user.coffer.dir", "directory attribute"}}
	}

	if g.asRoot {
		// Content inside a directory its owner cannot write: a restorer
		// that sets the mode before restoring the content fails as a
		// normal user. Root only, because a normal user's test cleanup
		// could not delete it.
		g.dir("perms/readonly", 0o555)
		g.file("perms/readonly/inner.txt", CompressibleBytes(g.seed(), 100), 0o644)
	}
	if !opt.NoSpecial {
		g.dir("special", 0o755)
		g.node("special/fifo", unix.S_IFIFO, 0, 0o644)
		g.node("special/socket", unix.S_IFSOCK, 0, 0o755)
		if g.asRoot {
			g.m.Device = g.node("special/null", unix.S_IFCHR, unix.Mkdev(1, 3), 0o666) != nil
		}
	}
	if owned {
		g.m.Owned = true
		g.dir("owned", 0o755).owned = true
		g.file("owned/file", RandomBytes(g.seed(), 1234), 0o640).owned = true
		g.file("owned/setuid", RandomBytes(g.seed(), 5678), 0o4750).owned = true
		g.symlink("owned/link", "file").owned = true
		g.dir("owned/setgid-dir", 0o2770).owned = true
	}

	g.applyMeta()
	g.applyTimes(opt.Seed)
	slices.Sort(g.m.Paths)
	return g.m
}

func (g *gen) seed() int64 { return g.rng.Int64() }

func (g *gen) path(rel string) string { return filepath.Join(g.root, filepath.FromSlash(rel)) }

func (g *gen) check(err error, op, rel string) {
	if err != nil {
		g.t.Helper()
		g.t.Fatalf("GenerateTree: %s %s: %v", op, g.path(rel), err)
	}
}

func (g *gen) add(e *genEntry) *genEntry {
	g.entries = append(g.entries, e)
	g.m.Paths = append(g.m.Paths, e.rel)
	return e
}

func (g *gen) entry(rel string) *genEntry {
	for _, e := range g.entries {
		if e.rel == rel {
			return e
		}
	}
	g.t.Fatalf("GenerateTree: no entry %s", rel)
	return nil
}

func (g *gen) dir(rel string, mode uint32) *genEntry {
	g.check(os.Mkdir(g.path(rel), 0o755), "mkdir", rel)
	return g.add(&genEntry{rel: rel, dir: true, mode: mode})
}

// chmodNow gives a directory its mode before its content exists, for modes
// whose effect on new entries is part of what the tree shows.
func (g *gen) chmodNow(rel string) {
	g.check(unix.Chmod(g.path(rel), g.entry(rel).mode), "chmod", rel)
}

func (g *gen) file(rel string, data []byte, mode uint32) *genEntry {
	g.check(os.WriteFile(g.path(rel), data, 0o600), "write", rel)
	return g.add(&genEntry{rel: rel, mode: mode})
}

// sparse makes a file of size with data written at off and holes elsewhere.
// Truncating first and writing after is what leaves the holes unallocated.
func (g *gen) sparse(rel string, size, off int64, data []byte) {
	g.t.Helper()
	p := g.path(rel)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	g.check(err, "create", rel)
	defer f.Close()
	g.check(f.Truncate(size), "truncate", rel)
	if len(data) > 0 {
		_, err = f.WriteAt(data, off)
		g.check(err, "write", rel)
	}
	g.check(f.Close(), "close", rel)
	var st unix.Stat_t
	g.check(unix.Stat(p, &st), "stat", rel)
	if st.Blocks*512 >= size {
		g.t.Logf("GenerateTree: filesystem of %s keeps no holes: %s uses %d bytes for %d", g.root, rel, st.Blocks*512, size)
	}
	g.m.SparseFiles = append(g.m.SparseFiles, rel)
	g.add(&genEntry{rel: rel, mode: 0o644})
}

func (g *gen) hardlink(rel, existing string) {
	g.check(os.Link(g.path(existing), g.path(rel)), "link", rel)
	g.add(&genEntry{rel: rel, extName: true})
}

func (g *gen) symlink(rel, target string) *genEntry {
	g.check(os.Symlink(target, g.path(rel)), "symlink", rel)
	g.m.Symlinks = append(g.m.Symlinks, rel)
	return g.add(&genEntry{rel: rel, symlink: true})
}

// node makes a fifo, socket or device; it returns nil if the kernel refuses
// a device for lack of privilege, as in a container without CAP_MKNOD.
func (g *gen) node(rel string, typ uint32, dev uint64, mode uint32) *genEntry {
	err := unix.Mknod(g.path(rel), typ|0o600, int(dev))
	if errors.Is(err, unix.EPERM) && typ == unix.S_IFCHR {
		g.t.Logf("GenerateTree: skipping device %s: %v", rel, err)
		return nil
	}
	g.check(err, "mknod", rel)
	g.m.Special = append(g.m.Special, rel)
	return g.add(&genEntry{rel: rel, mode: mode})
}

func (g *gen) probeXattrs() bool {
	err := unix.Lsetxattr(g.root, "user.coffer.probe", []byte("1"), 0)
	if err != nil {
		g.t.Logf("GenerateTree: no user.* xattrs in %s (%v): leaving them out", g.root, err)
		return false
	}
	g.check(unix.Lremovexattr(g.root, "user.coffer.probe"), "removexattr", ".")
	return true
}

// probeChown checks that foreign ids can be set here: root in a user
// namespace without them mapped gets EINVAL.
func (g *gen) probeChown() bool {
	p := filepath.Join(g.root, ".coffer-chown-probe")
	g.check(os.WriteFile(p, nil, 0o600), "write", ".coffer-chown-probe")
	defer os.Remove(p)
	if err := unix.Lchown(p, OwnerUID, OwnerGID); err != nil {
		g.t.Logf("GenerateTree: cannot give files to %d:%d (%v): leaving owned/ out", OwnerUID, OwnerGID, err)
		return false
	}
	return true
}

// applyMeta sets ownership, then xattrs, then the mode, per entry: chown
// clears setuid/setgid, so the mode has to come after it.
func (g *gen) applyMeta() {
	for _, e := range g.entries {
		if e.extName {
			continue
		}
		p := g.path(e.rel)
		if e.owned {
			g.check(unix.Lchown(p, OwnerUID, OwnerGID), "lchown", e.rel)
		}
		for _, x := range e.xattrs {
			g.check(unix.Lsetxattr(p, x[0], []byte(x[1]), 0), "lsetxattr "+x[0], e.rel)
		}
		if !e.symlink {
			g.check(unix.Chmod(p, e.mode), "chmod", e.rel)
		}
	}
}

// applyTimes gives every inode distinct times, last of all, and directories
// deepest first, since setting anything inside a directory after its own
// times would not change them but creating would, and utimensat on a child
// never touches its parent.
func (g *gen) applyTimes(seed int64) {
	// A stream of its own, so the times do not depend on how much content
	// randomness was drawn.
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	clock := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
	var order []*genEntry
	for _, e := range g.entries {
		if e.extName {
			continue
		}
		clock = clock.Add(time.Duration(1+rng.IntN(86400)) * time.Second)
		e.mtime = clock.Add(time.Duration(1 + rng.IntN(999_999_999)))
		e.atime = e.mtime.Add(time.Duration(1+rng.IntN(86400))*time.Second + time.Duration(rng.IntN(1e9)))
		order = append(order, e)
	}
	depth := func(e *genEntry) int {
		if !e.dir {
			return 1 << 30 // before any directory
		}
		return strings.Count(e.rel, "/")
	}
	slices.SortStableFunc(order, func(a, b *genEntry) int { return depth(b) - depth(a) })
	for _, e := range order {
		ts := []unix.Timespec{unix.NsecToTimespec(e.atime.UnixNano()), unix.NsecToTimespec(e.mtime.UnixNano())}
		g.check(unix.UtimesNanoAt(unix.AT_FDCWD, g.path(e.rel), ts, unix.AT_SYMLINK_NOFOLLOW), "utimensat", e.rel)
	}
}
