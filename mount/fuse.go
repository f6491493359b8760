//go:build linux || darwin || freebsd

package mount

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"log"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

// cacheFor is how long the kernel may keep names, attributes and failed
// lookups: the snapshots listed at mount time never change.
const cacheFor = time.Hour

// maxRead is the largest read request the kernel sends (it caps it at
// 1 MiB): fewer, larger requests per chunk.
const maxRead = 1 << 20

// Mount serves the snapshots of r on dir until ctx is done (then it
// unmounts) or dir is unmounted (umount, fusermount -u), and returns nil
// in both cases. The snapshots are those listed when it starts.
func Mount(ctx context.Context, r *repo.Repository, dir string, opt Options) error {
	if err := CheckMountpoint(dir); err != nil {
		return err
	}
	if err := checkDevice(); err != nil {
		return err
	}
	warn := opt.Warn
	if warn == nil {
		warn = func(error) {}
	}
	// A damaged snapshot hides no other: the rest are mounted.
	sns, err := snapshot.List(ctx, r)
	if err != nil {
		if ctx.Err() != nil || len(sns) == 0 {
			return err
		}
		warn(err)
	}
	cacheBytes := opt.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	var spill *spillCache
	if opt.SpillBytes >= 0 {
		spillBytes := opt.SpillBytes
		if spillBytes == 0 {
			spillBytes = DefaultSpillBytes
		}
		if spill, err = newSpillCache(opt.SpillDir, spillBytes); err != nil {
			// Reads work without it, with more requests to the store.
			warn(err)
			spill = nil
		}
	}
	// Reads and tree loads are not tied to ctx: after Ctrl-C, files that
	// are open keep reading until the unmount has gone through.
	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	sys := &fsys{
		ctx:     base,
		r:       r,
		rd:      newReader(base, r, cacheBytes, spill),
		trees:   snapshot.NewTreePrefetcher(base, r),
		warn:    warn,
		pushers: make(chan struct{}, 2),
		uid:     uint32(os.Getuid()),
		gid:     uint32(os.Getgid()),
	}
	defer func() {
		stop()
		sys.trees.Close()
		sys.rd.wait()
		if spill != nil {
			if err := spill.close(); err != nil {
				warn(err)
			}
		}
	}()
	l := newLayout(sns)
	root := &staticDir{sys: sys, mtime: l.newest()}
	root.build = func(ctx context.Context) { sys.populate(ctx, root, l) }
	timeout := cacheFor
	server, err := fs.Mount(dir, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:      "coffer",
			Name:        "coffer",
			Options:     []string{"ro", "default_permissions"},
			DirectMount: true, // as root, no need for fusermount
			// Replies are bytes in memory, never a file to splice from;
			// go-fuse would otherwise stage each reply's header in a
			// pipe first, a wasted system call per READ, and log a
			// failure for every 1 MiB reply (more than a pipe holds).
			DisableSplice: true,
			MaxWrite:      maxRead,
			MaxReadAhead:  maxRead,
			Debug:         opt.DebugLog != nil,
			Logger:        debugLogger(opt.DebugLog),
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		NullPermissions: true, // a mode 000 is what was backed up
		UID:             sys.uid,
		GID:             sys.gid,
	})
	if err != nil {
		return fmt.Errorf("mounting on %s: %w%s", dir, err, mountHint(err))
	}
	sys.noOpen.Store(tryNoOpen && server.KernelSettings().Flags64()&fuse.CAP_NO_OPEN_SUPPORT != 0)
	if err := raiseReadAhead(dir, maxRead); err != nil && opt.DebugLog != nil {
		warn(fmt.Errorf("read-ahead stays at the kernel's default: %w", err))
	}
	if opt.Ready != nil {
		opt.Ready(len(sns))
	}
	served := make(chan struct{})
	var unmounter sync.WaitGroup
	unmounter.Go(func() {
		select {
		case <-ctx.Done():
			if err := server.Unmount(); err != nil {
				// Busy: files are open in it. Detach it now, so that no
				// new file is opened; it ends when the last is closed.
				warn(fmt.Errorf("%s is busy (%v): detaching it; coffer exits once the files open in it are closed", dir, err))
				if err := lazyUnmount(dir); err != nil {
					warn(fmt.Errorf("unmounting %s: %w: unmount it with fusermount -u %s", dir, err, dir))
				}
			}
		case <-served:
		}
	})
	server.Wait()
	close(served)
	unmounter.Wait()
	return nil
}

