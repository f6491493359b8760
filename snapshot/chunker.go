package snapshot

import (
	"io"
	"math/bits"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"

	"github.com/cofferhq/coffer/repo"
)

// gearChunkerName registers gearChunker with go-cdc-chunkers, so that
// tests can cut with it and with the library's own fastcdc-v1.0.0 alike.
const gearChunkerName = "coffer/" + repo.ChunkerAlgorithm

func init() {
	if err := chunkers.Register(gearChunkerName, func() chunkers.ChunkerImplementation { return &gearChunker{} }); err != nil {
		panic(err) // the name is coffer's own: registered once
	}
}

// gearChunker cuts exactly where go-cdc-chunkers' repo.ChunkerAlgorithm
// (fastcdc-v1.0.0) cuts, with the same Gear table (the library derives it
// from the repository's chunker key) and the same masks, in a faster loop:
// the table held in a local, the normal size tested outside the loop, and
// two bytes rolled per step, so that the fingerprint's dependency chain is
// one shift and one add per two bytes (the fingerprint in between is still
// tested). It is faster than the library's own loop (BenchmarkChunker;
// the figures are in docs/benchmarks.md, "Microbenchmarks"). Chunking one
// file runs on one core, so this loop bounds how fast a large changed file
// is backed up. TestGearChunkerMatchesLibrary checks the cut
// points against the library's.
type gearChunker struct {
	gear         *[256]uint64
	maskS, maskL uint64
}

// DefaultOptions are the library's.
func (c *gearChunker) DefaultOptions() *chunkers.ChunkerOpts {
	return (&fastcdc.FastCDC{}).DefaultOptions()
}

// Validate accepts what the library's fastcdc-v1.0.0 accepts.
func (c *gearChunker) Validate(o *chunkers.ChunkerOpts) error {
	return (&fastcdc.FastCDC{}).Validate(o)
}

// Setup fills in default sizes, derives the Gear table as the library does
// and computes the library's masks for fastcdc-v1.0.0 (normalization level
// 2, or the fixed masks of the original paper's 2/8/64 KiB sizes).
func (c *gearChunker) Setup(o *chunkers.ChunkerOpts) error {
	var lib fastcdc.FastCDC
	if err := lib.Setup(o); err != nil {
		return err
	}
	c.gear = lib.G
	if o.MinSize == 2<<10 && o.MaxSize == 64<<10 && o.NormalSize == 8<<10 {
		c.maskS, c.maskL = 0x0003590703530000, 0x0000d90003530000
		return nil
	}
	const normalLevel = 2
	normalBits := bits.Len(uint(o.NormalSize)) - 1 // Validate: a power of two
	c.maskS = spacedMask(normalBits + normalLevel)
	c.maskL = spacedMask(normalBits - normalLevel)
	return nil
}

// spacedMask spreads ones 1 bits evenly over a 64-bit word from the top, as
// the library's generateSpacedMask does.
func spacedMask(ones int) uint64 {
	switch {
	case ones >= 64:
		return ^uint64(0)
	case ones <= 0:
		return 0
	}
	step := 64 / ones
	var mask uint64
	for i := range ones {
		mask |= 1 << (63 - i*step)
	}
	return mask
}

// Algorithm returns the length of the chunk at the start of data[:n]: the
// first position from the minimum size on whose fingerprint has no bit of
// the mask set (the stricter mask before the normal size), or n, at most
// the maximum size. It is next, fed the chunk whole.
func (c *gearChunker) Algorithm(o *chunkers.ChunkerOpts, data []byte, n int) int {
	if n <= o.MinSize {
		return n
	}
	n = min(n, o.MaxSize)
	scanned, fp := o.MinSize, uint64(0)
	if cut := c.next(o, data[:n], &scanned, &fp); cut > 0 { // data[:n] fails as the library's loop would if data is short
		return cut
	}
	return n
}

// next continues cutting the chunk at the start of data: *scanned of its
// bytes have been fed to the fingerprint *fp (from the minimum size on,
// and *scanned starts there). It feeds it the rest of data, and returns the
// chunk's length once a cut point or the maximum size is reached, else 0:
// the chunk goes on past data, or data is the stream's last chunk. Fed a
// chunk in pieces, it cuts where Algorithm cuts it whole.
func (c *gearChunker) next(o *chunkers.ChunkerOpts, data []byte, scanned *int, fp *uint64) int {
	n := min(len(data), o.MaxSize)
	if *scanned < o.NormalSize && *scanned < n {
		end := min(n, o.NormalSize)
		if i, found := roll(c.gear, fp, c.maskS, data[*scanned:end]); found {
			return *scanned + i
		}
		*scanned = end
	}
	if *scanned >= o.NormalSize && *scanned < n {
		if i, found := roll(c.gear, fp, c.maskL, data[*scanned:n]); found {
			return *scanned + i
		}
		*scanned = n
	}
	if n == o.MaxSize {
		return n
	}
	return 0
}

