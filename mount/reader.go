package mount

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

// blobSource is what reading files needs of a repository;
// *repo.Repository has it.
type blobSource interface {
	Index() *repo.Index
	// LoadSealedBlobs reads blobs of one pack as stored, with few ranged
	// reads; fn may keep the sealed bytes it is given.
	LoadSealedBlobs(ctx context.Context, pack repo.ID, blobs []repo.BlobRef, fn func(repo.BlobRef, []byte) error) error
	// OpenBlob authenticates a sealed blob, checks its id and returns
	// its plaintext, decrypting in place.
	OpenBlob(ref repo.BlobRef, sealed []byte) ([]byte, error)
}

// Fetches: a read that misses fetches, along with the blob it needs, the
// file's following blobs that sit in the same pack, then those of the
// files after it in its directory, then the blobs stored after it in the
// pack (packOrder: a backup stores blobs in the order it walks the tree,
// the order tar and cp -r read it), in one ranged read, so that a
// directory of small files costs a read per span rather than one per
// file. A sequential read fetches a span of spanBytes of the pack, as
// restore reads whole packs in 16 MiB reads: a store such as a registry
// spends much of its time per request, not per byte. A backup reads
// files in parallel, so a file's chunks are interleaved in its packs
// with another file's: the chunks of a span that no read needs yet (not
// in the reader's window) go to the spill cache on disk, sealed, until a
// reader gets to them. Blobs of up to pushMax bytes, which are mostly
// whole small files, are decrypted into memory instead: the pack's
// order is the order a walk of the tree reads them in, and decrypting
// each one on the reader's path, a directory at a time, cost more than
// the span's fetch (docs/benchmarks.md, "mount"). A random read fetches
// runBytes only. The read
// waits for its own blob only, which comes first; the span goes on
// loading in the background. A sequential reader also has up to
// aheadBytes beyond its read (in its file, then its directory) fetched
// or taken from the spill cache in the background, by at most
// aheadFetches at once for the mount, so that the store's latency and
// the decryption overlap the reader's work, as restore's parallel pack
// readers do. The sizes were chosen by measurement on a local directory
// and a registry (docs/benchmarks.md, "mount").
const (
	pushMax      = 256 << 10 // small files: pushed into the kernel's cache (fuse.go), not spilled
	runBytes     = 2 << 20
	spanBytes    = 16 << 20
	runBlobs     = 1024
	aheadBytes   = 32 << 20
	aheadFetches = 8
)

// content is a regular file's extents and where each starts.
type content struct {
	ext  []snapshot.Extent
	offs []int64 // offs[i] is where ext[i] starts; offs[len(ext)] is where the last ends
	size int64   // the node's size: reads stop there
}

func newContent(n *snapshot.Node) *content {
	c := &content{ext: n.Content, offs: make([]int64, len(n.Content)+1), size: fileSize(n)}
	for i, e := range n.Content {
		c.offs[i+1] = c.offs[i] + e.Size
	}
	return c
}

// fileSize is the size a file of the snapshot has in the mount: what
// was read of one that could not be read in full at backup time, as
// restore, archive and cat write it, rather than its size then, which
// would have to be made up of bytes the snapshot does not hold.
func fileSize(n *snapshot.Node) int64 {
	if n.Error != "" {
		return n.StoredSize()
	}
	return n.Size
}

// extentAt returns the index of the extent holding byte off, or
// len(c.ext) past the last.
func (c *content) extentAt(off int64) int {
	return sort.Search(len(c.ext), func(i int) bool { return c.offs[i+1] > off })
}

// reader reads file contents through the blob cache.
type reader struct {
	// ctx is the mount's: a fetch serves everyone waiting on its blobs,
	// so it is not tied to the request that started it.
	ctx   context.Context
	src   blobSource
	cache *blobCache
	spill *spillCache               // nil: every blob fetched is kept in memory
	ahead chan struct{}             // tokens for background fetches
	bg    sync.WaitGroup            // background fetches
	packs atomic.Pointer[packOrder] // once built, runs go on in pack order
}

