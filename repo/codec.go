package repo

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// BlobType says what a blob holds. It is bound into the blob's associated
// data, so a tree cannot be passed off as file content or vice versa.
type BlobType uint8

// The blob types.
const (
	BlobData BlobType = 0 // a chunk of file content
	BlobTree BlobType = 1 // an encoded directory
)

func (t BlobType) String() string {
	switch t {
	case BlobData:
		return "data"
	case BlobTree:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// Compression markers, the first plaintext byte of every sealed payload.
const (
	compressionNone byte = 0
	compressionZstd byte = 1
)

// Compression says how a writer compresses the blobs it stores. It is a
// writer's choice, not a repository setting: every sealed payload says
// whether it is compressed, so readers need no setting and blobs stored
// with different choices mix freely.
type Compression uint8

// The compression choices, named as restic names them.
const (
	// CompressionAuto is zstd at its default level; chunks whose first
	// 32 KiB do not compress are stored as they are. The default.
	CompressionAuto Compression = iota
	// CompressionOff stores every blob as it is (kopia's default).
	CompressionOff
	// CompressionFastest is zstd's fastest level.
	CompressionFastest
	// CompressionBetter is zstd's better-compression level: slower.
	CompressionBetter
	// CompressionMax is zstd's best-compression level: slowest.
	CompressionMax
	numCompressions
)

var compressionNames = [numCompressions]string{"auto", "off", "fastest", "better", "max"}

var compressionLevels = [numCompressions]zstd.EncoderLevel{
	CompressionAuto:    zstd.SpeedDefault,
	CompressionFastest: zstd.SpeedFastest,
	CompressionBetter:  zstd.SpeedBetterCompression,
	CompressionMax:     zstd.SpeedBestCompression,
}

// String returns the choice's name, as ParseCompression reads it.
func (c Compression) String() string {
	if c < numCompressions {
		return compressionNames[c]
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Validate reports whether c is one of the choices above.
func (c Compression) Validate() error {
	if c >= numCompressions {
		return fmt.Errorf("unknown compression %d: use %s", uint8(c), strings.Join(compressionNames[:], ", "))
	}
	return nil
}

// ParseCompression reads a compression choice by its name: auto, off,
// fastest, better or max.
func ParseCompression(name string) (Compression, error) {
	for c, n := range compressionNames {
		if n == name {
			return Compression(c), nil
		}
	}
	return 0, fmt.Errorf("unknown compression %q: use %s", name, strings.Join(compressionNames[:], ", "))
}

// codec compresses and seals payloads. It is safe for concurrent use.
type codec struct {
	*crypter
	enc [numCompressions]*encoderPool // nil for CompressionOff
	dec *zstd.Decoder
}

// encoderPool holds zstd encoders of one level, each used by one goroutine
// at a time, and at most GOMAXPROCS of them at once.
//
// A sync.Pool rather than one zstd.Encoder with a concurrency: an encoder
// keeps its hash tables (1.25 MiB at the default level, whatever the
// input's size) from call to call, and a sync.Pool hands a goroutine the
// encoder last put back on its own P, whose tables are likely still in
// the cache of the CPU that P last ran on. zstd.Encoder's own pool is a
// channel, which hands out the encoder returned first, often the one the
// other CPU just used. On small files, each looking up its tables at
// random, that cost an eighth of the CPU of a first backup of many small
// files (docs/benchmarks-log.md, "zstd encoders kept per CPU"). The slots
// bound how many encode at once, as zstd.Encoder's concurrency did, and
// with it memory: at the better and best levels each encoder's tables
// take megabytes, and with -compression max a backup's trees share the
// data's level. An encoder left unused for two garbage collections is
// freed, and the next one made allocates its tables again.
type encoderPool struct {
	pool  sync.Pool     // of *zstd.Encoder
	slots chan struct{} // one per encoder in use
}

// newEncoderPool returns a pool of encoders of the given level.
//
// Each encoder keeps a history buffer, by default twice its 8 MiB window.
// One chunk per EncodeAll (1 MiB on average) gains next to nothing from
// matches further back than 4 MiB, so a 4 MiB window kept once lowers
// peak memory without changing what is stored or the speed
// (docs/benchmarks.md, "Settings chosen by measurement"). Frames carry no
// content checksum: the AEAD already authenticates every byte and openBlob
// checks the plaintext against its id, so the checksum only cost 4 bytes
// and an xxhash per compressed blob (787 KB of 590 MB stored for a tree of
// 300,000 small files, docs/benchmarks.md).
func newEncoderPool(level zstd.EncoderLevel) (*encoderPool, error) {
	opts := []zstd.EOption{zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(4 << 20), zstd.WithLowerEncoderMem(true)}
	// Made once here so that bad options fail newCodec, not a backup.
	first, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, err
	}
	p := &encoderPool{slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	p.pool.New = func() any {
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			panic(err) // the same options made the first encoder
		}
		return enc
	}
	p.pool.Put(first)
	return p, nil
}

// get waits for a slot and returns an encoder; put gives both back.
func (p *encoderPool) get() *zstd.Encoder {
	p.slots <- struct{}{}
	return p.pool.Get().(*zstd.Encoder)
}

func (p *encoderPool) put(enc *zstd.Encoder) {
	p.pool.Put(enc)
	<-p.slots
}

func newCodec(k *masterKeys) (*codec, error) {
	c, err := newCrypter(k)
	if err != nil {
		return nil, err
	}
	// Each level has its own pool, and an encoder allocates its tables
	// when first used, so only the level a run chooses costs memory, plus
	// the default level for sealed objects (index, snapshot).
	cd := &codec{crypter: c}
	for comp, level := range compressionLevels {
		if Compression(comp) == CompressionOff {
			continue
		}
		if cd.enc[comp], err = newEncoderPool(level); err != nil {
			return nil, err
		}
	}
	// DecodeAll is safe for concurrent use; concurrency bounds how many
	// run at once, so it must match the pipeline's workers.
	cd.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	return cd, nil
}

// frame returns the compression marker followed by the payload, compressed
// as comp says when that makes it smaller. scratch is reused when large
// enough.
func (c *codec) frame(scratch, payload []byte, comp Compression) []byte {
	if comp == CompressionOff {
		return frameStored(scratch, payload)
	}
	pool := c.enc[comp]
	enc := pool.get()
	defer pool.put(enc)
	if len(payload) > 2*sampleSize && !compressible(enc, payload[:sampleSize]) {
		return frameStored(scratch, payload)
	}
	out := enc.EncodeAll(payload, append(scratch[:0], compressionZstd))
	if len(out) >= len(payload)+1 {
		return frameStored(out, payload)
	}
	return out
}

// frameStored returns the payload framed uncompressed, in dst's memory
// when it is large enough.
func frameStored(dst, payload []byte) []byte {
	return append(append(dst[:0], compressionNone), payload...)
}

// sampleSize is how much of a large payload is compressed first to tell
// whether the rest is worth the effort. Encrypted, compressed and media
// files fail the test at once, and then cost no compression at all.
const sampleSize = 32 << 10

// compressible reports whether enc shrinks sample by at least 2%.
func compressible(enc *zstd.Encoder, sample []byte) bool {
	buf := compressBufs.Get().(*[]byte)
	out := enc.EncodeAll(sample, (*buf)[:0])
	ok := len(out) < len(sample)-len(sample)/50
	*buf = out
	compressBufs.Put(buf)
	return ok
}

var compressBufs = sync.Pool{New: func() any { b := make([]byte, 0, sampleSize+sampleSize/8); return &b }}

// unframe undoes frame, appending the payload to dst. maxSize bounds the
// decompressed size so a hostile object cannot exhaust memory.
func (c *codec) unframe(dst, framed []byte, maxSize int) ([]byte, error) {
	if len(framed) == 0 {
		return nil, fmt.Errorf("empty payload")
	}
	switch framed[0] {
	case compressionNone:
		if len(framed)-1 > maxSize {
			return nil, fmt.Errorf("payload size %d exceeds the limit %d", len(framed)-1, maxSize)
		}
		return append(dst, framed[1:]...), nil
	case compressionZstd:
		out, err := c.dec.DecodeAll(framed[1:], dst)
		if err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		if len(out)-len(dst) > maxSize {
			return nil, fmt.Errorf("decompressed size %d exceeds the limit %d", len(out)-len(dst), maxSize)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown compression marker %d", framed[0])
}

// blobAD is the associated data binding a sealed blob to its id and type.
func blobAD(id ID, t BlobType) []byte {
	ad := make([]byte, 0, len(id)+1)
	ad = append(ad, id[:]...)
	return append(ad, byte(t))
}

// sealBlob appends the sealed form of a blob to dst.
//
// The payload is framed straight into dst after room for the nonce and
// then encrypted in place, so a blob's bytes are copied once, not twice,
// and a worker needs one buffer, not two.
func (c *codec) sealBlob(dst []byte, t BlobType, id ID, plaintext []byte, comp Compression) []byte {
	start := len(dst)
	dst = slices.Grow(dst, sealOverhead+1+len(plaintext))
	head := dst[:start+nonceSize]
	framed := c.frame(head[len(head):], plaintext, comp)
	if &framed[0] != &head[:len(head)+1][len(head)] {
		// zstd outgrew the room (an incompressible payload that passed the
		// sample test); frame then fell back to the payload elsewhere.
		dst = append(head, framed...)
	} else {
		dst = head[:len(head)+len(framed)]
	}
	return c.sealInPlace(dst, start, blobAD(id, t))
}

// openBlob authenticates and decodes a sealed blob, then checks that its
// plaintext really has the given id. The result is appended to dst.
func (c *codec) openBlob(dst []byte, t BlobType, id ID, sealed []byte) ([]byte, error) {
	framed, err := c.open(nil, sealed, blobAD(id, t))
	if err != nil {
		return nil, err
	}
	start := len(dst)
	out, err := c.unframe(dst, framed, MaxBlobSize)
	if err != nil {
		return nil, err
	}
	if got := c.blobID(t, out[start:]); got != id {
		return nil, fmt.Errorf("content hashes to %s, not to its id", got.Short())
	}
	return out, nil
}

// openBlobInPlace is openBlob for a caller that owns sealed: it decrypts
// in place and returns the plaintext either inside sealed (a payload
// stored uncompressed, which is then never copied) or in scratch, grown as
// needed. sealed no longer holds the ciphertext afterwards. The returned
// scratch is for the next call.
func (c *codec) openBlobInPlace(t BlobType, id ID, sealed, scratch []byte) (plain, newScratch []byte, err error) {
	framed, err := c.openInPlace(sealed, blobAD(id, t))
	if err != nil {
		return nil, scratch, err
	}
	switch {
	case len(framed) == 0:
		return nil, scratch, fmt.Errorf("empty payload")
	case framed[0] == compressionNone:
		plain = framed[1:]
	default:
		if scratch, err = c.unframe(scratch[:0], framed, MaxBlobSize); err != nil {
			return nil, scratch, err
		}
		plain = scratch
	}
	if got := c.blobID(t, plain); got != id {
		return nil, scratch, fmt.Errorf("content hashes to %s, not to its id", got.Short())
	}
	return plain, scratch, nil
}

// MaxBlobSize bounds the plaintext of one blob. The chunker's maximum chunk
// is far below it; trees larger than this are split.
const MaxBlobSize = 64 << 20

// maxObjectSize bounds a sealed object's plaintext (index, snapshot, config).
const maxObjectSize = 1 << 30

// objectAD binds a sealed object to its kind and format version.
func objectAD(kind string, version byte) []byte {
	return []byte("coffer " + kind + " v" + strconv.Itoa(int(version)))
}
