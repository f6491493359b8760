// Package testutil holds fixtures shared by coffer's tests: a generator of
// deterministic directory trees that exercise everything a backup must
// preserve, a comparer that proves a restored tree equals the original,
// test bytes (incompressible and compressible, from a seed), the coffer
// binary built once per test process, and the skips: loud ones for a
// prerequisite a machine lacks, which fail in CI, and SkipInShort for the
// slow fixtures under go test -short. Real servers (registries, nginx,
// fault proxies) are in internal/testregistry.
//
// It imports nothing from coffer itself, so any package's tests can use it
// without an import cycle. The tree generator and comparer (tree.go,
// compare.go) use Linux's stat, xattrs and mknod and build on Linux only,
// as do the tests that use them; the rest builds wherever coffer does.
package testutil

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
)

// RandomBytes returns n bytes of incompressible data determined by seed.
// Incompressible data defeats compression and gives the content-defined
// chunker cut points that differ with the seed, so tests see real chunking.
func RandomBytes(seed int64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(seed))
	// A tag in the key keeps these streams apart from any other ChaCha8
	// that a test might seed with the same number.
	copy(key[8:], "coffer/testutil/RandomBytes")
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b) // never fails
	return b
}

var words = strings.Fields(`
	the a backup of and to is in file data chunk snapshot repository restore
	tree node index pack key blob encrypted deduplicated archive metadata
	directory symlink hard link sparse hole extent owner group mode time
	lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod
	tempor incididunt ut labore et dolore magna aliqua 0 1 2 42 1024 2026`)

// CompressibleBytes returns n bytes of text-like data determined by seed:
// lines of words from a small vocabulary, which compresses several times
// over, so tests exercise the compressed path of the storage format.
func CompressibleBytes(seed int64, n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x636f66666572)) // "coffer"
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[rng.IntN(len(words))]...)
		if rng.IntN(12) == 0 {
			b = append(b, '\n')
		} else {
			b = append(b, ' ')
		}
	}
	return b[:n]
}
