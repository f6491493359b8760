//go:build !linux

package repo

// prepareKDFMemory does nothing here: what it does on Linux
// (hugepages_linux.go) was measured only there.
func prepareKDFMemory(int) (release func()) { return func() {} }
