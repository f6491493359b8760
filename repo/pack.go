package repo

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Pack layout (docs/format.md, "Packs"):
//
//	sealed blob 1 | ... | sealed blob n | padding | sealed trailer | tail
//
// tail is 8 bytes: the sealed trailer's length (uint32, little endian) and
// the magic "CPK" followed by the pack format version.
const (
	packVersion  = 1
	packTailSize = 8
	// maxTrailerSize bounds the sealed trailer so a hostile length cannot
	// make a reader allocate without limit.
	maxTrailerSize = 64 << 20
	// trailerEntryMax is the largest encoding of one trailer entry.
	trailerEntryMax = 1 + len(ID{}) + 3*binary.MaxVarintLen64
)

var packMagic = [4]byte{'C', 'P', 'K', packVersion}

// PackEntry describes one blob inside a pack.
type PackEntry struct {
	ID        ID
	Type      BlobType
	Offset    uint32 // of the sealed blob from the start of the pack
	Length    uint32 // of the sealed blob
	RawLength uint32 // of the plaintext
}

// packBuilder accumulates sealed blobs for one pack.
type packBuilder struct {
	buf     []byte
	entries []PackEntry
}

func (p *packBuilder) add(t BlobType, id ID, sealed []byte, rawLen int) {
	p.entries = append(p.entries, PackEntry{ID: id, Type: t, Offset: uint32(len(p.buf)),
		Length: uint32(len(sealed)), RawLength: uint32(rawLen)})
	p.buf = append(p.buf, sealed...)
}

// finish appends padding, the sealed trailer and the tail, and returns the
// pack's bytes and name (the SHA-256 of those bytes).
func (p *packBuilder) finish(c *codec) ([]byte, ID) {
	trailer := encodeTrailer(p.entries)
	sealedLen := len(trailer) + sealOverhead
	pad := paddingFor(len(p.buf) + sealedLen + packTailSize)
	start := len(p.buf)
	p.buf = append(p.buf, make([]byte, pad)...)
	// Random, not zero, so the padding cannot be told from ciphertext.
	_, _ = rand.Read(p.buf[start:])
	p.buf = c.seal(p.buf, trailer, objectAD("pack trailer", packVersion))
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(sealedLen))
	p.buf = append(p.buf, packMagic[:]...)
	return p.buf, sha256.Sum256(p.buf)
}

// paddingFor returns how many bytes to add to a pack of n bytes so that its
// size is a multiple of 2^(floor(log2 n)-9), at least 4 KiB: the stored size
// then reveals about 9 significant bits, and padding costs under 0.2%.
func paddingFor(n int) int {
	if n <= 0 {
		return 0
	}
	step := 4096
	if shift := bits.Len(uint(n)) - 1 - 9; shift > 12 {
		step = 1 << shift
	}
	return (step - n%step) % step
}

func encodeTrailer(entries []PackEntry) []byte {
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(entries)*trailerEntryMax)
	out = append(out, packVersion)
	out = binary.AppendUvarint(out, uint64(len(entries)))
	for _, e := range entries {
		out = appendPackEntry(out, e)
	}
	return out
}

// appendPackEntry encodes one entry as trailers and indexes store it:
// type u8 | id [32] | offset uvarint | length uvarint | raw length uvarint.
func appendPackEntry(out []byte, e PackEntry) []byte {
	out = append(out, byte(e.Type))
	out = append(out, e.ID[:]...)
	out = binary.AppendUvarint(out, uint64(e.Offset))
	out = binary.AppendUvarint(out, uint64(e.Length))
	return binary.AppendUvarint(out, uint64(e.RawLength))
}

// minEntrySize is the smallest encoding of an entry; it bounds entry counts
// read from untrusted input before anything is allocated.
const minEntrySize = 1 + len(ID{}) + 3

// packEntry decodes one entry written by appendPackEntry, checking that the
// sealed blob lies within the first dataEnd bytes of its pack.
func (r *byteReader) packEntry(dataEnd int64) PackEntry {
	e := PackEntry{Type: BlobType(r.byte())}
	e.ID = r.id()
	off, length, raw := r.uvarint(), r.uvarint(), r.uvarint()
	switch {
	case r.err != nil:
	case e.Type != BlobData && e.Type != BlobTree:
		r.err = fmt.Errorf("unknown blob type %d", e.Type)
	case off > 1<<32-1 || length > 1<<32-1 || raw > MaxBlobSize || length < sealOverhead+1:
		r.err = errors.New("invalid offset or length")
	case int64(off)+int64(length) > dataEnd:
		r.err = fmt.Errorf("blob at %d+%d lies outside the pack's %d data bytes", off, length, dataEnd)
	}
	e.Offset, e.Length, e.RawLength = uint32(off), uint32(length), uint32(raw)
	return e
}

// parsePackTail validates the last packTailSize bytes of a pack of the given
// size and returns the length of the sealed trailer before them.
func parsePackTail(tail []byte, packSize int64) (int, error) {
	if len(tail) != packTailSize || packSize < packTailSize {
		return 0, errors.New("pack is too short to hold a trailer")
	}
	var magic [4]byte
	copy(magic[:], tail[4:])
	if [3]byte(magic[:3]) != [3]byte{'C', 'P', 'K'} {
		return 0, errors.New("pack tail has no CPK magic")
	}
	if magic[3] > packVersion {
		return 0, fmt.Errorf("pack format version %d: %w", magic[3], ErrNewerFormat)
	}
	if magic != packMagic {
		return 0, fmt.Errorf("unknown pack format version %d", magic[3])
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n < sealOverhead || n > maxTrailerSize || n > packSize-packTailSize {
		return 0, fmt.Errorf("trailer length %d does not fit a %d-byte pack", n, packSize)
	}
	return int(n), nil
}

// decodeTrailer parses a trailer's plaintext and checks every entry lies
// within the first dataEnd bytes of the pack without overlapping another.
func decodeTrailer(b []byte, dataEnd int64) ([]PackEntry, error) {
	if len(b) == 0 {
		return nil, errors.New("empty trailer")
	}
	if b[0] != packVersion {
		return nil, fmt.Errorf("unknown trailer version %d", b[0])
	}
	r := byteReader{b: b[1:]}
	n := r.uvarint()
	if n > uint64(len(r.b)/minEntrySize) {
		return nil, fmt.Errorf("entry count %d exceeds the trailer size", n)
	}
	entries := make([]PackEntry, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		e := r.packEntry(dataEnd)
		if r.err == nil && i > 0 && int64(entries[i-1].Offset)+int64(entries[i-1].Length) > int64(e.Offset) {
			r.err = fmt.Errorf("entries %d and %d overlap or are out of order", i-1, i)
		}
		entries = append(entries, e)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after the entries", len(r.b))
	}
	return entries, nil
}
