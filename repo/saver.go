package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/internal/cachefile"
	"github.com/cofferhq/coffer/storage"
)

// SaveStats counts what a BlobSaver stored.
type SaveStats struct {
	Blobs        int64 // blobs passed to Save
	NewBlobs     int64 // of those, blobs not already in the repository
	NewRawBytes  int64 // plaintext bytes of the new blobs
	NewStored    int64 // sealed bytes of the new blobs
	Packs        int   // packs uploaded
	PackBytes    int64 // bytes of the packs uploaded, padding and trailers included
	ReusedPacks  int   // packs left by an interrupted run and adopted
	IndexObjects int   // index objects written
}

// defaultUploaders is how many packs are finished and stored at once.
// Finishing a pack (padding, trailer, SHA-256) is CPU work, storing it
// I/O, so two overlap both on a local disk; a store with more latency asks
// for more (storage.Concurrency). Packs wait in temporary files, not in
// memory, so more uploaders cost no memory.
const defaultUploaders = 2

// maxIndexEntries bounds one index object so that loading it needs
// bounded memory; a backup writes as many objects as it needs. Writing
// one holds its entries about four times over (listed, encoded,
// compressed, sealed): at 500,000, that made the last moments of a
// million-file backup the peak of its memory.
const maxIndexEntries = 100_000

// BlobSaver stores blobs into packs during one run of WithBlobSaver. Its
// methods are safe for concurrent use.
type BlobSaver struct {
	r           *Repository
	fp          storage.FilePutter // the store, when it makes pack files itself
	uploads     chan *packBuilder
	compression Compression
	packSize    int // the most bytes a pack takes, unless one blob alone is larger

	mu sync.Mutex
	// cur holds the packs being filled, one per blob type, nil until a
	// blob of that type needs one. Trees get packs of their own so that
	// the tree cache can keep whole packs, and reading every tree of a
	// snapshot touches few packs.
	cur [2]*packBuilder
	// storing holds the blobs of the packs being filled, uploaded or
	// copied: saved, but in no pack the store has yet.
	storing map[ID]struct{}
	// pending indexes the blobs of the packs this run stored, adopted or
	// copied, which no index object lists yet. The repository's in-memory
	// index learns of them only once index objects do, so that after a
	// failed run it still matches the store and a retry adopts the packs.
	// An index rather than a set of ids and a list of each pack's
	// entries: 48 bytes a blob where those took about 145, which made
	// them most of a large first backup's memory (docs/benchmarks-log.md).
	pending *Index
	stored  []storedPack // packs this run built: pending lists their blobs
	written []PackInfo   // packs adopted or copied, listed as they are
	stats   SaveStats
}

// storedPack is a pack a BlobSaver built and stored.
type storedPack struct {
	id    ID
	size  int64
	blobs int
}

// WithBlobSaver runs fn with a BlobSaver. When fn succeeds, every blob it
// saved is stored in packs and recorded in new index objects before
// WithBlobSaver returns. When fn or a store write fails, nothing but
// complete packs has been written; the next run adopts them (their blobs
// are found by reading pack trailers), so no upload is wasted.
func (r *Repository) WithBlobSaver(ctx context.Context, fn func(ctx context.Context, s *BlobSaver) error) (SaveStats, error) {
	uploaders := defaultUploaders
	if c, ok := r.store.(storage.Concurrency); ok {
		uploaders = max(1, c.Concurrency())
	}
	s := &BlobSaver{
		r:        r,
		uploads:  make(chan *packBuilder),
		storing:  make(map[ID]struct{}),
		pending:  NewIndex(),
		packSize: r.cfg.PackSize,
	}
	s.fp, _ = r.store.(storage.FilePutter)
	if err := s.adoptUnindexedPacks(ctx); err != nil {
		return s.stats, err
	}

	g, gctx := errgroup.WithContext(ctx)
	for range uploaders {
		g.Go(func() error { return s.upload(gctx) })
	}
	err := fn(gctx, s)
	s.mu.Lock()
	last := s.cur
	s.cur = [2]*packBuilder{}
	s.mu.Unlock()
	for _, p := range last {
		switch {
		case p == nil:
		case err == nil:
			err = s.send(gctx, p)
		default:
			p.discard()
		}
	}
	close(s.uploads)
	// An uploader's failure cancels gctx, so fn may report only that
	// cancellation; the uploader's error is the one that explains it.
	if werr := g.Wait(); werr != nil && (err == nil || errors.Is(err, context.Canceled) && ctx.Err() == nil) {
		err = werr
	}
	if err != nil {
		return s.stats, err
	}
	packs := make([]ID, 0, len(s.written)+len(s.stored))
	for _, p := range s.written {
		packs = append(packs, p.ID)
	}
	for _, p := range s.stored {
		packs = append(packs, p.id)
	}
	if err := s.r.ReadyToCommit(ctx, packs); err != nil {
		return s.stats, err
	}
	if err := s.writeIndex(ctx); err != nil {
		return s.stats, err
	}
	return s.stats, nil
}

