package mount

import (
	"container/list"
	"sync"

	"github.com/cofferhq/coffer/repo"
)

// blobCache holds decrypted data blobs, least recently used evicted first
// once their bytes exceed max, and the blobs being fetched, so that two
// readers of one blob wait for one fetch.
type blobCache struct {
	mu   sync.Mutex
	max  int64
	size int64
	lru  list.List // of *cacheEntry, most recent first; fetched entries only
	m    map[repo.ID]*cacheEntry
}

// cacheEntry is one blob: done is closed once data or err is set, or
// once it is spilled (then the blob is to be had from the spill cache).
type cacheEntry struct {
	id      repo.ID
	done    chan struct{}
	data    []byte
	err     error
	elem    *list.Element // in lru once fetched
	toSpill bool          // fetched for no read yet: goes to the spill cache
	spilled bool
}

func newBlobCache(max int64) *blobCache {
	return &blobCache{max: max, m: map[repo.ID]*cacheEntry{}}
}

// get returns the entry of id, fetched or in flight, or nil.
func (c *blobCache) get(id repo.ID) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e != nil && e.elem != nil {
		c.lru.MoveToFront(e.elem)
	}
	return e
}

// has reports whether id is cached or in flight.
func (c *blobCache) has(id repo.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id] != nil
}

// inFlight reports whether id is being fetched.
func (c *blobCache) inFlight(id repo.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	return e != nil && e.elem == nil
}

// claim registers an in-flight entry for id unless there is one: the
// caller then must fill or fail it.
func (c *blobCache) claim(id repo.ID) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[id] != nil {
		return nil, false
	}
	e := &cacheEntry{id: id, done: make(chan struct{})}
	c.m[id] = e
	return e, true
}

// fill completes a claimed entry with its plaintext, evicting older
// blobs past the bound.
func (c *blobCache) fill(e *cacheEntry, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.data = data
	e.elem = c.lru.PushFront(e)
	c.size += int64(len(data))
	for c.size > c.max && c.lru.Len() > 1 {
		old := c.lru.Remove(c.lru.Back()).(*cacheEntry)
		delete(c.m, old.id)
		c.size -= int64(len(old.data))
	}
	close(e.done)
}

// spill completes a claimed entry whose blob went to the spill cache and
// forgets it: whoever waited on it reads it from there.
func (c *blobCache) spill(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.spilled = true
	delete(c.m, e.id)
	close(e.done)
}

// fail completes a claimed entry with an error and forgets it, so that
// the next read tries again (the store may have been unreachable).
func (c *blobCache) fail(e *cacheEntry, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.err = err
	delete(c.m, e.id)
	close(e.done)
}
