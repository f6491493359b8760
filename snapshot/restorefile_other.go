//go:build !linux

package snapshot

import "os"

// targetFile is a regular file the data phase of a restore writes into.
type targetFile struct {
	f *os.File
}

// openTarget opens the file at p for writing, creating it if create is
// set. A symlink put in the file's place since it was checked or created
// is not followed, where the system has O_NOFOLLOW.
func openTarget(p string, create bool) (targetFile, error) {
	flag := os.O_WRONLY | oNoFollow
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(p, flag, 0o600)
	return targetFile{f}, err
}

// writeAt writes all of b at off.
func (f targetFile) writeAt(b []byte, off int64) error {
	_, err := f.f.WriteAt(b, off)
	return err
}

// truncate sets the file's size.
func (f targetFile) truncate(size int64) error { return f.f.Truncate(size) }

// closeWithMeta closes the file, then gives it the metadata n records,
// by its path: here the times are set after the close, in case the
// system updates them as it closes a written file. metaErr is
// applyMeta's error, which the restorer warns of; err is the close's.
func (f targetFile) closeWithMeta(n *Node, asRoot bool) (metaErr, err error) {
	if err := f.f.Close(); err != nil {
		return nil, err
	}
	return applyMeta(f.f.Name(), n, asRoot), nil
}

// close closes the file.
func (f targetFile) close() error { return f.f.Close() }
