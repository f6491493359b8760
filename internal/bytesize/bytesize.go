// Package bytesize formats byte counts for people, so that the command
// line and the web UI show the same figure for the same count.
package bytesize

import "github.com/dustin/go-humanize"

// Format returns n in 1024-based units as `coffer ls` has always shown
// them ("216 MiB", "1.5 KiB", "12 B"). A negative count, which no size
// can be, shows as 0 B rather than as a huge unsigned number.
func Format(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}
