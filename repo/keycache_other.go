//go:build !unix

package repo

import (
	"errors"
	"io/fs"
)

const noFollow = 0

// ownedPrivately cannot check ownership here: the key cache is for Unix
// systems only.
func ownedPrivately(path string, _ fs.FileInfo) error {
	return errors.New("key cache: not supported on this system")
}
