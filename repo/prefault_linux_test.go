//go:build !race

package repo

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// Where no huge pages are asked for, Argon2id's memory is faulted in
// before Argon2id touches it: its allocation, made next, lands on the
// pages prefault wrote, and touching them takes no page faults, where
// touching as much memory never used takes one per page.
//
// Page faults are what it counts, and the race detector takes its own
// for the shadow memory of every page an instrumented write touches
// (32,798 in both halves): this file is built without it.
func TestPrefault(t *testing.T) {
	const n = 64 << 20 // Argon2id's memory at the default parameters
	const report = "page faults: prefaulted %d, not %d, of %d pages"
	if os.Getenv("COFFER_TEST_HUGEPAGES_CHILD") != "" {
		touch := func(b []byte) int64 {
			before := minorFaults(t)
			for i := 0; i < len(b); i += os.Getpagesize() {
				b[i] = 1
			}
			return minorFaults(t) - before
		}
		prefault(n)
		b := make([]byte, n) // as argon2.IDKey allocates its memory
		prefaulted := touch(b)
		// Small pages, as the system would give without the advice.
		never := make([]byte, n)
		if err := unix.Madvise(never, unix.MADV_NOHUGEPAGE); err != nil {
			t.Fatal(err)
		}
		fresh := touch(never)
		runtime.KeepAlive(b)
		fmt.Printf(report+"\n", prefaulted, fresh, n/os.Getpagesize())
		return
	}
	var prefaulted, fresh int64
	var pages int
	childReport(t, "TestPrefault", report, &prefaulted, &fresh, &pages)
	t.Logf("touching %d MiB: %d page faults after prefault, %d on memory never used", n>>20, prefaulted, fresh)
	// The control: without it, a count of none could mean the faults
	// were not counted.
	if fresh < int64(pages/2) {
		t.Fatalf("touching %d MiB never used took %d page faults; want about one per page (%d)", n>>20, fresh, pages)
	}
	if prefaulted > int64(pages/64) {
		t.Errorf("touching Argon2id's %d MiB after prefault took %d page faults; want next to none (%d pages)", n>>20, prefaulted, pages)
	}
}
