package snapshot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readMeta describes the filesystem object at path as a Node named name,
// without following a final symlink and without reading file content: the
// archiver decides from this metadata whether content must be read at all,
// and opening a fifo or device here could block or have side effects.
//
// names resolves owner names; nil leaves User and Group empty. Extended
// attributes that cannot be listed or read because the filesystem lacks them
// or the caller may not see them are left out rather than failing the node,
// since a backup should not lose a file over a missing label.
func readMeta(path, name string, names *idNames) (*Node, error) {
	return readMetaSince(noDir, path, name, names, nil)
}

// readMetaSince is readMeta for an entry that prev, if not nil, describes
// in the parent snapshot. When the entry is the same inode of the same
// type with the same ctime, its extended attributes are prev's: setting or
// removing one changes the ctime, as the archiver already trusts for
// content. That spares the llistxattr of every unchanged entry, a third
// of the system calls of a backup with no change.
//
// dir, unless it is noDir, is an open descriptor of the directory that
// holds the entry, and name the entry's name in it: then the entry is
// looked up from there, not by resolving every element of path again
// (about a sixth of the time lstat took in a backup of 300,000 files).
func readMetaSince(dir int, path, name string, names *idNames, prev *Node) (*Node, error) {
	at, rel := dir, name
	if dir == noDir {
		at, rel = unix.AT_FDCWD, path
	}
	var st unix.Stat_t
	if err := unix.Fstatat(at, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	typ, ok := metaNodeType(st.Mode)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported file type %#o", path, st.Mode&unix.S_IFMT)
	}
	n := &Node{
		Name:       name,
		Type:       typ,
		Mode:       st.Mode & 0o7777,
		UID:        st.Uid,
		GID:        st.Gid,
		User:       names.user(st.Uid),
		Group:      names.group(st.Gid),
		ModTime:    metaTime(st.Mtim),
		ChangeTime: metaTime(st.Ctim),
		Inode:      st.Ino,
		Device:     uint64(st.Dev),
		Links:      uint64(st.Nlink),
	}
	switch typ {
	case TypeFile:
		n.Size = st.Size
	case TypeSymlink:
		target, err := readlinkAt(at, rel)
		if err != nil {
			return nil, &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		n.LinkTarget = target
		// Node documents Size as the target's length for symlinks; taking it
		// from the target read rather than st_size keeps the two consistent
		// even if the link was replaced between the calls.
		n.Size = int64(len(target))
	case TypeCharDev, TypeBlkDev:
		n.Rdev = uint64(st.Rdev)
	}
	if prev != nil && prev.Type == n.Type && prev.Inode == n.Inode && prev.ChangeTime.Equal(n.ChangeTime) && prev.Error == "" {
		n.Xattrs = prev.Xattrs
		return n, nil
	}
	xattrs, err := metaReadXattrs(path)
	if err != nil {
		return nil, err
	}
	n.Xattrs = xattrs
	return n, nil
}

// readlinkAt is os.Readlink relative to a directory descriptor.
func readlinkAt(dir int, name string) (string, error) {
	for size := 256; ; {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dir, name, b)
		switch {
		case err == unix.EINTR:
			continue // as os.Readlink does
		case err != nil:
			return "", err
		case n < size:
			return string(b[:n]), nil
		}
		size *= 2
	}
}

func metaNodeType(mode uint32) (NodeType, bool) {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return TypeFile, true
	case unix.S_IFDIR:
		return TypeDir, true
	case unix.S_IFLNK:
		return TypeSymlink, true
	case unix.S_IFIFO:
		return TypeFifo, true
	case unix.S_IFSOCK:
		return TypeSocket, true
	case unix.S_IFCHR:
		return TypeCharDev, true
	case unix.S_IFBLK:
		return TypeBlkDev, true
	}
	return "", false
}

func metaTime(ts unix.Timespec) time.Time {
	sec, nsec := ts.Unix()
	return time.Unix(sec, nsec).UTC()
}

