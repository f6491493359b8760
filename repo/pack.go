package repo

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cofferhq/coffer/storage"
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

// packBuilder writes sealed blobs for one pack into a temporary file, so
// that a backup's memory does not grow with the pack size or with the
// number of packs being uploaded at once.
type packBuilder struct {
	f *os.File
	// w buffers writes to f: a pack of small files' blobs would otherwise
	// cost a write system call per blob, under the saver's lock.
	w *bufio.Writer
	// fp, when not nil, made f, which is then handed over to it whole
	// (a local store renames it into place); otherwise f is unlinked and
	// its bytes are copied to the store.
	fp storage.FilePutter
	// inTMPDIR says that f is in the temporary directory, where the user
	// makes room by pointing TMPDIR elsewhere; otherwise it is on the
	// store's own file system (a local repository's tmp/).
	inTMPDIR bool
	blobs    BlobType // of every blob in the pack
	// sum hashes every byte as it is written: the finished pack's name
	// is the SHA-256 of its bytes. Hashed here, under the saver's lock,
	// while each blob just sealed is still in the CPU's caches, rather
	// than read back from the finished file by the uploader: that ran at
	// half the speed, and backups of large files took 20-25% longer
	// (docs/benchmarks-log.md, "Packs hashed as they are written").
	sum     hash.Hash
	size    int64
	entries []PackEntry
	// entryBytes is the encoded size of entries in the trailer, which
	// with size tells what the finished pack will take.
	entryBytes int
}

// newPackBuilder starts a pack of blobs of one type in a file from fp, or
// when fp is nil in a temporary file in dir (os.TempDir() when empty).
func newPackBuilder(dir string, fp storage.FilePutter, blobs BlobType) (*packBuilder, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if fp != nil {
		f, err := fp.CreateTemp()
		if err != nil {
			// The store's error says where: its repository, or the
			// temporary directory where a registry store keeps packs
			// until they are referenced.
			var pe *os.PathError
			inTMPDIR := errors.As(err, &pe) && filepath.Dir(pe.Path) == filepath.Clean(dir)
			where := "the store's directory"
			if inTMPDIR {
				where = dir
			}
			return nil, tempFileError("creating a pack file", where, err, inTMPDIR)
		}
		// A registry store's files are in TMPDIR (unlinked, so their
		// name is only a hint); a local store's in its repository.
		inTMPDIR := filepath.Dir(f.Name()) == filepath.Clean(dir)
		return &packBuilder{f: f, w: bufio.NewWriterSize(f, packWriteBuffer), fp: fp, inTMPDIR: inTMPDIR, blobs: blobs, sum: sha256.New()}, nil
	}
	f, err := os.CreateTemp(dir, "coffer-pack-*")
	if err != nil {
		return nil, tempFileError("creating a temporary pack file", dir, err, true)
	}
	// Unlinked at once: the system frees it however the process ends, and
	// nothing else ever sees a half-written pack.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, tempFileError("creating a temporary pack file", dir, err, true)
	}
	return &packBuilder{f: f, w: bufio.NewWriterSize(f, packWriteBuffer), inTMPDIR: true, blobs: blobs, sum: sha256.New()}, nil
}

// packWriteBuffer is how much of a pack is gathered before it is written
// to its file.
const packWriteBuffer = 1 << 20

// tempFileError explains a failure to write a pack file, telling the user
// how to make room when the file system is full: TMPDIR, when the file is
// a temporary one there, or the store's own file system.
func tempFileError(op, dir string, err error, inTMPDIR bool) error {
	if dir == "" {
		dir = os.TempDir()
	}
	if inTMPDIR && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrPermission)) {
		return fmt.Errorf("%s in %s (TMPDIR): %w; set TMPDIR to a directory that exists and that you can write to", op, dir, err)
	}
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s in %s: %w", op, dir, err)
	}
	if inTMPDIR {
		return fmt.Errorf("%s in %s: %w; set TMPDIR to a directory with more room", op, dir, ErrNoTempSpace)
	}
	return fmt.Errorf("%s in %s: %w; free space on the repository's file system", op, dir, ErrNoTempSpace)
}

func (p *packBuilder) add(t BlobType, id ID, sealed []byte, rawLen int) error {
	if err := p.write(sealed); err != nil {
		return tempFileError("writing a pack file", filepath.Dir(p.f.Name()), err, p.inTMPDIR)
	}
	e := PackEntry{ID: id, Type: t, Offset: uint32(p.size), Length: uint32(len(sealed)), RawLength: uint32(rawLen)}
	p.entries = append(p.entries, e)
	p.entryBytes += packEntrySize(e)
	p.size += int64(len(sealed))
	return nil
}

