package snapshot

import (
	"errors"
	"os"
	"syscall"
)

// openNoAtime opens a file for reading without updating its access time
// where the kernel allows it (O_NOATIME needs ownership or CAP_FOWNER),
// and without following a symlink that replaced it since it was examined.
func openNoAtime(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOATIME|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	return f, err
}
