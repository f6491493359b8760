package snapshot

import (
	"math/bits"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"

	"github.com/cofferhq/coffer/repo"
)

// gearChunkerName registers gearChunker with go-cdc-chunkers, whose
// Chunker (buffering, peeking, discarding) the archiver keeps using.
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
// the maximum size.
func (c *gearChunker) Algorithm(o *chunkers.ChunkerOpts, data []byte, n int) int {
	minSize, normal := o.MinSize, o.NormalSize
	switch {
	case n <= minSize:
		return n
	case n >= o.MaxSize:
		n = o.MaxSize
	case n <= normal:
		normal = n
	}
	data = data[:n] // fails as the library's loop would if data is short
	var fp uint64
	if i, found := roll(c.gear, &fp, c.maskS, data[minSize:normal]); found {
		return minSize + i
	}
	if i, found := roll(c.gear, &fp, c.maskL, data[normal:]); found {
		return normal + i
	}
	return n
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
