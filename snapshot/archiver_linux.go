package snapshot

import (
	"errors"
	"os"
	"syscall"
)

// openNoAtime opens a file for reading without updating its access time
// where the kernel allows it (O_NOATIME needs ownership or CAP_FOWNER),
// and without following a symlink that replaced it since it was examined.
//
// It asks for O_NONBLOCK too, which changes nothing for a regular file:
// given a descriptor without it, package os sets it, tries to register the
// file with epoll (which refuses regular files) and clears it again, four
// fcntl calls per file. And a FIFO put in the file's place since it was
// examined then opens, and reads as empty, instead of blocking the backup.
func openNoAtime(path string) (*os.File, error) {
	const flags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	f, err := os.OpenFile(path, flags|syscall.O_NOATIME, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = os.OpenFile(path, flags, 0)
	}
	return f, err
}
