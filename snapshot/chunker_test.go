package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"

	"github.com/cofferhq/coffer/repo"
)

// TestGearChunkerMatchesLibrary cuts the same inputs with the archiver's
// chunker and with go-cdc-chunkers' fastcdc-v1.0.0, whose cut points are
// part of the repository format: they must be the same, for coffer's
// sizes and others (the library's fixed masks for 2/8/64 KiB among them),
// with and without a key, on data from random to constant, and for inputs
// of every length parity.
func TestGearChunkerMatchesLibrary(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, 32)
	sizes := []struct{ min, avg, max int }{
		{repo.DefaultChunkMin, repo.DefaultChunkAvg, repo.DefaultChunkMax},
		{2 << 10, 8 << 10, 64 << 10},
		{4 << 10, 16 << 10, 128 << 10},
		{64, 256, 1024},
		{1000, 4096, 10000}, // not powers of two, apart from the average
		{65, 128, 1001},     // odd gaps: min to avg, avg to max
		{1001, 4096, 9999},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := map[string]func(n int) []byte{
		"random": func(n int) []byte {
			b := make([]byte, n)
			_, _ = rand.NewChaCha8([32]byte{7}).Read(b)
			return b
		},
		"four symbols": func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = "ACGT"[rng.IntN(4)]
			}
			return b
		},
		"text": func(n int) []byte {
			var buf bytes.Buffer
			for i := 0; buf.Len() < n; i++ {
				fmt.Fprintf(&buf, "line %d: the quick brown fox %d\n", i, i*i%977)
			}
			return buf.Bytes()[:n]
		},
		"zeros": func(n int) []byte { return make([]byte, n) },
	}
	for _, sz := range sizes {
		for name, gen := range inputs {
			for _, k := range [][]byte{key, nil} {
				// Enough for dozens of chunks, of odd length.
				n := 40*sz.avg + 12345
				data := gen(n)
				t.Run(fmt.Sprintf("%d-%d-%d/%s/keyed=%v", sz.min, sz.avg, sz.max, name, k != nil), func(t *testing.T) {
					want := cutPoints(t, repo.ChunkerAlgorithm, data, sz.min, sz.avg, sz.max, k)
					got := cutPoints(t, gearChunkerName, data, sz.min, sz.avg, sz.max, k)
					if !slices.Equal(got, want) {
						t.Fatalf("chunk lengths differ from the library's:\n got %v\nwant %v", got, want)
					}
					if len(want) < 2 {
						t.Fatalf("only %d chunks: the input does not exercise the cut points", len(want))
					}
				})
			}
		}
	}
}

// TestGearChunkerEveryLength compares the first cut of the archiver's
// chunker and the library's for every input length from empty to past the
// maximum, so that every split of the two rolling loops (each starting at
// an even or odd offset, of even or odd length) is taken.
func TestGearChunkerEveryLength(t *testing.T) {
	key := bytes.Repeat([]byte{0xa5}, 32)
	for _, sz := range []struct{ min, avg, max int }{{65, 128, 1001}, {64, 256, 1024}, {1001, 4096, 9999}} {
		for _, symbols := range []int{2, 256} {
			data := make([]byte, sz.max+50)
			rng := rand.New(rand.NewPCG(uint64(sz.max), uint64(symbols)))
			for i := range data {
				data[i] = byte(rng.IntN(symbols))
			}
			for n := 0; n <= len(data); n++ {
				want := firstCut(t, repo.ChunkerAlgorithm, data[:n], sz.min, sz.avg, sz.max, key)
				got := firstCut(t, gearChunkerName, data[:n], sz.min, sz.avg, sz.max, key)
				if got != want {
					t.Fatalf("sizes %v, %d symbols, %d bytes: first chunk %d bytes, the library's %d", sz, symbols, n, got, want)
				}
			}
		}
	}
}