// write appends b to the pack file and to its hash; every byte of the
// pack goes through it. Small blobs are gathered in w; a large one (a
// chunk of a large file, 1 MiB on average) goes to the file from the
// caller's buffer, after what w holds: through w it would be copied once
// more, for nothing, under the saver's lock.
func (p *packBuilder) write(b []byte) error {
	p.sum.Write(b)
	if len(b) < directWriteMin {
		_, err := p.w.Write(b)
		return err
	}
	if err := p.w.Flush(); err != nil {
		return err
	}
	_, err := p.f.Write(b)
	return err
}

// directWriteMin is the size from which a sealed blob bypasses the pack
// file's buffer: a quarter of it, so that a pack makes at most four write
// system calls per buffer's worth, and a pack of a large file's chunks
// about one per chunk, as many as through the buffer.
const directWriteMin = packWriteBuffer / 4

// sizeWith returns the stored size the pack would have, once finished,
// with one more sealed blob of sealedLen bytes (rawLen of plaintext).
func (p *packBuilder) sizeWith(sealedLen, rawLen int) int64 {
	e := PackEntry{Offset: uint32(p.size), Length: uint32(sealedLen), RawLength: uint32(rawLen)}
	return finishedPackSize(p.size+int64(sealedLen), len(p.entries)+1, p.entryBytes+packEntrySize(e))
}

// packEntrySize returns the length of appendPackEntry's encoding of e.
func packEntrySize(e PackEntry) int {
	return 1 + len(e.ID) + uvarintLen(uint64(e.Offset)) + uvarintLen(uint64(e.Length)) + uvarintLen(uint64(e.RawLength))
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// finishedPackSize returns the stored size of a pack whose blobs take
// data bytes, with n trailer entries taking entryBytes: what finish
// writes, padding included.
func finishedPackSize(data int64, n, entryBytes int) int64 {
	size := data + int64(1+uvarintLen(uint64(n))+entryBytes+sealOverhead+packTailSize)
	return size + int64(paddingFor(int(size)))
}

// MaxBlobInPack returns the largest plaintext a blob may have for a pack
// holding it alone to stay within packSize bytes: the pack size less the
// blob's sealing, a one-entry trailer, the tail and the most padding
// such a pack gets. Backups split larger chunks into pieces of this size.
func MaxBlobInPack(packSize int) int {
	trailer := 1 + 1 + trailerEntryMax + sealOverhead + packTailSize
	maxPadding := max(4096, packSize>>9) // paddingFor's step, at most
	return packSize - (1 + sealOverhead) - trailer - maxPadding
}

// finish appends padding, the sealed trailer and the tail, and returns the
// pack's name: the SHA-256 of its bytes.
func (p *packBuilder) finish(c *codec) (ID, error) {
	trailer := encodeTrailer(p.entries)
	sealedLen := len(trailer) + sealOverhead
	pad := paddingFor(int(p.size) + sealedLen + packTailSize)
	end := make([]byte, pad, pad+sealedLen+packTailSize)
	// Random, not zero, so the padding cannot be told from ciphertext.
	_, _ = rand.Read(end)
	end = c.seal(end, trailer, objectAD("pack trailer", packVersion))
	end = binary.LittleEndian.AppendUint32(end, uint32(sealedLen))
	end = append(end, packMagic[:]...)
	err := p.write(end)
	if err == nil {
		err = p.w.Flush()
	}
	if err != nil {
		return ID{}, tempFileError("writing a pack file", filepath.Dir(p.f.Name()), err, p.inTMPDIR)
	}
	p.size += int64(len(end))
	return ID(p.sum.Sum(nil)), nil
}

// contents returns a reader of the pack's bytes written so far.
func (p *packBuilder) contents() *io.SectionReader { return io.NewSectionReader(p.f, 0, p.size) }

// store puts the finished pack in st under name, handing the file over
// when it came from the store.
func (p *packBuilder) store(ctx context.Context, st storage.Store, name string) error {
	if p.fp != nil {
		f := p.f
		p.f = nil // taken, whatever PutFile returns
		return p.fp.PutFile(ctx, storage.KindPack, name, f, p.size)
	}
	return st.Put(ctx, storage.KindPack, name, storage.NewBody(p.f, p.size))
}

// discard frees the file unless it was handed over.
func (p *packBuilder) discard() {
	if p.f == nil {
		return
	}
	p.f.Close()
	if p.fp != nil {
		os.Remove(p.f.Name())
	}
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
