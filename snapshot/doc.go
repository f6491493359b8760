// Package snapshot knows files and trees: it turns directories into
// snapshots (the archiver), snapshots back into directories (the
// restorer), and walks, compares and checks them.
//
// # Snapshot
//
// A snapshot object records when, where and what was backed up and points
// at a root tree. Its id is the SHA-256 of the stored object; users name it
// by any unique prefix of the hex id.
//
// # Tree
//
// A tree is one directory, encoded as a tree blob: its nodes sorted by
// name. A directory node points at its own tree, so a snapshot is a Merkle
// tree and an unchanged directory costs nothing to store again. A very
// large directory is split into parts so that no blob grows without bound.
//
// # Paths
//
// The root tree is "/". Backed-up paths keep their absolute place in it, and
// the snapshot's base directory (the common parent of its paths) is what a
// relative path in `ls`, `cat` and `restore` is resolved against.
package snapshot
