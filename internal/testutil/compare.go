//go:build linux

package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sparseSlack is how many bytes of blocks a restored sparse file may use
// beyond the original: filesystems allocate in blocks or larger units, and a
// restorer may write a partial block of zeros at a region's edge.
const sparseSlack = 64 << 10

// treeEntry is what CompareTrees knows about one path.
type treeEntry struct {
	st     unix.Stat_t
	target string            // symlinks
	xattrs map[string][]byte // user.* only
	sparse bool              // regular file with a hole before EOF
	links  string            // the in-tree paths sharing this inode, joined
}

// CompareTrees reports, with t.Errorf and the path relative to the roots,
// every difference between the trees under want and got that a backup must
// not lose: the set of names, type, permission bits including
// setuid/setgid/sticky, uid and gid, mtime to the nanosecond (symlinks and
// directories too), size, content, symlink targets, user.* xattrs, device
// numbers, which paths are hard links of each other, and for files sparse in
// want, that got stores them no less sparsely (within 64 KiB of want's
// blocks).
//
// The roots themselves are not compared, only what is inside them: a
// restore target is usually made by the test, not restored. atime and ctime
// are not compared: reading a tree changes the first, and nothing can set
// the second.
func CompareTrees(t testing.TB, want, got string) {
	t.Helper()
	CompareTreesWith(t, want, got, CompareOptions{})
}

// CompareOptions narrows CompareTrees for copies made through a medium
// that cannot carry everything, such as a tar archive.
type CompareOptions struct {
	// Ignore lists paths (relative to the roots, slash-separated) that
	// are compared on neither side, such as a socket no archive holds.
	Ignore []string
	// NotSparse accepts files sparse in want that got stores whole.
	NotSparse bool
}

// CompareTreesWith is CompareTrees with opt's exceptions.
func CompareTreesWith(t testing.TB, want, got string, opt CompareOptions) {
	t.Helper()
	w := scanTree(t, want)
	g := scanTree(t, got)
	for _, p := range opt.Ignore {
		delete(w, p)
		delete(g, p)
	}
	var paths []string
	for p := range w {
		paths = append(paths, p)
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		we, wok := w[p]
		ge, gok := g[p]
		switch {
		case !gok:
			t.Errorf("%s: missing in got (%s)", p, typeName(we.st.Mode))
		case !wok:
			t.Errorf("%s: unexpected in got (%s)", p, typeName(ge.st.Mode))
		default:
			compareEntry(t, p, filepath.Join(want, p), filepath.Join(got, p), we, ge, opt)
		}
	}
}

