//go:build darwin || freebsd

package mount

// tryNoOpen is false: macFUSE and FreeBSD's fusefs would fail the
// open(2) with ENOSYS.
const tryNoOpen = false

// checkDevice leaves the check to the mount: macFUSE and fusefs name
// their devices differently.
func checkDevice() error { return nil }

// lazyUnmount forces a busy mount off.
func lazyUnmount(dir string) error {
	return runQuiet("umount", "-f", dir)
}

// mountHint adds nothing: the mount's own error says it.
func mountHint(error) string { return "" }

// raiseReadAhead does nothing: only Linux caps FUSE's read-ahead below
// what the mount asks for.
func raiseReadAhead(dir string, bytes int) error { return nil }
