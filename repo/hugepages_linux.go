package repo

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 or arm64 transparent huge page.
const hugePage = 2 << 20

// prepareHugePages makes the heap's next allocation of n bytes likely to
// be backed by transparent huge pages, where the system gives them on
// request (/sys/kernel/mm/transparent_hugepage/enabled "madvise", the
// default of Debian, Ubuntu and RHEL, or "always").
//
// Argon2id reads its 64 MiB at random: with 4 KiB pages nearly every
// read misses the TLB, and touching the memory first costs 16,384 page
// faults. With 2 MiB pages the same derivation, at the same parameters and
// with the same result, took 80-90 ms instead of 185-200 ms (2 CPUs,
// docs/benchmarks.md), and that is a fixed cost of every command.
//
// golang.org/x/crypto/argon2 allocates its memory itself, so this asks
// for it ahead: it allocates n bytes and some slack, marks the range
// MADV_HUGEPAGE, drops whatever of it is mapped, and frees it. Go's page
// allocator hands out the lowest free pages that fit, so Argon2id's
// allocation, made next, lands in the marked range. Nothing depends on it for correctness: where it lands
// elsewhere, or the system gives no huge pages, the derivation is as slow
// as before, never different.
func prepareHugePages(n int) {
	if n < 8*hugePage {
		return
	}
	// Slack for the few pages other allocations may take from the front
	// of the range between its release and Argon2id's allocation.
	b := make([]byte, n+4*hugePage)
	base := uintptr(unsafe.Pointer(&b[0]))
	start := int((hugePage - base%hugePage) % hugePage)
	end := start + (len(b)-start)/hugePage*hugePage
	// Advice: nothing to do when refused. Pages of the range the runtime
	// had used before are already mapped, small, and zeroed by make:
	// dropped, the next touch maps them anew, in huge pages.
	if unix.Madvise(b[start:end], unix.MADV_HUGEPAGE) == nil {
		_ = unix.Madvise(b[start:end], unix.MADV_DONTNEED)
	}
	runtime.KeepAlive(b)
	runtime.GC()
}
