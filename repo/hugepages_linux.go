package repo

import (
	"bytes"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 or arm64 transparent huge page.
const hugePage = 2 << 20

// prepareKDFMemory readies the memory of the heap's next allocation of n
// bytes, which argon2.IDKey makes next, so that Argon2id does not spend
// its time in page faults. Call the function it returns once that
// allocation is garbage.
//
// Argon2id's first touch of many of its blocks is a read. On memory the
// process has never touched, such a read maps the kernel's shared zero
// page, and the write that follows copies it: two faults, and a TLB flush
// on every CPU that ran the process, for each 4 KiB. At the default 64
// MiB that made a derivation take 225-245 ms where it takes 75-125 ms on
// memory already in place (2 CPUs, docs/benchmarks-log.md, "Key derivation
// without huge pages").
//
// Where the system gives transparent huge pages on request, they are
// asked for (prepareHugePages): their reads also miss the TLB less.
// Elsewhere (transparent_hugepage/enabled "never", as database hosts are
// often set up, too few free 2 MiB blocks, or a virtual machine that
// hands its free memory back to the hypervisor, freePagesReported, unless
// its small pages cost dearly all the same, smallPagesCostly) the memory
// is faulted in ahead, written, in small pages (prefault). Under 16 MiB
// (the tests' parameters) its faults cost little, and nothing is done.
//
// golang.org/x/crypto/argon2 allocates its memory itself, so both
// allocate n bytes and free them first: Go's page allocator hands out the
// lowest free pages that fit, so Argon2id's allocation, made next, lands
// in the same range. Nothing depends on it for correctness: where it
// lands elsewhere, the derivation is as slow as without, never different.
func prepareKDFMemory(n int) (release func()) {
	if n < 8*hugePage {
		return func() {}
	}
	if hugePagesOnRequest() && hugePagesFree(n) && (!freePagesReported(sysfs) || smallPagesCostly()) {
		if withdraw, ok := prepareHugePages(n); ok {
			return withdraw
		}
	}
	prefault(n)
	return func() {}
}

// prefault makes the heap's next allocation of n bytes find its pages
// mapped and written: it allocates them, has the kernel fault them all in
// for writing in one call (MADV_POPULATE_WRITE, Linux 5.14; older kernels
// get a write per page), and frees them to the heap. Collected, not given
// back to the kernel: the heap keeps the pages mapped, and clears them for
// Argon2id's allocation with writes that take no fault. That costs 17-27
// ms, and the derivation after it 71-94 ms instead of 225-245, for
// 0.2-0.6 MB more peak memory (giving the heap's other free pages back
// first, as prepareHugePages does, did not lower it).
//
// It allocates more than it faults in, as prepareHugePages does: an
// allocation made in between (argon2.IDKey's own, another goroutine's)
// takes the lowest free pages, the start of the range, and Argon2id's
// then lands a little further on, within it. Freed with no room to
// spare, the range could not hold Argon2id's allocation whenever such an
// allocation came first and the pages past the range were in use: it was
// placed elsewhere, on fresh pages, beside the 64 MiB still mapped here.
// That happened to 11 of 300 processes deriving a key, which peaked at
// 136-139 MB instead of 74 (docs/benchmarks-log.md, "Argon2id's memory on a
// host that hands free memory back"); with the slack, to none of 400.
func prefault(n int) {
	b := allocUncleared(n + 4*hugePage)[:n]
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil {
		for i := 0; i < len(b); i += os.Getpagesize() {
			b[i] = 0
		}
	}
	runtime.KeepAlive(b)
	runtime.GC()
}

// hugePagesOnRequest reports whether the kernel gives transparent huge
// pages to memory advised MADV_HUGEPAGE: transparent_hugepage/enabled is
// "always" or "madvise". Under "never" the advice is accepted and does
// nothing. Unknown counts as no.
func hugePagesOnRequest() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && (bytes.Contains(b, []byte("[always]")) || bytes.Contains(b, []byte("[madvise]")))
}

