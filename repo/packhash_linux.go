package repo

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// hashWindow is how much of a pack file is mapped at a time. Mapped
// pages count in the process's resident set while mapped, so a whole
// pack (32 MiB by default, one per uploader) would raise a backup's peak
// memory by as much. Yet each mapping costs about 80 us, a tenth of
// hashing 1 MiB: a 32 MiB pack took 26.8 ms to hash in 1 MiB windows,
// 25.2 in 2 MiB ones and 24.6 in 4 or 8 MiB ones, against 28.7 ms read
// back (docs/benchmarks-log.md, "Packs hashed in place, and mixed again").
const hashWindow = 2 << 20

// hashFile returns the SHA-256 of the first size bytes of f.
//
// The bytes are hashed where the page cache holds them, mapped into
// memory, instead of copied out by read first: a copy of every byte
// stored (docs/benchmarks-log.md, "Packs hashed in place, and mixed
// again"). Where the file cannot be mapped, the rest of it is read.
func hashFile(f *os.File, size int64) (ID, error) {
	h := sha256.New()
	var off int64
	var err error
	if raw, cerr := f.SyscallConn(); cerr == nil {
		_ = raw.Control(func(fd uintptr) { off, err = hashMapped(h, int(fd), size) })
	}
	if err != nil {
		return ID{}, fmt.Errorf("reading a temporary pack file: %w", err)
	}
	return readHash(h, f, off, size)
}

// errMappingFault is what hashMapped reports when reading a mapped
// window faulted.
var errMappingFault = errors.New("the pack file could not be read where it was mapped (an I/O error, or the file was cut short)")

// hashMapped adds the first size bytes of the file fd to h a window at a
// time, and returns how many it added: fewer than size when a window
// could not be mapped, and then h holds exactly those bytes. A fault
// while a window is hashed is errMappingFault, h then holding part of
// that window.
func hashMapped(h hash.Hash, fd int, size int64) (int64, error) {
	var done int64
	for done < size {
		n := int(min(size-done, hashWindow))
		m, err := unix.Mmap(fd, done, n, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return done, nil // read from here instead
		}
		if err := hashMapping(h, m); err != nil {
			return done, err
		}
		done += int64(n)
	}
	return done, nil
}

// hashMapping adds the mapped bytes m to h and unmaps them. A page that
// cannot be read (an I/O error, or another process cut the file short)
// would kill the process with SIGBUS; it is reported as errMappingFault.
func hashMapping(h hash.Hash, m []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		// It can fail only for a range not mapped, and this one is.
		_ = unix.Munmap(m)
		if r := recover(); r != nil {
			// A fault panics with a runtime.Error that has an address;
			// any other panic is a bug, and goes on.
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = errMappingFault
		}
	}()
	h.Write(m)
	return nil
}
