//go:build unix

package repo

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

const noFollow = syscall.O_NOFOLLOW

// ownedPrivately checks that info, of path, belongs to this user and
// grants nothing to the group or others.
func ownedPrivately(path string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("key cache: cannot tell the owner of %s", path)
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("key cache: %s belongs to user %d, not to this user, and is not used; remove it, or set XDG_RUNTIME_DIR to a directory of yours", path, st.Uid)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("key cache: %s is open to other users (mode %v); remove it", path, info.Mode().Perm())
	}
	return nil
}
