// Package mount serves a repository's snapshots as a read-only file
// system through FUSE: every snapshot under snapshots/<time>-<id>/, the
// same directories grouped under hosts/<host>/ and tags/<tag>/, and a
// latest symlink in each. A snapshot directory holds the snapshot's tree
// below its base, as restore puts it into a target.
//
// Reads go through repo.Repository.LoadBlobs, which authenticates every
// blob and checks its id, exactly as restore does; a blob that fails is an
// EIO, never wrong bytes. Decrypted blobs are kept in a bounded LRU cache
// (blobCache), so the kernel's small sequential reads of one chunk fetch
// it once, and a read that misses fetches a span of the pack after the
// blob, as restore does, in one ranged read; the blobs of that span that
// no read needs yet wait in a bounded cache on disk (spillCache), still
// sealed, and are authenticated when used.
//
// The FUSE side (go-fuse) builds on Linux, macOS and FreeBSD; elsewhere
// Mount returns ErrNotSupported.
package mount

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// DefaultCacheBytes bounds the cache of decrypted blobs when
// Options.CacheBytes is 0: some dozens of chunks (1 MiB on average), enough
// for the read-ahead of a few files read at once.
const DefaultCacheBytes = 64 << 20

// Options tune a mount.
type Options struct {
	// CacheBytes bounds the decrypted blobs kept in memory (0:
	// DefaultCacheBytes).
	CacheBytes int64
	// SpillBytes bounds the spill cache, on disk, of blobs fetched with
	// the ones read but not read yet, kept encrypted (0:
	// DefaultSpillBytes). Negative: none; fetches then read 2 MiB runs
	// into memory rather than 16 MiB spans, which suits a store where a
	// request costs little (a local directory) better than writing what
	// is not read yet to disk.
	SpillBytes int64
	// SpillDir is where the spill cache's directory is made (empty:
	// os.TempDir()); it is removed at unmount.
	SpillDir string
	// Warn receives problems the file system can only answer with an
	// error code (a blob that fails authentication is EIO to the reader),
	// so that the user learns why. Nil discards them.
	Warn func(err error)
	// Ready is called once the file system is mounted and serving.
	Ready func(snapshots int)
	// DebugLog, if not nil, receives a line for every FUSE request and
	// its answer.
	DebugLog io.Writer
}

// Errors Mount returns before it mounts anything, matched with errors.Is.
var (
	// ErrMountpoint means the directory to mount on cannot be used: it
	// does not exist, is not a directory, or is not empty.
	ErrMountpoint = errors.New("cannot mount here")
	// ErrNoFUSE means the kernel's FUSE device is missing.
	ErrNoFUSE = errors.New("FUSE is not available")
	// ErrNotSupported means this build of coffer has no FUSE support for
	// the operating system.
	ErrNotSupported = errors.New("mount is not supported on this OS")
)

// CheckMountpoint returns an error wrapping ErrMountpoint, saying what
// to do, unless dir is an existing empty directory. Mount calls it; the
// CLI calls it first too, to refuse a bad directory before it asks for a
// passphrase.
func CheckMountpoint(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist: create it (mkdir %s) and run again", ErrMountpoint, dir, dir)
	case errors.Is(err, syscall.ENOTCONN):
		// What a mount whose server was killed leaves behind.
		return fmt.Errorf("%w: %s is a stale mount (its server is gone): unmount it with fusermount -u %s (or umount) and run again", ErrMountpoint, dir, dir)
	case err != nil:
		return fmt.Errorf("%w: %w", ErrMountpoint, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory: give an empty directory to mount on", ErrMountpoint, dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMountpoint, err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("%w: %s is not empty (it holds %s): mount on an empty directory, so nothing in it is hidden", ErrMountpoint, dir, names[0])
	}
	return nil
}