// prepareHugePages makes the heap's next allocation of n bytes likely to
// be backed by transparent huge pages, and reports whether it could ask
// for them. Call the function it returns once that allocation is
// garbage: it withdraws the advice.
//
// Argon2id reads its 64 MiB at random: with 4 KiB pages nearly every
// read misses the TLB, and touching the memory first costs 16,384 page
// faults. With 2 MiB pages the same derivation, at the same parameters and
// with the same result, took 80-90 ms instead of 185-200 ms (2 CPUs,
// docs/benchmarks-log.md), and that is a fixed cost of every command.
//
// It allocates n bytes and some slack, marks the range MADV_HUGEPAGE,
// drops whatever of it is mapped, and frees it, for Argon2id's allocation
// to land there (prepareKDFMemory).
//
// It is called only when the kernel has the huge pages free: advised
// memory that finds none makes the page fault compact memory first
// (transparent_hugepage/defrag "madvise", the default), which on a host
// whose memory is all page cache, as a backup host's often is, showed as
// compaction stalls, not as a faster derivation.
//
// The advice is withdrawn (MADV_NOHUGEPAGE) once the memory is free
// again, since the heap reuses the range for small objects: left
// advised, each page the heap touches there would map 2 MiB, and
// khugepaged would fill sparse 2 MiB stretches of it whole, memory a
// long-running command (ui, mount) would keep for nothing.
func prepareHugePages(n int) (withdraw func(), ok bool) {
	// Slack for the few pages other allocations may take from the front
	// of the range between its release and Argon2id's allocation.
	b := allocUncleared(n + 4*hugePage)
	start, end := hugePageSpan(uintptr(unsafe.Pointer(&b[0])), n)
	if start == end {
		return nil, false
	}
	advised := b[start:end]
	// Refused: the caller faults the memory in instead. Pages of the
	// range the runtime had used before may still be mapped, in small
	// pages: dropped, the next touch maps them anew, in huge pages.
	if unix.Madvise(advised, unix.MADV_HUGEPAGE) != nil {
		return nil, false
	}
	_ = unix.Madvise(advised, unix.MADV_DONTNEED)
	// The range's address, not a pointer: b must be garbage for Argon2id
	// to be given its pages. The heap never unmaps them, so the address
	// stays valid for madvise.
	addr, size := uintptr(unsafe.Pointer(&advised[0])), uintptr(len(advised))
	runtime.KeepAlive(b)
	// Collected and given back to the kernel, not only collected: the
	// runtime does not clear memory it gets back from the kernel, which
	// the kernel zeroes, so Argon2id's allocation there is not cleared
	// first (6-125 ms, 0.1-1.3 ms without), and the heap's other free
	// pages leave the command's peak.
	debug.FreeOSMemory()
	return func() {
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, addr, size, unix.MADV_NOHUGEPAGE)
	}, true
}

// allocUncleared allocates n bytes on the heap, placed as make would
// place them, without clearing them: strings.Builder grows through the
// runtime's allocation that skips it. make clears memory the heap used
// before, and the heap's top is such memory whenever the command's first
// collection freed what was there. Cleared there, the probe's 72 MiB were
// faulted in, in small pages, before any advice: 0.24 s and 8 MB of
// resident memory more, in 6 of 150 `ls` runs (docs/benchmarks-log.md,
// "mixed and big-file after the huge pages: what changed, and reading
// the figures", under "Huge pages that do not land"). The bytes are
// never read.
func allocUncleared(n int) []byte {
	var sb strings.Builder
	sb.Grow(n)
	sb.WriteByte(0)
	return unsafe.Slice(unsafe.StringData(sb.String()), n)
}

// sysfs is where Linux shows its devices and settings.
const sysfs = "/sys"

// freePagesReported reports whether the kernel under root (sysfs) hands
// free memory back to a hypervisor: whether a virtio balloon (device
// 0x0005) negotiated free page reporting (feature bit 5,
// VIRTIO_BALLOON_F_REPORTING; a device's features file lists its bits
// from bit 0 on, as '0' and '1'). Hyper-V's balloon reports too, and is
// not recognised.
//
// The kernel reports free blocks of 2 MiB and more, the size of a huge
// page, and the hypervisor drops the memory behind them: a huge page
// taken from such a block waits for the hypervisor to find 2 MiB of
// memory again. On such a virtual machine (2 CPUs, Firecracker) faulting
// in 64 MiB of huge pages took 8-10 ms, or 138-264 ms when the blocks
// had been handed back (3 tries in 11, after 1.3 GB had been freed), and
// 64 MiB of small pages, taken first from the smaller free blocks the
// kernel keeps, took 16-25 ms; a no-change backup took a median 0.25 s
// against 0.31 (docs/benchmarks-log.md, "Argon2id's memory on a host that
// hands free memory back").
func freePagesReported(root string) bool {
	devices, _ := filepath.Glob(filepath.Join(root, "bus/virtio/devices/*"))
	for _, d := range devices {
		id, err := os.ReadFile(filepath.Join(d, "device"))
		if err != nil || strings.TrimSpace(string(id)) != "0x0005" {
			continue
		}
		const reporting = 5
		features, err := os.ReadFile(filepath.Join(d, "features"))
		if err == nil && len(features) > reporting && features[reporting] == '1' {
			return true
		}
	}
	return false
}

