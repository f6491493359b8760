//go:build darwin || freebsd

package mount

// checkDevice leaves the check to the mount: macFUSE and fusefs name
// their devices differently.
func checkDevice() error { return nil }

// lazyUnmount forces a busy mount off.
func lazyUnmount(dir string) error {
	return runQuiet("umount", "-f", dir)
}
