package repo

// Microbenchmarks of the write path's CPU work: blob encoding (keyed
// BLAKE3 id, zstd, AES-256-GCM) and pack assembly, next to this
// machine's SHA-256 and AES-GCM throughput measured in the same run, so
// that each figure can be read against the hardware's limit:
//
//	go test -run '^$' -bench . -benchtime 2s ./repo ./snapshot

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

const benchChunk = DefaultChunkAvg // the average chunk is one blob

// benchData returns n deterministic bytes: incompressible, or text-like
// (source code lines, which zstd shrinks about 4x).
func benchData(n int, compressible bool) []byte {
	b := make([]byte, n)
	if !compressible {
		_, _ = rand.NewChaCha8([32]byte{1}).Read(b)
		return b
	}
	words := []string{"func ", "return ", "err ", "nil ", "if ", "for ", "range ", "ctx ", "blob ", "pack ", "\n\t"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; {
		i += copy(b[i:], words[rng.IntN(len(words))])
	}
	return b
}

func benchCodec(b *testing.B) *codec {
	b.Helper()
	mk, err := newMasterKeys()
	if err != nil {
		b.Fatal(err)
	}
	c, err := newCodec(mk)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkLimitSHA256 is the machine's SHA-256 rate (pack names, and
// what a registry computes again for every upload).
func BenchmarkLimitSHA256(b *testing.B) {
	data := benchData(benchChunk, false)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}

// BenchmarkLimitAESGCM is the machine's AES-256-GCM sealing rate.
func BenchmarkLimitAESGCM(b *testing.B) {
	data := benchData(benchChunk, false)
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	dst := make([]byte, 0, len(data)+aead.Overhead())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		dst = aead.Seal(dst[:0], nonce, data, nil)
	}
}

// BenchmarkBlobID is the keyed BLAKE3 id of a 1 MiB blob.
func BenchmarkBlobID(b *testing.B) {
	c := benchCodec(b)
	data := benchData(benchChunk, false)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.blobID(BlobData, data)
	}
}

// BenchmarkSealBlob is what BlobSaver.Save does to a new 1 MiB chunk:
// id, compression (skipped after a sample for incompressible data), and
// AES-GCM sealing.
func BenchmarkSealBlob(b *testing.B) {
	for _, bc := range []struct {
		name         string
		compressible bool
	}{{"random", false}, {"text", true}} {
		b.Run(bc.name, func(b *testing.B) {
			c := benchCodec(b)
			data := benchData(benchChunk, bc.compressible)
			var dst []byte
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				id := c.blobID(BlobData, data)
				dst = c.sealBlob(dst[:0], BlobData, id, data, CompressionAuto)
			}
			b.ReportMetric(float64(len(dst))/float64(len(data)), "stored/raw")
		})
	}
}

// BenchmarkPackAssembly writes 32 sealed 1 MiB blobs to a pack file
// and finishes the pack (padding, sealed trailer, SHA-256 of the pack).
func BenchmarkPackAssembly(b *testing.B) {
	c := benchCodec(b)
	data := benchData(benchChunk, false)
	id := c.blobID(BlobData, data)
	sealed := c.sealBlob(nil, BlobData, id, data, CompressionAuto)
	const blobs = DefaultPackSize / benchChunk
	dir := b.TempDir()
	b.SetBytes(int64(blobs * len(sealed)))
	for b.Loop() {
		p, err := newPackBuilder(dir, nil, BlobData)
		if err != nil {
			b.Fatal(err)
		}
		for i := range blobs {
			id[0] = byte(i) // distinct entries, same bytes
			mustAdd(b, p, BlobData, id, sealed, len(data))
		}
		if _, err := p.finish(c); err != nil {
			b.Fatal(err)
		}
		p.discard()
	}
}
