//go:build !linux

package repo

// prepareHugePages does nothing here: only Linux gives huge pages on
// request (hugepages_linux.go).
func prepareHugePages(int) (withdraw func()) { return func() {} }
