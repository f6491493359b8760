// Package local implements storage.Store on a local directory.
//
// A repository directory looks like this:
//
//	<dir>/config                   repository config, written by Create
//	<dir>/packs/<ab>/<abcdef...>   packs, sharded by the first two characters
//	<dir>/index/<name>             index objects
//	<dir>/snapshots/<name>         snapshot objects
//	<dir>/keys/<name>              wrapped master keys
//	<dir>/locks/<name>             locks
//	<dir>/tmp/                     objects being written
//
// Packs are sharded because a large repository holds hundreds of thousands
// of them, and many filesystems and tools slow down on directories that
// big; the other kinds stay small.
//
// Every write goes to a file in tmp/, is synced, and is then renamed into
// place, after which the parent directory is synced. A crash therefore
// leaves either the whole object or nothing under its name, plus perhaps a
// stray file in tmp/, which nothing reads and Open removes once it is old.
//
// Files are created with mode 0600 and directories with 0700: a repository
// is encrypted, but its size and object count are still nobody else's
// business.
package local