// smallPagesCostly reports whether this machine makes a process pay for
// the first write to each small page of its memory even after the kernel
// has faulted the page in: whether 32 fresh pages, faulted in for writing
// (MADV_POPULATE_WRITE), then take over a microsecond each to write one
// byte to. Where they do, faulting Argon2id's memory in ahead in small
// pages (prefault) saves nothing, and huge pages are asked for even where
// free pages are reported to the hypervisor.
//
// A guest of a PVM hypervisor (paging by shadow page tables: the kernel
// logs "Hypervisor detected: PVM") is such a machine. Its kernel faults
// pages in in its own page tables, and the hypervisor mirrors each entry
// only when the process first touches the page: about 5 µs a page on a
// 2-CPU AMD EPYC guest, where a page in place takes well under 0.5 µs. On
// it, 64 MiB of small pages took 14-19 ms to fault in and 100-140 ms more
// to write once; in huge pages 3-20 ms in all, and 78-119 ms in 2 of 15
// tries (the blocks handed back to the hypervisor). A key derivation of
// `coffer ls` took a median 0.23 s in small pages and 0.155 s in huge
// pages (docs/benchmarks-log.md, "Small pages that cost dearly on first
// write").
//
// The probe maps its own memory, outside the heap, and costs about 0.2 ms
// on such a machine, some microseconds elsewhere. Where the kernel cannot
// fault memory in ahead (before Linux 5.14) it reports false.
func smallPagesCostly() bool {
	const pages = 32
	size := pages * os.Getpagesize()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false
	}
	defer func() { _ = unix.Munmap(b) }()
	// A huge page here would be one fault for all of it.
	_ = unix.Madvise(b, unix.MADV_NOHUGEPAGE)
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil {
		return false
	}
	start := time.Now()
	for i := 0; i < size; i += os.Getpagesize() {
		b[i] = 1
	}
	return time.Since(start) > pages*time.Microsecond
}

// hugePageSpan returns the offsets from base of the whole huge pages
// within the n bytes at base, where Argon2id's memory will be. Not past
// them: the last touch of Argon2id's memory would map a huge page that
// reaches past its end whole, up to 2 MiB more resident memory than it
// uses.
func hugePageSpan(base uintptr, n int) (start, end int) {
	start = int((hugePage - base%hugePage) % hugePage)
	if start >= n {
		return 0, 0
	}
	return start, start + (n-start)/hugePage*hugePage
}

// hugePagesFree reports whether the kernel's free lists hold enough free
// blocks of a huge page or more for n bytes (/proc/buddyinfo), so that
// faulting them in needs no compaction. Unknown counts as no.
func hugePagesFree(n int) bool {
	b, err := os.ReadFile("/proc/buddyinfo")
	if err != nil {
		return false
	}
	return freeHugePages(b, os.Getpagesize()) >= n/hugePage
}

// freeHugePages counts the huge pages the free blocks listed in buddyinfo
// make, outside the DMA zone, which user memory does not come from. Each
// line is "Node N, zone NAME" and the count of free blocks of each order,
// from one page up.
func freeHugePages(buddyinfo []byte, pageSize int) int {
	if pageSize <= 0 || hugePage%pageSize != 0 {
		return 0
	}
	order := bits.TrailingZeros(uint(hugePage / pageSize))
	total := 0
	for _, line := range bytes.Split(buddyinfo, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 4 || string(f[2]) != "zone" || string(f[3]) == "DMA" {
			continue
		}
		for o, count := range f[4:] {
			if o < order {
				continue
			}
			c, err := strconv.Atoi(string(count))
			if err != nil {
				return 0
			}
			total += c << (o - order)
		}
	}
	return total
}
