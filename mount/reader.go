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
	// LoadBlobsOwned authenticates every blob and checks its id; fn
	// may keep the plaintexts it is given.
	LoadBlobsOwned(ctx context.Context, pack repo.ID, blobs []repo.BlobRef, fn func(repo.BlobRef, []byte) error) error
}

// Fetches: a read that misses fetches, along with the blob it needs, the
// file's following blobs that sit in the same pack, then those of the
// files after it in its directory, then the blobs stored after it in the
// pack (packOrder: a backup stores blobs in the order tar and cp -r read
// them), in one LoadBlobs call (one ranged read through small gaps), up
// to runBytes, so that a directory of small files costs a read per run
// rather than one per file. The read waits for its own blob only; the
// run goes on loading in the background. A sequential reader also has up
// to aheadBytes beyond its read (in its file, then its directory) fetched
// in the background, by at most aheadFetches fetches at once for the
// mount, so that the store's latency and the decryption overlap the
// reader's work, as restore's parallel pack readers do. The sizes were
// chosen by measurement on a local directory and a registry
// (docs/benchmarks.md, "mount").
const (
	runBytes     = 2 << 20
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
	c := &content{ext: n.Content, offs: make([]int64, len(n.Content)+1), size: n.Size}
	for i, e := range n.Content {
		c.offs[i+1] = c.offs[i] + e.Size
	}
	return c
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
	ahead chan struct{}             // tokens for background fetches
	bg    sync.WaitGroup            // background fetches
	packs atomic.Pointer[packOrder] // once built, runs go on in pack order
}

// wait returns once the background fetches have ended.
func (rd *reader) wait() { rd.bg.Wait() }

// newReader returns a reader; the pack order it fetches runs in is built
// in the background, reads go on without it meanwhile.
func newReader(ctx context.Context, src blobSource, cacheBytes int64) *reader {
	rd := &reader{ctx: ctx, src: src, cache: newBlobCache(cacheBytes), ahead: make(chan struct{}, aheadFetches)}
	rd.bg.Go(func() {
		p := newPackOrder(src.Index())
		rd.packs.Store(&p)
	})
	return rd
}

// readAt fills p from byte off of a file and returns the bytes read,
// fewer only at the end of the file. Holes read as zeros. sequential
// says the read follows the previous one on the same handle, which
// starts read-ahead.
// next yields the extents of the files that follow in the directory, for
// fetches to go on with; it may be nil.
func (rd *reader) readAt(c *content, p []byte, off int64, sequential bool, next iter.Seq[[]snapshot.Extent]) (int, error) {
	if off >= c.size {
		return 0, nil
	}
	p = p[:min(int64(len(p)), c.size-off)]
	n := 0
	i := c.extentAt(off)
	for n < len(p) {
		pos := off + int64(n)
		if i >= len(c.ext) { // a file recorded with an error: less content than size
			clear(p[n:])
			n = len(p)
			break
		}
		e := c.ext[i]
		in := pos - c.offs[i]
		k := int(min(e.Size-in, int64(len(p)-n)))
		if e.Hole {
			clear(p[n : n+k])
		} else {
			data, err := rd.blob(c, i, next)
			if err != nil {
				return n, err
			}
			copy(p[n:n+k], data[in:])
		}
		n += k
		i++
	}
	if sequential {
		rd.readAhead(c, c.extentAt(off+int64(n)), next)
	}
	return n, nil
}

// within returns the bytes of a read of n bytes at off, clipped at the end
// of the file, without copying, when they lie in one blob, which is the
// common case (the kernel reads up to 1 MiB at a time, chunks are 1 MiB on
// average, and small files are one blob); ok is false otherwise, and
// readAt must assemble them. The bytes are the cache's, which never
// change: they may be handed to the kernel as they are.
func (rd *reader) within(c *content, off int64, n int, sequential bool, next iter.Seq[[]snapshot.Extent]) (b []byte, ok bool, err error) {
	if off >= c.size {
		return nil, true, nil
	}
	end := min(off+int64(n), c.size)
	i := c.extentAt(off)
	if i >= len(c.ext) || c.ext[i].Hole || end > c.offs[i+1] {
		return nil, false, nil
	}
	data, err := rd.blob(c, i, next)
	if err != nil {
		return nil, true, err
	}
	if sequential {
		rd.readAhead(c, c.extentAt(end), next)
	}
	return data[off-c.offs[i] : end-c.offs[i]], true, nil
}

