package snapshot

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openNoAtime opens a file for reading without updating its access time
// where the kernel allows it (O_NOATIME needs ownership or CAP_FOWNER),
// and without following a symlink that replaced it since it was examined.
//
// It asks for O_NONBLOCK too, which changes nothing for a regular file:
// given a descriptor without it, package os sets it, tries to register the
// file with epoll (which refuses regular files) and clears it again, four
// fcntl calls per file. And a FIFO put in the file's place since it was
// examined opens at once, rather than waiting for a writer forever.
//
// A file under a write lease (Samba's oplocks, knfsd's delegations)
// answers such an open with EWOULDBLOCK: it is opened again without
// O_NONBLOCK, which waits for the lease to be broken, as before.
func openNoAtime(path string) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOATIME
	for {
		f, err := os.OpenFile(path, flags, 0)
		switch {
		case errors.Is(err, syscall.EPERM) && flags&syscall.O_NOATIME != 0:
			flags &^= syscall.O_NOATIME
		case errors.Is(err, syscall.EWOULDBLOCK) && flags&syscall.O_NONBLOCK != 0:
			flags &^= syscall.O_NONBLOCK
		default:
			return f, err
		}
	}
}

// openDirFile opens the directory at path for listing.
//
// Through unix.Open and os.NewFile rather than os.Open: os.Open sets
// O_NONBLOCK, tries to register the directory with epoll (which refuses
// it) and clears the flag again, five system calls per directory beside
// the open, the listing and the close, where os.NewFile makes one
// (F_GETFL). A tree of a million files has over a hundred thousand
// directories.
func openDirFile(path string) (*os.File, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// regularSize returns the size of the file at path, looked up as name
// in the directory open as dir unless dir is noDir.
func regularSize(dir int, path, name string) (int64, error) {
	at, rel := dir, name
	if dir == noDir {
		at, rel = unix.AT_FDCWD, path
	}
	var st unix.Stat_t
	if err := unix.Fstatat(at, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return st.Size, nil
}