// wait returns once the background fetches have ended.
func (rd *reader) wait() { rd.bg.Wait() }

// newReader returns a reader; the pack order it fetches runs in is built
// in the background, reads go on without it meanwhile. spill may be nil:
// fetches then bring along what fits runBytes, into memory.
func newReader(ctx context.Context, src blobSource, cacheBytes int64, spill *spillCache) *reader {
	rd := &reader{ctx: ctx, src: src, cache: newBlobCache(cacheBytes), spill: spill, ahead: make(chan struct{}, aheadFetches)}
	rd.bg.Go(func() {
		p := newPackOrder(src.Index())
		rd.packs.Store(&p)
	})
	return rd
}

// span is how far into a pack a fetch for a read goes.
func (rd *reader) span(sequential bool) int64 {
	if sequential && rd.spill != nil {
		return spanBytes
	}
	return runBytes
}

// slices returns the bytes of a read of n bytes at off, clipped at the
// end of the file, as slices of the cached blobs (and of zeros for holes)
// rather than a copy: the kernel takes them with one writev. The bytes
// are the cache's, which never change once filled. sequential says the
// read follows the previous one on the same handle, which starts
// read-ahead. next yields the extents of the files that follow in the
// directory, for fetches to go on with; it may be nil. Waiting for a
// fetch ends when ctx is done (the reading program was interrupted);
// the fetch goes on for whoever reads next.
func (rd *reader) slices(ctx context.Context, c *content, off int64, n int, sequential bool, next iter.Seq[[]snapshot.Extent]) ([][]byte, error) {
	if off >= c.size || n <= 0 {
		return nil, nil
	}
	end := min(off+int64(n), c.size)
	var vs [][]byte
	i := c.extentAt(off)
	for pos := off; pos < end; i++ {
		if i >= len(c.ext) { // a tree whose size says more than its content holds
			return nil, fmt.Errorf("the snapshot's tree says the file has %d bytes, its content holds %d: %w", c.size, c.offs[len(c.ext)], repo.ErrCorrupt)
		}
		e := c.ext[i]
		in := pos - c.offs[i]
		k := min(e.Size-in, end-pos)
		if e.Hole {
			vs = appendZeros(vs, k)
		} else {
			data, err := rd.blob(ctx, c, i, next, rd.span(sequential || off == 0))
			if err != nil {
				return nil, err
			}
			vs = append(vs, data[in:in+k])
		}
		pos += k
	}
	if sequential {
		rd.readAhead(c, c.extentAt(end), next)
	}
	return vs, nil
}

// zeros is read for holes; nothing writes to it.
var zeros = make([]byte, 64<<10)

// appendZeros appends n zero bytes to vs as slices of zeros.
func appendZeros(vs [][]byte, n int64) [][]byte {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		vs = append(vs, zeros[:k])
		n -= k
	}
	return vs
}

// blob returns the plaintext of extent i, from the cache, the spill
// cache or fetching it (and span bytes of its pack after it) if no one
// has.
func (rd *reader) blob(ctx context.Context, c *content, i int, next iter.Seq[[]snapshot.Extent], span int64) ([]byte, error) {
	id := c.ext[i].ID
	for {
		e := rd.cache.get(id)
		if e == nil {
			e = rd.unspill(repo.BlobRef{ID: id, Type: repo.BlobData})
		}
		if e == nil {
			f, err := rd.claimRun(window(c, i, next, max(span, aheadBytes)), span)
			if err != nil {
				return nil, err
			}
			if f == nil { // claimed by another reader meanwhile
				continue
			}
			e = f.entries[id]
			// The span loads on: this read needs only its first blob,
			// which comes first.
			rd.bg.Go(func() { rd.load(f) })
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-rd.ctx.Done():
			return nil, rd.ctx.Err()
		}
		if e.spilled { // another fetch had it, for no read: from the spill cache then
			continue
		}
		if e.err != nil {
			return nil, e.err
		}
		// Blobs are fetched by id, some for no file in particular (those
		// after it in its pack): the size the tree records is checked here.
		if int64(len(e.data)) != c.ext[i].Size {
			return nil, &repo.IntegrityError{Kind: "blob", Name: id.String(),
				Err: fmt.Errorf("holds %d bytes, the tree says %d", len(e.data), c.ext[i].Size)}
		}
		return e.data, nil
	}
}

