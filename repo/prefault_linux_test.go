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
// pages prefault wrote, even after another allocation took the first of
// them, and touching them takes next to no page faults (those of the
// shift), where touching as much memory never used takes one per page.
//
// Page faults are what it counts, and the race detector takes its own
// for the shadow memory of every page an instrumented write touches
// (32,798 in both halves): this file is built without it.
func TestPrefault(t *testing.T) {
	const n = 64 << 20 // Argon2id's memory at the default parameters
	const report = "page faults: prefaulted %d, not %d, of %d pages"
	if os.Getenv("COFFER_TEST_HUGEPAGES_CHILD") != "" {
		// Counted from before the allocation: memory the heap used
		// before is cleared by make, which faults it in there.
		alloc := func() ([]byte, int64) {
			before := minorFaults(t)
			b := make([]byte, n) // as argon2.IDKey allocates its memory
			// Small pages, as the system would give without the advice;
			// a no-op on prefault's pages, which are mapped already.
			if err := unix.Madvise(b, unix.MADV_NOHUGEPAGE); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(b); i += os.Getpagesize() {
				b[i] = 1
			}
			return b, minorFaults(t) - before
		}
		prefault(n)
		// Allocations made between prefault and Argon2id's (argon2.IDKey's
		// own, the runtime's, other goroutines') take the lowest free
		// pages that fit, the start of the range prefault freed: Argon2id's
		// lands 256 KiB further on, 64 pages past what prefault wrote.
		between := make([]byte, 256<<10)
		b, prefaulted := alloc()
		runtime.KeepAlive(between)
		never, fresh := alloc()
		runtime.KeepAlive(b)
		runtime.KeepAlive(never)
		fmt.Printf(report+"\n", prefaulted, fresh, n/os.Getpagesize())
		return
	}
	// Now and then the runtime places an allocation elsewhere than where
	// the last one was freed (1 run in 10 to 20 here), or its scavenger
	// returns some of the freed pages to the system first: the best of
	// three tries counts, as for Argon2id it is a speed, not a result.
	var prefaulted, fresh int64
	var pages int
	for try := 0; try < 3; try++ {
		childReport(t, "TestPrefault", report, &prefaulted, &fresh, &pages)
		t.Logf("touching %d MiB: %d page faults after prefault, %d on memory never used", n>>20, prefaulted, fresh)
		// The control: without it, a count of none could mean the
		// faults were not counted.
		if fresh >= int64(pages/2) && prefaulted <= int64(pages/64) {
			return
		}
	}
	if fresh < int64(pages/2) {
		t.Fatalf("touching %d MiB never used took %d page faults; want about one per page (%d)", n>>20, fresh, pages)
	}
	t.Errorf("touching Argon2id's %d MiB after prefault took %d page faults; want next to none (%d pages)", n>>20, prefaulted, pages)
}