// blob returns the plaintext of extent i, fetching it (and the run after
// it) if no one has.
func (rd *reader) blob(c *content, i int, next iter.Seq[[]snapshot.Extent]) ([]byte, error) {
	id := c.ext[i].ID
	e := rd.cache.get(id)
	for e == nil {
		f, _, err := rd.claimRun(window(c, i, next, runBytes))
		if err != nil {
			return nil, err
		}
		if f == nil { // claimed by another reader meanwhile
			e = rd.cache.get(id)
			continue
		}
		e = f.entries[id]
		// The run loads on: this read needs only its first blob, which
		// LoadBlobs delivers first.
		rd.bg.Go(func() { rd.load(f) })
	}
	select {
	case <-e.done:
	case <-rd.ctx.Done():
		return nil, rd.ctx.Err()
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
// fetched or is fetching, while tokens last.
func (rd *reader) readAhead(c *content, i int, next iter.Seq[[]snapshot.Extent]) {
	xs := window(c, i, next, aheadBytes)
	for k := 0; k < len(xs); k++ {
		if xs[k].Hole || rd.cache.has(xs[k].ID) {
			continue
		}
		select {
		case rd.ahead <- struct{}{}:
		default:
			return
		}
		f, used, err := rd.claimRun(xs[k:])
		if f == nil || err != nil {
			<-rd.ahead
			continue // the read itself will report the error
		}
		k += used - 1
		rd.bg.Go(func() {
			defer func() { <-rd.ahead }()
			rd.load(f)
		})
	}
}

// fetch is a run of blobs of one pack claimed for loading.
type fetch struct {
	pack    repo.ID
	refs    []repo.BlobRef
	entries map[repo.ID]*cacheEntry
}

// claimRun claims the blob of xs[0] and those of the extents after it
// that are stored in the same pack and that no one has, then the blobs
// stored after it in the pack, up to runBytes, and says how many extents
// it went through. It returns a nil fetch if xs[0] was claimed by someone
// else meanwhile.
func (rd *reader) claimRun(xs []snapshot.Extent) (*fetch, int, error) {
	first := xs[0]
	loc, ok := rd.src.Index().Lookup(first.ID)
	if !ok {
		return nil, 1, fmt.Errorf("data blob %s: %w", first.ID.Short(), repo.ErrBlobNotFound)
	}
	e, ok := rd.cache.claim(first.ID)
	if !ok {
		return nil, 1, nil
	}
	f := &fetch{pack: loc.Pack, entries: map[repo.ID]*cacheEntry{first.ID: e}}
	f.refs = append(f.refs, repo.BlobRef{ID: first.ID, Type: repo.BlobData})
	bytes := int64(loc.RawLength)
	used := len(xs)
	for k, x := range xs[1:] {
		if x.Hole || f.entries[x.ID] != nil {
			continue
		}
		l, ok := rd.src.Index().Lookup(x.ID)
		if !ok || l.Pack != loc.Pack || bytes+int64(l.RawLength) > runBytes {
			used = 1 + k
			break
		}
		e, ok := rd.cache.claim(x.ID)
		if !ok {
			used = 1 + k // someone else reads from here on
			break
		}
		f.entries[x.ID] = e
		f.refs = append(f.refs, repo.BlobRef{ID: x.ID, Type: repo.BlobData})
		bytes += int64(l.RawLength)
	}
	if p := rd.packs.Load(); p != nil {
		// Then what follows in the pack, while it is not fetched
		// already: within one ranged read of the first blob.
		for _, b := range p.after(loc.Pack, loc.Offset) {
			if bytes+int64(b.raw) > runBytes || int64(b.offset)-int64(loc.Offset) > 2*runBytes {
				break
			}
			if f.entries[b.id] != nil {
				continue
			}
			e, ok := rd.cache.claim(b.id)
			if !ok {
				break
			}
			f.entries[b.id] = e
			f.refs = append(f.refs, repo.BlobRef{ID: b.id, Type: repo.BlobData})
			bytes += int64(b.raw)
		}
	}
	return f, used, nil
}

// load reads a claimed run with one LoadBlobsOwned call and completes every
// entry: with its plaintext, or with the error that kept it from being
// read. A damaged blob stops LoadBlobs; the blobs after it are then read
// one by one, so that each fails only for damage of its own.
func (rd *reader) load(f *fetch) {
	if len(f.refs) == 0 {
		return
	}
	deliver := func(ref repo.BlobRef, plain []byte) error {
		e := f.entries[ref.ID]
		if e == nil {
			return nil // listed twice
		}
		delete(f.entries, ref.ID)
		rd.cache.fill(e, plain)
		return nil
	}
	err := rd.src.LoadBlobsOwned(rd.ctx, f.pack, f.refs, deliver)
	if err != nil && len(f.entries) > 1 && rd.ctx.Err() == nil {
		for _, ref := range f.refs {
			if e := f.entries[ref.ID]; e != nil {
				if err := rd.src.LoadBlobsOwned(rd.ctx, f.pack, []repo.BlobRef{ref}, deliver); err != nil && f.entries[ref.ID] != nil {
					delete(f.entries, ref.ID)
					rd.cache.fail(e, err)
				}
			}
		}
	}
	if err == nil && len(f.entries) > 0 {
		err = errors.New("the pack did not return every blob asked for")
	}
	for _, e := range f.entries {
		rd.cache.fail(e, err)
	}
}