// unspill moves a blob from the spill cache into the memory cache,
// authenticating it, and returns its entry (completed, failed if the
// spilled bytes do not authenticate), or nil if it is not spilled.
func (rd *reader) unspill(ref repo.BlobRef) *cacheEntry {
	if rd.spill == nil || !rd.spill.has(ref.ID) {
		return nil
	}
	e, ok := rd.cache.claim(ref.ID)
	if !ok {
		return rd.cache.get(ref.ID)
	}
	sealed, ok := rd.spill.get(ref.ID)
	if !ok { // dropped meanwhile: whoever waits fetches it
		rd.cache.spill(e)
		return nil
	}
	plain, err := rd.src.OpenBlob(ref, sealed)
	if err != nil {
		// The store's copy may be sound: the next read fetches it.
		rd.spill.forget(ref.ID)
		rd.cache.fail(e, err)
		return e
	}
	rd.cache.fill(e, plain)
	return e
}

// window returns the extents from extent i of c on, followed by those of
// the files next yields, until they hold at least bytes.
func window(c *content, i int, next iter.Seq[[]snapshot.Extent], bytes int64) []snapshot.Extent {
	var xs []snapshot.Extent
	for _, x := range c.ext[i:] {
		if bytes <= 0 || len(xs) == runBlobs {
			return xs
		}
		xs = append(xs, x)
		bytes -= x.Size
	}
	if next == nil {
		return xs
	}
	for ext := range next {
		for _, x := range ext {
			if bytes <= 0 || len(xs) == runBlobs {
				return xs
			}
			xs = append(xs, x)
			bytes -= x.Size
		}
	}
	return xs
}

// readAhead starts background fetches of the blobs from extent i of c on,
// and then of the files after it, up to aheadBytes, that no one has
// fetched or is fetching, and takes those spilled from the spill cache,
// while tokens last.
func (rd *reader) readAhead(c *content, i int, next iter.Seq[[]snapshot.Extent]) {
	xs := window(c, i, next, aheadBytes)
	for k, x := range xs {
		if x.Hole || rd.cache.has(x.ID) {
			continue
		}
		select {
		case rd.ahead <- struct{}{}:
		default:
			return
		}
		if rd.spill != nil && rd.spill.has(x.ID) {
			rd.bg.Go(func() {
				defer func() { <-rd.ahead }()
				rd.unspill(repo.BlobRef{ID: x.ID, Type: repo.BlobData})
			})
			continue
		}
		f, err := rd.claimRun(xs[k:], rd.span(true))
		if f == nil || err != nil {
			<-rd.ahead
			continue // the read itself will report the error
		}
		rd.bg.Go(func() {
			defer func() { <-rd.ahead }()
			rd.load(f)
		})
	}
}

// fetch is a span of blobs of one pack claimed for loading.
type fetch struct {
	pack    repo.ID
	refs    []repo.BlobRef
	entries map[repo.ID]*cacheEntry
}

