//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// tryNoOpen makes files answer OPEN (and FLUSH) with "not implemented"
// when the kernel says it takes that (FUSE_NO_OPEN_SUPPORT): it then sends
// no OPEN, RELEASE or FLUSH for any file, three round trips per small
// file fewer, and keeps the pages it cached across opens.
const tryNoOpen = true

// checkDevice reports a missing /dev/fuse in one line, rather than as
// go-fuse's error from deep inside the mount.
func checkDevice() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: /dev/fuse: %v: load the fuse module (modprobe fuse), or give a container the device (--device /dev/fuse)", ErrNoFUSE, err)
	}
	return nil
}

// lazyUnmount detaches a busy mount: as root with umount2, otherwise
// with fusermount.
func lazyUnmount(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err == nil {
		return nil
	}
	for _, prog := range []string{"fusermount3", "fusermount"} {
		if err := runQuiet(prog, "-u", "-z", dir); err == nil {
			return nil
		}
	}
	return fmt.Errorf("neither umount2 nor fusermount -u -z succeeded")
}

// mountHint says what to do about a mount that failed for want of
// fusermount, which users other than root mount with.
func mountHint(err error) string {
	if errors.Is(err, exec.ErrNotFound) {
		return ": install fuse3 (fusermount3), or mount as root"
	}
	return ""
}

// raiseReadAhead lets the kernel read ahead up to bytes in one READ of a
// file of the mount at dir. The kernel caps FUSE's read-ahead at its
// backing device's read_ahead_kb, 128 KiB by default, whatever INIT
// asked for (max_readahead): a sequential reader such as tar then waits
// on a round trip to coffer per 128 KiB. The device is the mount's own
// and goes with it. Writing the setting takes root; elsewhere reads stay
// at 128 KiB, which works, only slower.
func raiseReadAhead(dir string, bytes int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(strconv.Itoa(bytes>>10)), 0)
}
