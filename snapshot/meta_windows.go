package snapshot

import "io/fs"

// statExtra adds nothing on Windows: it has no POSIX owners, inode
// numbers or ctime through os.Lstat, so nodes leave them zero (the
// unchanged-file check then compares size and mtime, as restic does
// there).
func statExtra(n *Node, info fs.FileInfo, names *idNames) {}

// chownNode does nothing: Windows ownership is not POSIX uid and gid.
func chownNode(path string, n *Node) error { return nil }