// claimRun claims the blob of xs[0] and those of the extents after it
// (the reader's window) that are stored after it in the same pack, within
// span bytes, and that no one has; then the other blobs stored there,
// which go to the spill cache (or, without one, into memory up to span).
// It returns a nil fetch if xs[0] was claimed by someone else meanwhile.
func (rd *reader) claimRun(xs []snapshot.Extent, span int64) (*fetch, error) {
	first := xs[0]
	x := rd.src.Index()
	loc, ok := x.Lookup(first.ID)
	if !ok {
		return nil, fmt.Errorf("data blob %s: %w", first.ID.Short(), repo.ErrBlobNotFound)
	}
	e, ok := rd.cache.claim(first.ID)
	if !ok {
		return nil, nil
	}
	f := &fetch{pack: loc.Pack, entries: map[repo.ID]*cacheEntry{first.ID: e}}
	f.refs = append(f.refs, repo.BlobRef{ID: first.ID, Type: repo.BlobData})
	// within says whether a blob at off+length lies in the span.
	within := func(off, length uint32) bool {
		return off >= loc.Offset && int64(off)+int64(length)-int64(loc.Offset) <= span
	}
	want := make(map[repo.ID]bool, len(xs))
	for _, x := range xs {
		want[x.ID] = true
	}
	bytes := int64(loc.RawLength)
	for _, xt := range xs[1:] {
		if xt.Hole || f.entries[xt.ID] != nil {
			continue
		}
		l, ok := x.Lookup(xt.ID)
		if !ok || l.Pack != loc.Pack || !within(l.Offset, l.Length) {
			continue // another fetch's
		}
		if rd.spill == nil && bytes+int64(l.RawLength) > span {
			break
		}
		e, ok := rd.cache.claim(xt.ID)
		if !ok {
			continue
		}
		f.entries[xt.ID] = e
		f.refs = append(f.refs, repo.BlobRef{ID: xt.ID, Type: repo.BlobData})
		bytes += int64(l.RawLength)
	}
	if p := rd.packs.Load(); p != nil {
		// Then what follows in the pack, while no one else fetches it.
		for _, b := range p.after(loc.Pack, loc.Offset) {
			if !within(b.offset, b.length) || rd.spill == nil && bytes+int64(b.raw) > span {
				break
			}
			if f.entries[b.id] != nil || rd.spill != nil && rd.spill.has(b.id) {
				continue
			}
			if rd.cache.inFlight(b.id) {
				break // another fetch reads on from here
			}
			e, ok := rd.cache.claim(b.id)
			if !ok {
				continue // cached
			}
			e.toSpill = rd.spill != nil && !want[b.id] && b.raw > pushMax
			f.entries[b.id] = e
			f.refs = append(f.refs, repo.BlobRef{ID: b.id, Type: repo.BlobData})
			if !e.toSpill {
				bytes += int64(b.raw)
			}
		}
	}
	return f, nil
}

// load reads a claimed span with one LoadSealedBlobs call and completes
// every entry: spilled (sealed, to the spill cache), with its plaintext,
// or with the error that kept it from being read. Each blob is
// authenticated on its own, so a damaged one fails only itself.
func (rd *reader) load(f *fetch) {
	if len(f.refs) == 0 {
		return
	}
	var seg *spillSeg
	deliver := func(ref repo.BlobRef, sealed []byte) error {
		e := f.entries[ref.ID]
		if e == nil {
			return nil // listed twice
		}
		delete(f.entries, ref.ID)
		if e.toSpill {
			if seg == nil {
				seg = rd.spill.newSegment()
			}
			if seg != nil && rd.spill.put(seg, ref.ID, sealed) {
				rd.cache.spill(e)
				return nil
			}
			// Not spilled (the disk failed): kept in memory instead.
		}
		plain, err := rd.src.OpenBlob(ref, sealed)
		if err != nil {
			rd.cache.fail(e, err)
			return nil
		}
		rd.cache.fill(e, plain)
		return nil
	}
	err := rd.src.LoadSealedBlobs(rd.ctx, f.pack, f.refs, deliver)
	if err == nil && len(f.entries) > 0 {
		err = errors.New("the pack did not return every blob asked for")
	}
	for _, e := range f.entries {
		rd.cache.fail(e, err)
	}
}
