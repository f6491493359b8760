package snapshot

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// targetFile is a regular file the data phase of a restore writes into,
// held by its bare descriptor. An os.File would make the descriptor
// non-blocking, try to add it to the runtime's poller, which refuses
// regular files, and make it blocking again: four fcntl calls and an
// epoll_ctl for each of the tens of thousands of opens a restore of small
// files makes, and a finalizer.
type targetFile struct {
	fd   int
	path string
}

// openTarget opens the file at p for writing, creating it if create is
// set. A symlink put in the file's place since it was checked or created
// is not followed.
func openTarget(p string, create bool) (targetFile, error) {
	flag := unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if create {
		flag |= unix.O_CREAT
	}
	for {
		fd, err := unix.Open(p, flag, 0o600)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return targetFile{}, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return targetFile{fd: fd, path: p}, nil
	}
}

// writeAt writes all of b at off.
func (f targetFile) writeAt(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "write", Path: f.path, Err: err}
		}
		if n == 0 {
			return &os.PathError{Op: "write", Path: f.path, Err: io.ErrShortWrite}
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// truncate sets the file's size.
func (f targetFile) truncate(size int64) error {
	for {
		err := unix.Ftruncate(f.fd, size)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "truncate", Path: f.path, Err: err}
		}
		return nil
	}
}

// closeWithMeta gives the file the metadata n records, through its
// descriptor, then closes it. metaErr is applyMeta's error, which the
// restorer warns of; err is the close's.
func (f targetFile) closeWithMeta(n *Node, asRoot bool) (metaErr, err error) {
	metaErr = applyMetaFD(f.fd, f.path, n, asRoot)
	return metaErr, f.close()
}

// close closes the file. Linux releases the descriptor even when close
// fails, so it is never retried.
func (f targetFile) close() error {
	if err := unix.Close(f.fd); err != nil {
		return &os.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}
