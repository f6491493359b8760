package snapshot

// Microbenchmark of content-defined chunking as the archiver does it
// (keyed FastCDC, 512 KiB min / 1 MiB average / 8 MiB max), next to this
// machine's SHA-256 rate measured in the same run:
//
//	go test -run '^$' -bench . -benchtime 2s ./repo ./snapshot

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
)

const benchInput = 64 << 20

// BenchmarkLimitSHA256 is the machine's SHA-256 rate, for comparison.
func BenchmarkLimitSHA256(b *testing.B) {
	data := testutil.RandomBytes(2, repo.DefaultChunkAvg)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}

// BenchmarkChunker cuts 64 MiB of random data into chunks with the
// archiver's settings: as the archiver's readers do, with chunkReader
// handing each chunk on in a pooled buffer of its own (reader); and
// through go-cdc-chunkers' Chunker, whose chunks are slices of its window,
// with coffer's loop (coffer) and with the library's, which it reproduces
// (library).
func BenchmarkChunker(b *testing.B) {
	b.Run("reader", benchChunkReader)
	b.Run("coffer", func(b *testing.B) { benchChunker(b, gearChunkerName) })
	b.Run("library", func(b *testing.B) { benchChunker(b, repo.ChunkerAlgorithm) })
}

func benchChunkReader(b *testing.B) {
	data := testutil.RandomBytes(2, benchInput)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	c, err := newChunkReader(chunkers.ChunkerOpts{MinSize: repo.DefaultChunkMin, NormalSize: repo.DefaultChunkAvg, MaxSize: repo.DefaultChunkMax, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	var pool []*[]byte
	get := func(n int) *[]byte {
		if len(pool) > 0 {
			p := pool[len(pool)-1]
			pool = pool[:len(pool)-1]
			if cap(*p) >= n {
				*p = (*p)[:n]
				return p
			}
		}
		buf := make([]byte, n)
		return &buf
	}
	put := func(p *[]byte) { pool = append(pool, p) }
	b.SetBytes(int64(len(data)))
	var chunks int
	for b.Loop() {
		if _, err := c.split(bytes.NewReader(data), get, put, func(p *[]byte, _ int) error {
			chunks++
			put(p)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchInput)*float64(b.N)/float64(chunks)/(1<<20), "MiB/chunk")
}

func benchChunker(b *testing.B, algorithm string) {
	data := testutil.RandomBytes(2, benchInput)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	opts := chunkers.ChunkerOpts{MinSize: repo.DefaultChunkMin, NormalSize: repo.DefaultChunkAvg, MaxSize: repo.DefaultChunkMax, Key: key}
	ch, err := chunkers.NewChunkerBuffer(algorithm, nil, &opts, make([]byte, 2*repo.DefaultChunkMax))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	var chunks int
	for b.Loop() {
		ch.Reset(bytes.NewReader(data))
		for {
			c, err := ch.Next()
			if len(c) > 0 {
				chunks++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(benchInput)*float64(b.N)/float64(chunks)/(1<<20), "MiB/chunk")
}

// BenchmarkDecodeTree decodes a tree of 64 files as a backup of source
// code stores them; it bounds how fast a walk (restore's plan, ls -r,
// an incremental backup's parent) reads trees.
func BenchmarkDecodeTree(b *testing.B) {
	tb := benchTree()
	enc, err := encodeTree(tb)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := decodeTree(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tb.Nodes)), "ns/node")
}

// benchTree is a tree of 64 files as a backup of source code stores them.
func benchTree() treeBlob {
	tb := treeBlob{Version: treeVersion}
	mtime := time.Date(2026, 11, 27, 12, 34, 56, 789012345, time.UTC)
	for i := range 64 {
		tb.Nodes = append(tb.Nodes, &Node{
			Name: fmt.Sprintf("file_%03d.go", i), Type: TypeFile, Mode: 0o644, UID: 1000, GID: 1000,
			User: "builder", Group: "builder", ModTime: mtime, ChangeTime: mtime,
			Inode: 1<<20 + uint64(i), Device: 2049, Links: 1, Size: 4096 + int64(i),
			Content: []Extent{{ID: repo.ID{byte(i), 1}, Size: 4096 + int64(i)}},
		})
	}
	return tb
}

// BenchmarkEncodeTree encodes a tree of 64 files as a backup of source
// code stores them; a backup encodes the tree of every directory with a
// changed entry.
func BenchmarkEncodeTree(b *testing.B) {
	tb := benchTree()
	for b.Loop() {
		if _, err := encodeTree(tb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tb.Nodes)), "ns/node")
}