// debugLogger returns a logger to w for go-fuse's debug lines, nil (its
// default) for nil.
func debugLogger(w io.Writer) *log.Logger {
	if w == nil {
		return nil
	}
	return log.New(w, "", log.Lmicroseconds)
}

// fsys is what every node of one mount shares.
type fsys struct {
	ctx      context.Context
	r        *repo.Repository
	rd       *reader
	trees    *snapshot.TreePrefetcher
	warn     func(error)
	uid, gid uint32
	lastRead atomic.Int64  // when a file was last read, in Unix nanoseconds
	noOpen   atomic.Bool   // files answer OPEN and FLUSH with ENOSYS
	pushers  chan struct{} // tokens for filling the kernel's cache (pushAfter)
}

// fail reports err on the node at path p and returns EIO: a reader sees
// only the code, the user reads why in coffer's output.
func (s *fsys) fail(p string, err error) syscall.Errno {
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	s.warn(fmt.Errorf("%s: %w", p, err))
	return syscall.EIO
}

// populate builds the fixed top of the file system: snapshots/, hosts/,
// tags/ and latest.
func (s *fsys) populate(ctx context.Context, root *staticDir, l *layout) {
	s.addGroup(ctx, &root.Inode, "snapshots", &l.all, false)
	for _, views := range []struct {
		name   string
		groups map[string]*group
	}{{"hosts", l.hosts}, {"tags", l.tags}} {
		dir := s.addStatic(ctx, &root.Inode, views.name, root.mtime)
		for key, g := range views.groups {
			s.addGroup(ctx, &dir.Inode, key, g, true)
		}
	}
	if latest := l.all.latest(); latest != "" {
		s.addLink(ctx, &root.Inode, "latest", "snapshots/"+latest, l.newest())
	}
}

// addGroup adds a directory of snapshot directories, with a latest
// symlink if withLatest (snapshots/ has none: the top's latest is beside
// it).
func (s *fsys) addGroup(ctx context.Context, parent *fs.Inode, name string, g *group, withLatest bool) {
	var mtime time.Time
	if n := len(g.entries); n > 0 {
		mtime = g.entries[n-1].sn.Time
	}
	dir := s.addStatic(ctx, parent, name, mtime)
	for _, e := range g.entries {
		d := &dirNode{sys: s, snap: e.sn, top: true}
		dir.AddChild(e.name, dir.NewPersistentInode(ctx, d, fs.StableAttr{Mode: syscall.S_IFDIR}), false)
	}
	if withLatest && g.latest() != "" {
		s.addLink(ctx, &dir.Inode, "latest", g.latest(), mtime)
	}
}

func (s *fsys) addStatic(ctx context.Context, parent *fs.Inode, name string, mtime time.Time) *staticDir {
	d := &staticDir{sys: s, mtime: mtime}
	parent.AddChild(name, parent.NewPersistentInode(ctx, d, fs.StableAttr{Mode: syscall.S_IFDIR}), false)
	return d
}

func (s *fsys) addLink(ctx context.Context, parent *fs.Inode, name, target string, mtime time.Time) {
	l := &fs.MemSymlink{Data: []byte(target)}
	l.Attr.Mode = syscall.S_IFLNK | 0o777
	l.Attr.Size = uint64(len(target))
	l.Attr.Nlink = 1
	l.Attr.Uid, l.Attr.Gid = s.uid, s.gid
	l.Attr.SetTimes(&mtime, &mtime, &mtime)
	parent.AddChild(name, parent.NewPersistentInode(ctx, l, fs.StableAttr{Mode: syscall.S_IFLNK}), false)
}

// staticDir is a directory of the fixed top: the root, snapshots/,
// hosts/, tags/ and their groups. go-fuse serves its children.
type staticDir struct {
	fs.Inode
	sys   *fsys
	mtime time.Time
	build func(context.Context) // the root's children, added once mounted
}