func compareEntry(t testing.TB, rel, wantPath, gotPath string, w, g *treeEntry, opt CompareOptions) {
	t.Helper()
	wt, gt := w.st.Mode&unix.S_IFMT, g.st.Mode&unix.S_IFMT
	if wt != gt {
		t.Errorf("%s: type %s, want %s", rel, typeName(g.st.Mode), typeName(w.st.Mode))
		return
	}
	if wp, gp := w.st.Mode&0o7777, g.st.Mode&0o7777; wp != gp {
		t.Errorf("%s: mode %#o, want %#o", rel, gp, wp)
	}
	if w.st.Uid != g.st.Uid || w.st.Gid != g.st.Gid {
		t.Errorf("%s: owner uid:gid %d:%d, want %d:%d", rel, g.st.Uid, g.st.Gid, w.st.Uid, w.st.Gid)
	}
	if w.st.Mtim != g.st.Mtim {
		t.Errorf("%s: mtime %s, want %s", rel, fmtTime(g.st.Mtim), fmtTime(w.st.Mtim))
	}
	if !maps.EqualFunc(w.xattrs, g.xattrs, bytes.Equal) {
		t.Errorf("%s: xattrs %s, want %s", rel, fmtXattrs(g.xattrs), fmtXattrs(w.xattrs))
	}
	if wt != unix.S_IFDIR && w.links != g.links {
		t.Errorf("%s: hard links [%s], want [%s]", rel, g.links, w.links)
	}
	switch wt {
	case unix.S_IFLNK:
		if w.target != g.target {
			t.Errorf("%s: symlink target %q, want %q", rel, g.target, w.target)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if w.st.Rdev != g.st.Rdev {
			t.Errorf("%s: rdev %d,%d, want %d,%d", rel,
				unix.Major(g.st.Rdev), unix.Minor(g.st.Rdev), unix.Major(w.st.Rdev), unix.Minor(w.st.Rdev))
		}
	case unix.S_IFREG:
		if w.st.Size != g.st.Size {
			t.Errorf("%s: size %d, want %d", rel, g.st.Size, w.st.Size)
		} else if off, err := firstDifference(wantPath, gotPath); err != nil {
			t.Errorf("%s: comparing content: %v", rel, err)
		} else if off >= 0 {
			t.Errorf("%s: content differs at byte %d", rel, off)
		}
		if w.sparse && !opt.NotSparse && g.st.Blocks*512 > w.st.Blocks*512+sparseSlack {
			t.Errorf("%s: not sparse: %d bytes allocated, want at most %d (+%d slack)", rel, g.st.Blocks*512, w.st.Blocks*512, sparseSlack)
		}
	}
}

// scanTree gathers every entry below root, keyed by slash-separated relative
// path. Problems reading it are reported against the path and leave the
// entry out, which then shows as missing or unexpected as well.
func scanTree(t testing.TB, root string) map[string]*treeEntry {
	t.Helper()
	entries := make(map[string]*treeEntry)
	inodes := make(map[[2]uint64][]string)
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			t.Errorf("%s: reading %s: %v", rel, root, err)
			return nil
		}
		if rel == "." {
			return nil
		}
		e, err := readEntry(p)
		if err != nil {
			t.Errorf("%s: reading %s: %v", rel, root, err)
			return nil
		}
		entries[rel] = e
		if e.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			key := [2]uint64{uint64(e.st.Dev), e.st.Ino}
			inodes[key] = append(inodes[key], rel)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", root, err)
	}
	// Hard links are compared as the set of in-tree names of each inode,
	// not as link counts, which depend on links outside the tree.
	for _, group := range inodes {
		slices.Sort(group)
		joined := strings.Join(group, ", ")
		for _, rel := range group {
			entries[rel].links = joined
		}
	}
	return entries
}

func readEntry(p string) (*treeEntry, error) {
	e := &treeEntry{}
	if err := unix.Lstat(p, &e.st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	switch e.st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		e.target = target
	case unix.S_IFREG:
		sparse, err := hasHole(p, e.st.Size)
		if err != nil {
			return nil, err
		}
		e.sparse = sparse
	}
	x, err := userXattrs(p)
	if err != nil {
		return nil, err
	}
	e.xattrs = x
	return e, nil
}

// hasHole reports whether the file has a hole before its end; on a
// filesystem that cannot tell, it has none.
func hasHole(p string, size int64) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	if err != nil {
		if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return false, nil
		}
		return false, &os.PathError{Op: "lseek", Path: p, Err: err}
	}
	return off < size, nil
}

func userXattrs(p string) (map[string][]byte, error) {
	buf := make([]byte, 64<<10) // the Linux limit for a list and a value
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		return nil, fmt.Errorf("llistxattr %s: %w", p, err)
	}
	var out map[string][]byte
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		val := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			return nil, fmt.Errorf("lgetxattr %s %s: %w", p, name, err)
		}
		if out == nil {
			out = make(map[string][]byte)
		}
		out[name] = val[:m]
	}
	return out, nil
}

// firstDifference returns the offset of the first byte where the two files
// differ, or -1 if they are equal.
func firstDifference(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return 0, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return 0, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 256<<10), make([]byte, 256<<10)
	var off int64
	for {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if erra != nil && erra != io.EOF && erra != io.ErrUnexpectedEOF {
			return 0, erra
		}
		if errb != nil && errb != io.EOF && errb != io.ErrUnexpectedEOF {
			return 0, errb
		}
		n := min(na, nb)
		for i := range n {
			if ba[i] != bb[i] {
				return off + int64(i), nil
			}
		}
		if na != nb {
			return off + int64(n), nil
		}
		if na < len(ba) {
			return -1, nil
		}
		off += int64(na)
	}
}

func fmtXattrs(x map[string][]byte) string {
	names := make([]string, 0, len(x))
	for k := range x {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, x[k])
	}
	b.WriteByte('}')
	return b.String()
}

func fmtTime(ts unix.Timespec) string {
	return time.Unix(ts.Unix()).UTC().Format(time.RFC3339Nano)
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	}
	return fmt.Sprintf("type %#o", mode&unix.S_IFMT)
}