// firstCut returns the length of the first chunk algorithm cuts from data.
func firstCut(t *testing.T, algorithm string, data []byte, min, avg, max int, key []byte) int {
	t.Helper()
	opts := chunkers.ChunkerOpts{MinSize: min, NormalSize: avg, MaxSize: max, Key: key}
	ch, err := chunkers.NewChunker(algorithm, bytes.NewReader(data), &opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ch.Next()
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return len(c)
}

// cutPoints returns the chunk lengths algorithm cuts data into.
func cutPoints(t *testing.T, algorithm string, data []byte, min, avg, max int, key []byte) []int {
	t.Helper()
	opts := chunkers.ChunkerOpts{MinSize: min, NormalSize: avg, MaxSize: max, Key: key}
	ch, err := chunkers.NewChunker(algorithm, bytes.NewReader(data), &opts)
	if err != nil {
		t.Fatal(err)
	}
	var lengths []int
	for {
		c, err := ch.Next()
		if len(c) > 0 {
			lengths = append(lengths, len(c))
		}
		if err == io.EOF {
			return lengths
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestChunkReaderMatchesLibrary cuts streams with chunkReader, as the
// archiver does, and with go-cdc-chunkers' fastcdc-v1.0.0: the chunks must
// be the same, whatever the reader returns per read, and every buffer the
// chunkReader takes must be handed on with a chunk or given back. Chunks
// start in buffers of their own, so that about one buffer is taken per
// chunk.
func TestChunkReaderMatchesLibrary(t *testing.T) {
	key := bytes.Repeat([]byte{0x3c}, 32)
	sizes := []struct{ min, avg, max int }{
		{repo.DefaultChunkMin, repo.DefaultChunkAvg, repo.DefaultChunkMax},
		{64, 256, 1024},
		{65, 128, 1001},
		{1001, 4096, 9999},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":       func(r io.Reader) io.Reader { return r },
		"one byte":    iotest.OneByteReader,
		"half":        iotest.HalfReader,
		"odd lengths": func(r io.Reader) io.Reader { return &unevenReader{r: r} },
	}
	for _, sz := range sizes {
		for _, n := range []int{0, 1, sz.min - 1, sz.min, sz.min + 1, sz.max, sz.max + 1, 30*sz.avg + 777} {
			data := make([]byte, n)
			_, _ = rand.NewChaCha8([32]byte{byte(n), byte(sz.min)}).Read(data)
			if sz.min < 1000 {
				// Long runs of a constant make chunks of the maximum size.
				clear(data[n/3 : n/2])
			}
			want := cutPoints(t, repo.ChunkerAlgorithm, data, sz.min, sz.avg, sz.max, key)
			for name, wrap := range readers {
				if name == "one byte" && n > 1<<20 {
					continue // the same cuts, read a byte at a time: slow
				}
				t.Run(fmt.Sprintf("%d-%d-%d/%d/%s", sz.min, sz.avg, sz.max, n, name), func(t *testing.T) {
					c, err := newChunkReader(chunkers.ChunkerOpts{MinSize: sz.min, NormalSize: sz.avg, MaxSize: sz.max, Key: key})
					if err != nil {
						t.Fatal(err)
					}
					out := map[*[]byte]bool{}
					gets := 0
					get := func(n int) *[]byte {
						gets++
						b := make([]byte, n)
						out[&b] = true
						return &b
					}
					put := func(b *[]byte) {
						if !out[b] {
							t.Fatalf("a buffer given back twice, or not taken")
						}
						delete(out, b)
					}
					var got []int
					var joined []byte
					read, err := c.split(wrap(bytes.NewReader(data)), get, put, func(b *[]byte, n int) error {
						put(b)
						got = append(got, n)
						joined = append(joined, (*b)[:n]...)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if read != int64(n) || !bytes.Equal(joined, data) {
						t.Fatalf("read %d bytes, handed on %d: not the %d bytes of the stream", read, len(joined), n)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("chunk lengths differ from the library's:\n got %v\nwant %v", got, want)
					}
					if len(out) != 0 {
						t.Errorf("%d buffers neither handed on nor given back", len(out))
					}
					if limit := len(want) + len(want)/10 + 2; gets > limit {
						t.Errorf("took %d buffers for %d chunks; want at most %d", gets, len(want), limit)
					}
				})
			}
		}
	}
}

// A chunkReader's errors are the reader's, and emit's, and it gives back
// the buffers it holds when it stops on one.
func TestChunkReaderErrors(t *testing.T) {
	c, err := newChunkReader(chunkers.ChunkerOpts{MinSize: 64, NormalSize: 256, MaxSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 10000)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	failed := errors.New("injected")
	for _, tc := range []struct {
		name   string
		r      io.Reader
		failAt int // emit fails on this chunk, from 1; 0 never
	}{
		{"reader", io.MultiReader(bytes.NewReader(data[:3000]), iotest.ErrReader(failed)), 0},
		{"emit", bytes.NewReader(data), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := 0
			get := func(n int) *[]byte { held++; b := make([]byte, n); return &b }
			put := func(*[]byte) { held-- }
			emitted := 0
			_, err := c.split(tc.r, get, put, func(b *[]byte, n int) error {
				put(b)
				if emitted++; emitted == tc.failAt {
					return failed
				}
				return nil
			})
			if !errors.Is(err, failed) {
				t.Fatalf("split returned %v, want the injected error", err)
			}
			if held != 0 {
				t.Errorf("%d buffers held after the error", held)
			}
		})
	}
}

// unevenReader returns reads of 1, 2, 3, ... 17 bytes, over and over.
type unevenReader struct {
	r io.Reader
	n int
}

func (u *unevenReader) Read(p []byte) (int, error) {
	u.n = u.n%17 + 1
	return u.r.Read(p[:min(len(p), u.n)])
}