var _ = (fs.NodeOnAdder)((*staticDir)(nil))
var _ = (fs.NodeGetattrer)((*staticDir)(nil))

// OnAdd builds the top of the file system once the root is mounted.
func (d *staticDir) OnAdd(ctx context.Context) {
	if d.build != nil {
		d.build(ctx)
	}
}

// Getattr describes a read-only directory owned by the mounting user.
func (d *staticDir) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 1
	out.Uid, out.Gid = d.sys.uid, d.sys.gid
	out.SetTimes(&d.mtime, &d.mtime, &d.mtime)
	return 0
}

// meta is what every node below a snapshot directory has: its node,
// for attributes and extended attributes.
type meta struct {
	sys *fsys
	n   *snapshot.Node
}

// Getattr describes the node as the snapshot recorded it.
func (m *meta) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, m.n)
	return 0
}

// Listxattr lists the recorded extended attributes.
func (m *meta) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	for _, x := range m.n.Xattrs {
		b = append(append(b, x.Name...), 0)
	}
	if len(dest) == 0 {
		return uint32(len(b)), 0
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// Getxattr returns a recorded extended attribute.
func (m *meta) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range m.n.Xattrs {
		if x.Name != attr {
			continue
		}
		if len(dest) == 0 {
			return uint32(len(x.Value)), 0
		}
		if len(dest) < len(x.Value) {
			return uint32(len(x.Value)), syscall.ERANGE
		}
		return uint32(copy(dest, x.Value)), 0
	}
	return 0, syscall.Errno(fuse.ENOATTR)
}

// fillAttr sets what a node records: type and permissions, owner, size,
// times (atime is not recorded: it shows the mtime, as restore sets it),
// links and the blocks actually stored, so a sparse file shows as one.
func fillAttr(a *fuse.Attr, n *snapshot.Node) {
	a.Mode = typeBits(n.Type) | n.Mode&0o7777
	a.Uid, a.Gid = n.UID, n.GID
	a.Nlink = uint32(max(n.Links, 1))
	if n.Type == snapshot.TypeDir {
		a.Nlink = 1 // unknown: find(1) then does not count subdirectories by it
	}
	switch n.Type {
	case snapshot.TypeFile:
		a.Size = uint64(fileSize(n))
		var stored int64
		for _, e := range n.Content {
			if !e.Hole {
				stored += e.Size
			}
		}
		a.Blocks = uint64((stored + 511) / 512)
	case snapshot.TypeSymlink:
		a.Size = uint64(len(n.LinkTarget))
	case snapshot.TypeCharDev, snapshot.TypeBlkDev:
		a.Rdev = uint32(n.Rdev)
	}
	a.Blksize = 128 << 10
	ctime := n.ChangeTime
	if ctime.IsZero() {
		ctime = n.ModTime
	}
	a.SetTimes(&n.ModTime, &n.ModTime, &ctime)
}

func typeBits(t snapshot.NodeType) uint32 {
	switch t {
	case snapshot.TypeDir:
		return syscall.S_IFDIR
	case snapshot.TypeSymlink:
		return syscall.S_IFLNK
	case snapshot.TypeFifo:
		return syscall.S_IFIFO
	case snapshot.TypeSocket:
		return syscall.S_IFSOCK
	case snapshot.TypeCharDev:
		return syscall.S_IFCHR
	case snapshot.TypeBlkDev:
		return syscall.S_IFBLK
	}
	return syscall.S_IFREG
}

// inode returns the inode number of a node: hard links of one snapshot
// share one (from the snapshot and the recorded device and inode, so
// that tar and cp -a see them as links); 0, any free number, for the
// rest. Numbers stay below the automatic ones go-fuse hands out (2^63 on).
func inode(sn *snapshot.Snapshot, n *snapshot.Node) uint64 {
	if n.Type != snapshot.TypeFile || n.Links < 2 || n.Inode == 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write(sn.ID[:])
	h.Write(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, n.Device), n.Inode))
	return max(h.Sum64()&^(1<<63), 2) // 1 is the root
}

// dirNode is a directory of a snapshot, or a snapshot's own directory
// (top: its node is the snapshot's base, resolved on first use).
type dirNode struct {
	fs.Inode
	sys  *fsys
	snap *snapshot.Snapshot
	top  bool
	node *snapshot.Node // set at creation, or (top) under mu once resolved

	mu   sync.Mutex
	kids []*snapshot.Node // sorted by name, once loaded
}

