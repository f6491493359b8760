//go:build !linux

package repo

// bootID is unknown here: locks of this machine's processes go stale by
// time only.
func bootID() string { return "" }

func procStart(int) string { return "" }

func pidNamespace() string { return "" }
