//go:build unix && !linux

package snapshot

import "syscall"

// oNoFollow makes an open fail on a final symlink, so that a symlink put
// in a restored file's place is not followed.
const oNoFollow = syscall.O_NOFOLLOW
