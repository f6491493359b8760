//go:build darwin || freebsd

package snapshot

import (
	"io/fs"
	"os"
	"syscall"
	"time"
)

// statExtra adds what the os package does not give from info's stat_t:
// ownership, ctime, inode, device and links (the archiver's unchanged-file
// check uses ctime and inode) and device numbers. The conversions cover
// the field types of both systems.
func statExtra(n *Node, info fs.FileInfo, names *idNames) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	n.UID, n.GID = st.Uid, st.Gid
	n.User, n.Group = names.user(st.Uid), names.group(st.Gid)
	n.ChangeTime = time.Unix(int64(st.Ctimespec.Sec), int64(st.Ctimespec.Nsec)).UTC()
	n.Inode = uint64(st.Ino)
	n.Device = uint64(st.Dev)
	n.Links = uint64(st.Nlink)
	if n.Type == TypeCharDev || n.Type == TypeBlkDev {
		n.Rdev = uint64(st.Rdev)
	}
}

// chownNode restores ownership without following a symlink.
func chownNode(path string, n *Node) error {
	return os.Lchown(path, int(n.UID), int(n.GID))
}