// chunkStep is how much a chunkReader reads at a time past a chunk's
// minimum size (a quarter of the normal size, if less): what it reads past
// a cut, at most this, is all it copies.
const chunkStep = 128 << 10

// A chunkReader cuts a stream at gearChunker's cut points, reading each
// chunk straight into the buffer that is handed on with it. A window the
// chunks are cut from, as go-cdc-chunkers' Chunker keeps, has each chunk
// copied out of it to be handed on: that copy was 0.17 s of a 1.4 s CPU
// profile of a backup that read one changed 256 MiB file again
// (docs/benchmarks.md).
type chunkReader struct {
	cut  gearChunker
	opts chunkers.ChunkerOpts // with the defaults filled in
	// bufSize is the size of the buffers chunks start in: twice the
	// normal size, which all but about 2% of chunks fit; a longer chunk
	// moves to a larger buffer.
	bufSize int
	step    int // how much is read at a time past the minimum size
}

// newChunkReader returns a chunkReader cutting as o says.
func newChunkReader(o chunkers.ChunkerOpts) (*chunkReader, error) {
	c := &chunkReader{opts: o}
	if err := c.cut.Validate(&c.opts); err != nil {
		return nil, err
	}
	if err := c.cut.Setup(&c.opts); err != nil {
		return nil, err
	}
	c.bufSize = min(2*c.opts.NormalSize, c.opts.MaxSize)
	c.step = max(1, min(chunkStep, c.opts.NormalSize/4))
	return c, nil
}

// split reads r to its end and hands each chunk to emit, as the first n
// bytes of a buffer from get (which returns a buffer of at least n bytes);
// emit owns the buffer from then on, even when it fails. Buffers split no
// longer needs go back to put. It returns how many bytes it read.
func (c *chunkReader) split(r io.Reader, get func(n int) *[]byte, put func(*[]byte), emit func(b *[]byte, n int) error) (int64, error) {
	o := &c.opts
	var read int64
	buf, n, eof := get(c.bufSize), 0, false
	for {
		var (
			length  int
			scanned = o.MinSize
			fp      uint64
		)
		for length == 0 {
			if !eof {
				// The minimum size at once, since it is not scanned, then
				// a step at a time.
				want := min(max(o.MinSize, n+c.step), o.MaxSize)
				if want > len(*buf) {
					larger := get(min(max(2*len(*buf), want), o.MaxSize))
					copy(*larger, (*buf)[:n])
					put(buf)
					buf = larger
				}
				m, err := io.ReadFull(r, (*buf)[n:want])
				n += m
				read += int64(m)
				switch {
				case err == io.EOF || err == io.ErrUnexpectedEOF:
					eof = true
				case err != nil:
					put(buf)
					return read, err
				}
			}
			length = c.cut.next(o, (*buf)[:n], &scanned, &fp)
			if length == 0 && eof {
				if n == 0 {
					put(buf)
					return read, nil
				}
				length = n
			}
		}
		rest := n - length
		var next *[]byte
		if rest > 0 || !eof {
			next = get(max(c.bufSize, rest))
			copy(*next, (*buf)[length:n])
		}
		if err := emit(buf, length); err != nil {
			if next != nil {
				put(next)
			}
			return read, err
		}
		if next == nil {
			return read, nil
		}
		buf, n = next, rest
	}
}

// roll feeds data into the fingerprint *fp and returns the index of the
// first byte after which the fingerprint has no bit of mask set.
func roll(gear *[256]uint64, fp *uint64, mask uint64, data []byte) (int, bool) {
	h := *fp
	i := 0
	for ; i+1 < len(data); i += 2 {
		g0, g1 := gear[data[i]], gear[data[i+1]]
		h0 := h<<1 + g0
		h = h<<2 + (g0<<1 + g1) // = h0<<1 + g1, without waiting for h0
		if h0&mask == 0 {
			return i, true
		}
		if h&mask == 0 {
			return i + 1, true
		}
	}
	if i < len(data) {
		h = h<<1 + gear[data[i]]
		if h&mask == 0 {
			return i, true
		}
	}
	*fp = h
	return len(data), false
}