// metaXattrIgnorable reports whether an xattr call failed because the
// filesystem has no extended attributes or this process may not touch the
// attribute, as opposed to an I/O error that should surface.
func metaXattrIgnorable(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// metaXattrRetries bounds the list/get loops: the size of an attribute can
// change between asking for it and reading it, and a file whose attributes
// keep changing must not spin us forever.
const metaXattrRetries = 8

// metaReadXattrs returns path's extended attributes sorted by name, so that
// an unchanged file yields an identical Node and thus an identical tree blob.
func metaReadXattrs(path string) ([]Xattr, error) {
	names, err := metaListXattrs(path)
	if err != nil {
		if metaXattrIgnorable(err) {
			return nil, nil
		}
		return nil, &os.PathError{Op: "llistxattr", Path: path, Err: err}
	}
	var out []Xattr
	for _, name := range names {
		val, err := metaGetXattr(path, name)
		if err != nil {
			// ENODATA: removed since it was listed.
			if metaXattrIgnorable(err) || errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, fmt.Errorf("lgetxattr %s %s: %w", path, name, err)
		}
		out = append(out, Xattr{Name: name, Value: val})
	}
	slices.SortFunc(out, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// metaListXattrs tries a small buffer first because almost every file has no
// or few attributes; that saves the size-probing syscall per file.
func metaListXattrs(path string) ([]string, error) {
	buf := make([]byte, 1024)
	for range metaXattrRetries {
		sz, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			if sz, err = unix.Llistxattr(path, nil); err != nil {
				return nil, err
			}
			buf = make([]byte, sz+256)
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for name := range strings.SplitSeq(string(buf[:sz]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
	return nil, unix.ERANGE
}

func metaGetXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for range metaXattrRetries {
		sz, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			if sz, err = unix.Lgetxattr(path, name, nil); err != nil {
				return nil, err
			}
			buf = make([]byte, sz+256)
			continue
		}
		if err != nil {
			return nil, err
		}
		return slices.Clip(buf[:sz]), nil
	}
	return nil, unix.ERANGE
}

// dataRegions returns the ranges of the regular file f, of logical size size,
// that hold data, in file order, so the archiver stores holes as Hole extents
// instead of reading and chunking runs of zeros. A filesystem that cannot
// report holes, or a file without holes, yields the single region {0, size};
// an all-hole file or size 0 yields none. Regions are clipped to size, so a
// file that grew since it was stat'ed is read only up to the recorded size.
//
// Asking the kernel moves the file offset; dataRegions puts it back so the
// caller may read f sequentially afterwards. Callers skip it for files
// that are dense.
func dataRegions(f *os.File, size int64) ([]region, error) {
	if size <= 0 {
		return nil, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var regions []region
	var serr error
	// Control rather than f.Fd: Fd would switch the descriptor to blocking
	// mode for good and does not stop a concurrent Close from recycling it.
	cerr := rc.Control(func(fd uintptr) {
		cur, err := unix.Seek(int(fd), 0, io.SeekCurrent)
		if err != nil {
			serr = err
			return
		}
		regions, serr = metaSeekRegions(int(fd), size)
		if _, err := unix.Seek(int(fd), cur, io.SeekStart); err != nil && serr == nil {
			serr = err
		}
	})
	if cerr != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), cerr)
	}
	if serr != nil {
		return nil, &os.PathError{Op: "lseek", Path: f.Name(), Err: serr}
	}
	return regions, nil
}

// dense reports whether a file's allocated blocks cover its size, so that
// it has no hole to ask the kernel about: four lseek calls per file were
// 3% of the CPU of a backup of many small files. (Space allocated past
// the end, by fallocate or XFS's speculative preallocation, can hide a
// small hole this way; its zeros are then stored as data, which restores
// the same bytes, only not sparse.)
func dense(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Blocks*512 >= fi.Size()
}

func metaSeekRegions(fd int, size int64) ([]region, error) {
	whole := []region{{0, size}}
	var regions []region
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			// No data at or after off: the rest of the file is a hole (or
			// the file shrank below off since it was stat'ed).
			return regions, nil
		case metaSeekUnsupported(err):
			return whole, nil
		case err != nil:
			return nil, err
		}
		if data >= size {
			return regions, nil
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		switch {
		case errors.Is(err, unix.ENXIO):
			// Truncated below data between the two calls; nothing more to read.
			return regions, nil
		case metaSeekUnsupported(err):
			return whole, nil
		case err != nil:
			return nil, err
		}
		if hole <= data {
			// The file is changing under us and the answers contradict each
			// other. Treating it all as data is always correct, merely
			// less compact, and guarantees the loop ends.
			return whole, nil
		}
		hole = min(hole, size)
		regions = append(regions, region{data, hole - data})
		off = hole
	}
	return regions, nil
}

// metaSeekUnsupported reports whether lseek rejected SEEK_DATA/SEEK_HOLE as
// such: old kernels and some FUSE or network filesystems answer EINVAL or
// ENOTSUP instead of falling back to "all data" themselves.
func metaSeekUnsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

// createSpecial makes the fifo, socket or device node that n describes at
// path. The node is created mode 0600 so nobody else can open it before
// applyMeta sets the recorded mode, which also makes the process umask
// irrelevant. Device nodes need CAP_MKNOD; without it the error wraps
// errNeedRoot so the restorer can warn and skip.
func createSpecial(path string, n *Node) error {
	var mode uint32
	var dev uint64
	switch n.Type {
	case TypeFifo:
		mode = unix.S_IFIFO
	case TypeSocket:
		// A socket node restored this way is not bound to anything; it only
		// keeps the name, which is what programs that expect it to exist
		// (and then re-create it) need.
		mode = unix.S_IFSOCK
	case TypeCharDev, TypeBlkDev:
		mode = unix.S_IFCHR
		if n.Type == TypeBlkDev {
			mode = unix.S_IFBLK
		}
		// mknod takes the kernel's 32-bit device encoding, which is what
		// Linux stat reports; a larger value cannot be a Linux device number
		// and would be truncated silently.
		if n.Rdev > math.MaxUint32 {
			return fmt.Errorf("mknod %s: device number %#x out of range", path, n.Rdev)
		}
		dev = n.Rdev
	default:
		return fmt.Errorf("mknod %s: %q is not a special file type", path, n.Type)
	}
	if err := unix.Mknod(path, mode|0o600, int(dev)); err != nil {
		if errors.Is(err, unix.EPERM) && (n.Type == TypeCharDev || n.Type == TypeBlkDev) {
			return fmt.Errorf("mknod %s: %w: %w", path, errNeedRoot, err)
		}
		return &os.PathError{Op: "mknod", Path: path, Err: err}
	}
	return nil
}

// applyMeta gives the object at path the ownership, extended attributes, mode
// and times recorded in n. Call it once the object's content is complete: for
// a regular file after its data is written, for a directory after all its
// entries are restored, because writing data or adding entries would bump the
// times again. asRoot says whether to restore ownership; only root may give a
// file away.
//
// The steps run in an order in which no step undoes an earlier one:
//
//  1. lchown first, because the kernel clears setuid/setgid bits and
//     security.capability when the owner changes.
//  2. Extended attributes next, while the mode the restorer created the
//     object with still allows writing them: user.* attributes need write
//     permission, which the recorded mode (say 0444) may not grant a non-root
//     restorer.
//  3. chmod then sets the exact recorded bits, setuid/setgid/sticky included.
//     Symlinks are skipped: Linux has no symlink modes, and chmod would follow
//     the link.
//  4. Times last, because every step above changes the inode; utimensat with
//     AT_SYMLINK_NOFOLLOW sets them on a symlink itself. ctime cannot be set.
//
// Attributes that cannot be set here do not stop the later steps: they are
// returned joined, each wrapping errXattrUnsupported, after the mode and times
// are in place, so the caller can treat them as warnings. Any other error is
// returned at once. Attributes already on path that n does not list are left
// alone, since removing labels the system added (security.selinux, inherited
// ACLs) would do more harm than keeping them.
func applyMeta(path string, n *Node, asRoot bool) error {
	return metaObject{path: path, fd: -1}.apply(n, asRoot)
}

// applyMetaFD is applyMeta through fd, an open descriptor of the regular
// file at path: no lookup of the path for each of the four steps. path
// only names the file in errors.
func applyMetaFD(fd int, path string, n *Node, asRoot bool) error {
	return metaObject{path: path, fd: fd}.apply(n, asRoot)
}

// metaObject is what applyMeta sets the metadata of: the object at path,
// or with fd >= 0 the file open as fd.
type metaObject struct {
	path string
	fd   int
}

// apply runs applyMeta's steps, in its order.
func (o metaObject) apply(n *Node, asRoot bool) error {
	if asRoot {
		if err := o.chown(int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	var warnings []error
	for _, x := range n.Xattrs {
		if op, err := o.setxattr(x.Name, x.Value); err != nil {
			if metaXattrIgnorable(err) {
				warnings = append(warnings, fmt.Errorf("%s %s %s: %w: %w", op, o.path, x.Name, errXattrUnsupported, err))
				continue
			}
			return fmt.Errorf("%s %s %s: %w", op, o.path, x.Name, err)
		}
	}
	if n.Type != TypeSymlink {
		if err := o.chmod(n.Mode & 0o7777); err != nil {
			return err
		}
	}
	// The access time is not recorded (see Node); the mtime stands in.
	atime, err := metaTimespec(n.ModTime)
	if err != nil {
		return fmt.Errorf("utimensat %s: atime %v: %w", o.path, n.ModTime, err)
	}
	mtime, err := metaTimespec(n.ModTime)
	if err != nil {
		return fmt.Errorf("utimensat %s: mtime %v: %w", o.path, n.ModTime, err)
	}
	if err := o.setTimes(&[2]unix.Timespec{atime, mtime}); err != nil {
		return err
	}
	return errors.Join(warnings...)
}

// The steps of apply, each through the descriptor where there is one,
// else on the path itself, not following a final symlink.

func (o metaObject) chown(uid, gid int) error {
	if o.fd >= 0 {
		return o.pathError("fchown", unix.Fchown(o.fd, uid, gid))
	}
	return o.pathError("lchown", unix.Lchown(o.path, uid, gid))
}

// setxattr also returns the name of the call it made, for the caller's
// error, which tells a warning from a failure.
func (o metaObject) setxattr(name string, value []byte) (op string, err error) {
	if o.fd >= 0 {
		return "fsetxattr", unix.Fsetxattr(o.fd, name, value, 0)
	}
	return "lsetxattr", unix.Lsetxattr(o.path, name, value, 0)
}

func (o metaObject) chmod(mode uint32) error {
	if o.fd >= 0 {
		return o.pathError("fchmod", unix.Fchmod(o.fd, mode))
	}
	return o.pathError("chmod", unix.Chmod(o.path, mode))
}

func (o metaObject) setTimes(times *[2]unix.Timespec) error {
	if o.fd >= 0 {
		return o.pathError("utimensat", futimens(o.fd, times))
	}
	return o.pathError("utimensat", unix.UtimesNanoAt(unix.AT_FDCWD, o.path, times[:], unix.AT_SYMLINK_NOFOLLOW))
}

// pathError names o's path and op in err, or returns nil.
func (o metaObject) pathError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: o.path, Err: err}
}

// futimens sets the times of the file open as fd: utimensat with a null
// path, which x/sys/unix's UtimesNanoAt cannot pass (an empty path needs
// AT_EMPTY_PATH, which older kernels refuse here).
func futimens(fd int, times *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(times)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// metaTimespec converts t for utimensat. A zero time (for instance an atime
// the snapshot did not record) leaves that timestamp as it is instead of
// setting it to year 1.
func metaTimespec(t time.Time) (unix.Timespec, error) {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}, nil
	}
	return unix.TimeToTimespec(t)
}
