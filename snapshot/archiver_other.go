//go:build !linux

package snapshot

import (
	"errors"
	"os"
)

// openNoAtime opens a file for reading. Only Linux has O_NOATIME, so
// elsewhere reading may update the access time, as any reader would; and
// as not every system has O_NOFOLLOW, a symlink that replaced the file
// since the walk examined it is caught after opening instead.
func openNoAtime(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	opened, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if named, err := os.Lstat(path); err != nil || !os.SameFile(named, opened) {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: path, Err: errors.New("replaced while being backed up")}
	}
	return f, nil
}

// openDirFile opens the directory at path for listing.
func openDirFile(path string) (*os.File, error) { return os.Open(path) }

// regularSize returns the size of the file at path. Only Linux keeps the
// walk's directories open to look entries up from.
func regularSize(_ int, path, _ string) (int64, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