var _ = (fs.NodeLookuper)((*dirNode)(nil))
var _ = (fs.NodeOpendirHandler)((*dirNode)(nil))
var _ = (fs.NodeGetattrer)((*dirNode)(nil))
var _ = (fs.NodeGetxattrer)((*dirNode)(nil))
var _ = (fs.NodeListxattrer)((*dirNode)(nil))
var _ = (fs.NodeOnForgetter)((*dirNode)(nil))

func (d *dirNode) path() string { return d.Path(nil) }

// children loads the directory's entries (a snapshot's directory first
// resolves its base), and queues its subdirectories' trees for loading,
// as a walk of the tree would need them next.
func (d *dirNode) children() ([]*snapshot.Node, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kids == nil {
		// An error is not kept: the store may answer the next time.
		kids, err := d.load()
		if err != nil {
			return nil, d.sys.fail(d.path(), err)
		}
		d.kids = kids
		d.sys.trees.Queue(subtrees(d.kids))
	}
	return d.kids, 0
}

func (d *dirNode) load() ([]*snapshot.Node, error) {
	if d.top && d.node == nil {
		n, _, err := snapshot.Resolve(d.sys.ctx, d.sys.r, d.snap, "")
		if err != nil {
			return nil, err
		}
		if n.Type != snapshot.TypeDir {
			return []*snapshot.Node{n}, nil
		}
		d.node = n
	}
	kids, err := d.sys.trees.Take(d.sys.ctx, d.node.Subtree)
	if kids == nil && err == nil {
		kids = []*snapshot.Node{}
	}
	return kids, err
}

func subtrees(nodes []*snapshot.Node) []repo.ID {
	var ids []repo.ID
	for _, n := range nodes {
		if n.Type == snapshot.TypeDir {
			ids = append(ids, n.Subtree)
		}
	}
	return ids
}

// OnForget drops the subdirectories' trees loaded ahead that the kernel
// will no longer ask for through this directory.
func (d *dirNode) OnForget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sys.trees.Forget(subtrees(d.kids))
}

// Getattr describes the directory; a snapshot's own directory is the
// snapshot: its time, owned by the mounting user.
func (d *dirNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if !d.top {
		fillAttr(&out.Attr, d.node)
		return 0
	}
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 1
	out.Uid, out.Gid = d.sys.uid, d.sys.gid
	out.SetTimes(&d.snap.Time, &d.snap.Time, &d.snap.Time)
	return 0
}

func (d *dirNode) meta() *meta { return &meta{sys: d.sys, n: d.node} }

// Listxattr lists the directory's recorded extended attributes (a
// snapshot's own directory has none).
func (d *dirNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if d.top {
		return 0, 0
	}
	return d.meta().Listxattr(ctx, dest)
}

// Getxattr returns one of the directory's recorded extended attributes.
func (d *dirNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if d.top {
		return 0, syscall.Errno(fuse.ENOATTR)
	}
	return d.meta().Getxattr(ctx, attr, dest)
}

// Lookup finds an entry by name.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	kids, errno := d.children()
	if errno != 0 {
		return nil, errno
	}
	i := sort.Search(len(kids), func(i int) bool { return kids[i].Name >= name })
	if i == len(kids) || kids[i].Name != name {
		return nil, syscall.ENOENT
	}
	n := kids[i]
	fillAttr(&out.Attr, n)
	// READDIRPLUS looks every entry up again: a new inode for a name the
	// kernel knows would make it drop that one, and the file contents it
	// cached with it.
	if ch := d.GetChild(name); ch != nil {
		return ch, 0
	}
	return d.NewInode(ctx, d.sys.newNode(d, i), fs.StableAttr{Mode: typeBits(n.Type), Ino: inode(d.snap, n)}), 0
}

// after yields the contents of the files after entry i, in name order.
func (d *dirNode) after(i int) iter.Seq[[]snapshot.Extent] {
	return func(yield func([]snapshot.Extent) bool) {
		for _, n := range d.kids[i+1:] {
			if n.Type == snapshot.TypeFile && !yield(n.Content) {
				return
			}
		}
	}
}