// adoptUnindexedPacks takes over packs that no index lists (left by an
// interrupted backup), so their blobs are reused and the new index object
// records them.
func (s *BlobSaver) adoptUnindexedPacks(ctx context.Context) error {
	type pack struct {
		id   ID
		size int64
	}
	var orphans []pack
	err := s.r.store.List(ctx, storage.KindPack, func(name string, size int64) error {
		id, err := ParseID(name)
		// A pack a prune plan names is going: its blobs are stored again.
		if err == nil && !s.r.index.HasPack(id) && !s.r.index.Condemned(id) {
			orphans = append(orphans, pack{id, size})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing packs: %w", err)
	}
	for _, p := range orphans {
		entries, err := s.r.ReadPackTrailer(ctx, p.id, p.size)
		if err != nil {
			// A damaged orphan is not adopted: its blobs are stored again,
			// and `check` reports the pack.
			continue
		}
		s.pending.Add(PackInfo{ID: p.id, Size: p.size, Entries: entries})
		s.written = append(s.written, PackInfo{ID: p.id, Size: p.size, Entries: entries})
		s.stats.ReusedPacks++
	}
	return nil
}

// SetCompression chooses how the blobs saved after it are compressed
// (CompressionAuto until then). Call it before saving from other
// goroutines.
func (s *BlobSaver) SetCompression(c Compression) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.compression = c
	return nil
}

// SetPackSize chooses the largest pack size for the packs started after
// it (the config's PackSize until then); see CheckPackSize. Call it
// before saving from other goroutines.
func (s *BlobSaver) SetPackSize(n int) error {
	if err := CheckPackSize(n); err != nil {
		return err
	}
	s.packSize = n
	return nil
}

// MaxBlob returns the largest plaintext whose pack, holding it alone,
// stays within the pack size (MaxBlobInPack). A larger blob is still
// stored, in a pack of its own that is larger than the pack size.
func (s *BlobSaver) MaxBlob() int { return MaxBlobInPack(s.packSize) }

// Save stores a blob unless the repository already has it, and returns
// its id and whether it was new.
func (s *BlobSaver) Save(ctx context.Context, t BlobType, plaintext []byte) (ID, bool, error) {
	id := s.r.codec.blobID(t, plaintext)
	added, err := s.SaveWithID(ctx, t, id, plaintext)
	return id, added, err
}

// compressionOf returns how a blob of type t is compressed. Under
// CompressionAuto, trees take zstd's fastest level: a backup stores the
// tree of every directory with a changed entry, and on trees (JSON whose
// bulk is ids and times) the fastest level compresses as well as the
// default one in about 60% of the time (docs/benchmarks-log.md).
func (s *BlobSaver) compressionOf(t BlobType) Compression {
	if t == BlobTree && s.compression == CompressionAuto {
		return CompressionFastest
	}
	return s.compression
}

// SaveWithID is Save for a caller that already computed the blob's id.
func (s *BlobSaver) SaveWithID(ctx context.Context, t BlobType, id ID, plaintext []byte) (bool, error) {
	if len(plaintext) > MaxBlobSize {
		// Readers refuse larger blobs, so storing one would make its pack
		// unreadable; fail the backup instead.
		return false, fmt.Errorf("%s blob of %d bytes exceeds the %d-byte limit", t, len(plaintext), MaxBlobSize)
	}
	s.mu.Lock()
	s.stats.Blobs++
	if s.has(id) {
		s.mu.Unlock()
		return false, nil
	}
	s.storing[id] = struct{}{}
	s.mu.Unlock()

	// Compression and encryption run here, in the caller's goroutine, so
	// they spread over all the pipeline's workers.
	sb := sealBufs.Get().(*sealBuf)
	sb.sealed = s.r.codec.sealBlob(sb.sealed[:0], t, id, plaintext, s.compressionOf(t))

	full, err := s.addToPack(t, id, sb.sealed, len(plaintext))
	sealBufs.Put(sb)
	if err != nil {
		if full != nil {
			full.discard()
		}
		return false, err
	}
	if full != nil {
		if err := s.send(ctx, full); err != nil {
			return false, err
		}
	}
	return true, nil
}

// addToPack appends a sealed blob to the current pack, and returns the
// previous pack when this blob did not fit in it.
func (s *BlobSaver) addToPack(t BlobType, id ID, sealed []byte, rawLen int) (full *packBuilder, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := &s.cur[t]
	// A pack is closed before a blob would take it past the pack size,
	// counting the trailer, tail and padding it will get, so packs never
	// grow beyond it (unless one blob alone does).
	if *cur != nil && (*cur).sizeWith(len(sealed), rawLen) > int64(s.packSize) {
		full, *cur = *cur, nil
	}
	if *cur == nil {
		if *cur, err = newPackBuilder(s.r.tempDir, s.fp, t); err != nil {
			return full, err
		}
	}
	if err := (*cur).add(t, id, sealed, rawLen); err != nil {
		return full, err
	}
	s.stats.NewBlobs++
	s.stats.NewRawBytes += int64(rawLen)
	s.stats.NewStored += int64(len(sealed))
	return full, nil
}

type sealBuf struct{ sealed []byte }

var sealBufs = sync.Pool{New: func() any { return new(sealBuf) }}

// send hands a full pack to an uploader.
func (s *BlobSaver) send(ctx context.Context, p *packBuilder) error {
	select {
	case s.uploads <- p:
		return nil
	case <-ctx.Done():
		p.discard()
		return ctx.Err()
	}
}

// upload finishes and stores packs until the channel closes.
func (s *BlobSaver) upload(ctx context.Context) error {
	for p := range s.uploads {
		err := s.store(ctx, p)
		p.discard()
		if err != nil {
			return err
		}
	}
	return nil
}

// store finishes a pack and puts it in the store.
func (s *BlobSaver) store(ctx context.Context, p *packBuilder) error {
	id, err := p.finish(s.r.codec)
	if err != nil {
		return err
	}
	if p.blobs == BlobTree {
		// Cached before it is stored, while the file is still there; an
		// entry for a pack whose store fails is never looked up.
		s.r.trees.putPack(id, p.contents()) // the next backup compares against them
	}
	if err := p.store(ctx, s.r.store, id.String()); err != nil {
		return fmt.Errorf("storing pack %s: %w", id.Short(), err)
	}
	// In pending before it leaves storing, so Has never misses it.
	s.pending.Add(PackInfo{ID: id, Size: p.size, Entries: p.entries})
	s.mu.Lock()
	for i := range p.entries {
		delete(s.storing, p.entries[i].ID)
	}
	s.stored = append(s.stored, storedPack{id: id, size: p.size, blobs: len(p.entries)})
	s.stats.Packs++
	s.stats.PackBytes += p.size
	s.mu.Unlock()
	return nil
}

// writeIndex stores index objects for every pack stored, adopted or
// copied, then adds their blobs to the repository's index.
func (s *BlobSaver) writeIndex(ctx context.Context) error {
	for len(s.written) > 0 || len(s.stored) > 0 {
		var batch []PackInfo
		entries := 0
		for len(s.written) > 0 && (len(batch) == 0 || entries+len(s.written[0].Entries) <= maxIndexEntries) {
			batch = append(batch, s.written[0])
			entries += len(s.written[0].Entries)
			s.written[0] = PackInfo{}
			s.written = s.written[1:]
		}
		n := 0
		for n < len(s.stored) && (len(batch)+n == 0 || entries+s.stored[n].blobs <= maxIndexEntries) {
			entries += s.stored[n].blobs
			n++
		}
		built, err := s.packInfos(ctx, s.stored[:n])
		if err != nil {
			return err
		}
		s.stored = s.stored[n:]
		if err := s.r.saveIndex(ctx, append(batch, built...)); err != nil {
			return err
		}
		s.stats.IndexObjects++
	}
	// pending's arrays become the index's, shard by shard: the blobs are
	// not held twice over.
	b := s.pending.intoBuilder()
	s.pending = nil
	s.r.index.addBuilt(b)
	return nil
}

// packInfos lists the blobs of packs this run stored, from pending, for an
// index object. pending keeps the first copy of a blob: one that a pack
// copied or adopted in the meantime holds too is missing from the list of
// the pack stored after it, whose list is then read back from its trailer.
func (s *BlobSaver) packInfos(ctx context.Context, packs []storedPack) ([]PackInfo, error) {
	if len(packs) == 0 {
		return nil, nil
	}
	wanted := make(map[ID]bool, len(packs))
	for _, p := range packs {
		wanted[p.id] = true
	}
	entries := s.pending.PackEntries(wanted)
	infos := make([]PackInfo, len(packs))
	for i, p := range packs {
		es := entries[p.id]
		if len(es) != p.blobs {
			var err error
			if es, err = s.r.ReadPackTrailer(ctx, p.id, p.size); err != nil {
				return nil, fmt.Errorf("reading back the blobs of pack %s: %w", p.id.Short(), err)
			}
		}
		infos[i] = PackInfo{ID: p.id, Size: p.size, Entries: es}
	}
	return infos, nil
}

// saveIndex stores one index object and puts it in the local cache.
func (r *Repository) saveIndex(ctx context.Context, packs []PackInfo) error {
	sealed, err := r.sealObject(storage.KindIndex, encodeIndex(packs))
	if err != nil {
		return err
	}
	id := ID(sha256.Sum256(sealed))
	if err := r.store.Put(ctx, storage.KindIndex, id.String(), storage.BytesBody(sealed)); err != nil {
		return fmt.Errorf("storing index %s: %w", id.Short(), err)
	}
	if r.cacheDir != "" {
		cachefile.Write(filepath.Join(r.cacheDir, "index", id.String()), sealed)
	}
	return nil
}