// OpendirHandle opens the directory for listing. A program that reads
// files and lists a directory (tar, cp -r, rsync) reads its files next:
// opened while files are being read, the listing fetches the first
// file's blobs and those after it at once, and puts the small files
// into the kernel's cache before it answers the end of the listing (see
// dirHandle). One that only lists (ls -R, find) reads no file, and
// fetches nothing.
func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	kids, errno := d.children()
	if errno != 0 {
		return nil, 0, errno
	}
	h := &dirHandle{d: d, entries: make([]fuse.DirEntry, len(kids))}
	for i, n := range kids {
		h.entries[i] = fuse.DirEntry{Name: n.Name, Mode: typeBits(n.Type), Ino: inode(d.snap, n), Off: uint64(i + 1)}
	}
	h.reading = time.Since(time.Unix(0, d.sys.lastRead.Load())) < time.Second
	if h.reading {
		for i, n := range kids {
			if n.Type == snapshot.TypeFile {
				d.sys.rd.readAhead(newContent(n), 0, d.after(i))
				break
			}
		}
	}
	return h, 0, 0
}

// dirHandle is one open of a snapshot directory: its entries in name
// order, each entry's offset its index plus one.
//
// The kernel asks for entries until an answer holds none, and each
// READDIRPLUS answer makes it an inode of every entry in it; once it asks
// past the end a second time, it holds an inode of every entry, and a
// program that reads files goes on to read them. The directory's small
// files are put into the kernel's cache (FUSE_NOTIFY_STORE) before that
// last answer, so that none of those reads waits on a round trip to
// coffer. Pushed in the background instead, tar overtook the pushes and
// read about a third of the files with a READ each (docs/benchmarks.md,
// "mount").
type dirHandle struct {
	d       *dirNode
	entries []fuse.DirEntry
	next    int  // index of the next entry to list
	ends    int  // answers past the end so far
	reading bool // opened while files were being read
}

var _ = (fs.FileReaddirenter)((*dirHandle)(nil))
var _ = (fs.FileSeekdirer)((*dirHandle)(nil))

// Readdirent returns the next entry, or nil past the end.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if h.next < len(h.entries) {
		e := h.entries[h.next]
		h.next++
		return &e, 0
	}
	h.ends++
	if h.ends == 2 && h.reading {
		h.d.sys.pushFiles(ctx, h.d, -1)
	}
	return nil, 0
}

// Seekdir moves to the entry after offset off (0: the first), for
// rewinddir and seekdir.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off > uint64(len(h.entries)) {
		return syscall.EINVAL
	}
	h.next = int(off)
	return 0
}

// newNode returns the FUSE node of entry i of directory d.
func (s *fsys) newNode(d *dirNode, i int) fs.InodeEmbedder {
	n := d.kids[i]
	switch n.Type {
	case snapshot.TypeDir:
		return &dirNode{sys: s, snap: d.snap, node: n}
	case snapshot.TypeFile:
		return &fileNode{meta: meta{sys: s, n: n}, next: d.after(i), dir: d, idx: i}
	case snapshot.TypeSymlink:
		return &linkNode{meta: meta{sys: s, n: n}}
	}
	return &otherNode{meta: meta{sys: s, n: n}}
}

// fileNode is a regular file of a snapshot.
type fileNode struct {
	fs.Inode
	meta
	next iter.Seq[[]snapshot.Extent] // the files after it in its directory
	dir  *dirNode                    // its directory, and its index there
	idx  int

	once   sync.Once
	c      *content
	pushed atomic.Bool // its content was put into the kernel's cache
	// nextOff is where the last read ended: a read from there on is
	// sequential, and gets read-ahead. (There are no per-open handles:
	// see Open.)
	nextOff atomic.Int64
}

var _ = (fs.NodeOpener)((*fileNode)(nil))
var _ = (fs.NodeReader)((*fileNode)(nil))
var _ = (fs.NodeFlusher)((*fileNode)(nil))
var _ = (fs.NodeGetattrer)((*fileNode)(nil))
var _ = (fs.NodeGetxattrer)((*fileNode)(nil))
var _ = (fs.NodeListxattrer)((*fileNode)(nil))

// Open opens the file for reading. Where the kernel offers it, it answers
// "not implemented" (see tryNoOpen); elsewhere it asks the kernel to keep what it cached from
// earlier opens (FOPEN_KEEP_CACHE): contents never change.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if f.sys.noOpen.Load() {
		return nil, 0, syscall.ENOSYS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// Read reads from the file's blobs, authenticated as restore reads them.
func (f *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.once.Do(func() { f.c = newContent(f.n) })
	sequential := f.nextOff.Load() == off
	f.sys.lastRead.Store(time.Now().UnixNano())
	if off == 0 && f.n.Size <= pushMax {
		f.pushed.Store(true)
		f.sys.pushAfter(f.dir, f.idx)
	}
	vs, err := f.sys.rd.slices(ctx, f.c, off, len(dest), sequential, f.next)
	if err != nil {
		return nil, f.sys.fail(f.Path(nil), err)
	}
	n := 0
	for _, v := range vs {
		n += len(v)
	}
	f.nextOff.Store(off + int64(n))
	return fuse.ReadResultVector(vs), 0
}

// Flush says, where Open does, that flushing is not implemented, so that the
// kernel stops sending a FLUSH on every close: nothing is ever written.
func (f *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if f.sys.noOpen.Load() {
		return syscall.ENOSYS
	}
	return 0
}

// Small files read in order (tar, cp -r) would each cost a READ round
// trip, serial in the reader, which restore does not have. So the small
// files of a directory that the kernel knows (READDIRPLUS made their
// inodes) are read here and put into its page cache (FUSE_NOTIFY_STORE),
// up to pushFiles or pushBytes, so that their reads never reach coffer:
// before a reading program's listing ends (dirHandle), and, in the
// background, those after a small file read from its start.
// (pushMax, the largest file pushed, is in reader.go.)
const (
	pushFiles = 64
	pushBytes = 4 << 20
)

// pushAfter puts the small files after entry i of d into the kernel's
// cache in the background, unless pushers are busy.
func (s *fsys) pushAfter(d *dirNode, i int) {
	if d == nil {
		return
	}
	select {
	case s.pushers <- struct{}{}:
	default:
		return
	}
	s.rd.bg.Go(func() {
		defer func() { <-s.pushers }()
		s.pushFiles(s.ctx, d, i)
	})
}

// pushFiles puts the small files after entry i of d (all of them for
// -1) that the kernel knows (READDIRPLUS made their inodes) into its
// cache, up to pushFiles or pushBytes, until ctx is done.
func (s *fsys) pushFiles(ctx context.Context, d *dirNode, i int) {
	files, bytes := 0, int64(0)
	for _, n := range d.kids[i+1:] {
		if files == pushFiles || bytes >= pushBytes || ctx.Err() != nil {
			return
		}
		if n.Type != snapshot.TypeFile || n.Size == 0 || n.Size > pushMax {
			continue
		}
		ch := d.GetChild(n.Name)
		if ch == nil {
			continue // the kernel has no inode for it: nothing to fill
		}
		f, ok := ch.Operations().(*fileNode)
		if !ok || f.pushed.Swap(true) {
			continue
		}
		f.once.Do(func() { f.c = newContent(f.n) })
		vs, err := s.rd.slices(ctx, f.c, 0, int(f.n.Size), false, f.next)
		if err != nil {
			f.pushed.Store(false) // its own read reports the error
			continue
		}
		// A small file is one blob, whose cached bytes go as they
		// are; one with holes is assembled.
		var b []byte
		if len(vs) == 1 {
			b = vs[0]
		} else {
			b = slices.Concat(vs...)
		}
		ch.WriteCache(0, b)
		files++
		bytes += int64(len(b))
	}
}

// linkNode is a symbolic link of a snapshot.
type linkNode struct {
	fs.Inode
	meta
}

var _ = (fs.NodeReadlinker)((*linkNode)(nil))

// Readlink returns the recorded target.
func (l *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(l.n.LinkTarget), 0
}

// otherNode is a fifo, socket or device: only its attributes.
type otherNode struct {
	fs.Inode
	meta
}

var _ = (fs.NodeGetattrer)((*otherNode)(nil))
