package ui

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"unsafe"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

// cache keeps decoded snapshots and recently used trees. Snapshot objects
// never change once written, so a loaded one is kept for good; the list of
// ids is read again on each request so that new backups show up.
//
// A decoded directory costs about 330 bytes an entry, so one of 200,000
// entries is 66 MB: requests for it share one decoded copy, which is
// decoded once however many ask for it at the same time, and the trees
// kept are bounded by their estimated size, not by their number.
type cache struct {
	repo *repo.Repository
	// decoders bounds the trees being decoded at once, each of which may
	// be a directory's worth of memory before the cache sees its size.
	decoders chan struct{}
	maxBytes int // of trees kept: maxCachedTreeBytes but in tests

	mu    sync.Mutex
	snaps map[repo.ID]*snapshot.Snapshot
	trees map[treeKey]*treeLoad
	lru   *list.List         // of *treeLoad, the most recently used first; loaded ones only
	size  int                // the estimated bytes of the trees in lru
	blobs map[repo.ID][]byte // tree blobs, for snapshot.Diff and snapshot.Walk
	bytes int
}

const (
	// maxCachedTreeBytes bounds the estimated size of the decoded trees
	// kept; it holds a 200,000-entry directory with two sorted views.
	maxCachedTreeBytes = 96 << 20
	// maxCachedBlobBytes bounds the encoded tree blobs kept for diffs and
	// archives, which the repository's own tree cache backs.
	maxCachedBlobBytes = 16 << 20
	// maxDecoders is how many trees are decoded at once.
	maxDecoders = 2
)

// Estimated memory of a decoded node and of a pointer to it; a node also
// holds its decoding's raw name fields.
const (
	nodeBytes = int(unsafe.Sizeof(snapshot.Node{})) + 48
	ptrBytes  = int(unsafe.Sizeof(&snapshot.Node{}))
)

// treeKey names a cached list of nodes: a directory's own order, or a
// view of it sorted otherwise (see handleBrowse).
type treeKey struct {
	id   repo.ID
	view string // "" for the tree itself
}

// treeLoad is a cached list of nodes, or one being loaded: done is
// closed once nodes and err are set.
type treeLoad struct {
	key   treeKey
	done  chan struct{}
	nodes []*snapshot.Node
	err   error
	size  int
	elem  *list.Element // in cache.lru, nil while loading or when not kept
	views []*treeLoad   // of a tree: its views that are kept
}

func newCache(r *repo.Repository) *cache {
	return &cache{repo: r, decoders: make(chan struct{}, maxDecoders), maxBytes: maxCachedTreeBytes, snaps: map[repo.ID]*snapshot.Snapshot{},
		trees: map[treeKey]*treeLoad{}, lru: list.New(), blobs: map[repo.ID][]byte{}}
}

// list returns every snapshot, oldest first (see snapshot.List).
func (c *cache) list(ctx context.Context) ([]*snapshot.Snapshot, error) {
	ids, err := c.repo.ListObjects(ctx, storage.KindSnapshot)
	if err != nil {
		return nil, err
	}
	var missing bool
	c.mu.Lock()
	for _, id := range ids {
		if c.snaps[id] == nil {
			missing = true
		}
	}
	c.mu.Unlock()
	if missing {
		sns, err := snapshot.List(ctx, c.repo)
		if err != nil && len(sns) == 0 {
			return nil, err
		}
		c.mu.Lock()
		for _, sn := range sns {
			c.snaps[sn.ID] = sn
		}
		c.mu.Unlock()
		return sns, nil
	}
	c.mu.Lock()
	sns := make([]*snapshot.Snapshot, 0, len(ids))
	for _, id := range ids {
		sns = append(sns, c.snaps[id])
	}
	c.mu.Unlock()
	// Snapshots may have gone without new ones coming: snapshot.List
	// would report a rollback, so this does too.
	vanished, verr := snapshot.Vanished(ctx, c.repo, ids, sns)
	for _, v := range vanished {
		c.repo.Warn(v)
	}
	if verr != nil && ctx.Err() == nil {
		c.repo.Warn(verr)
	}
	sortSnapshots(sns)
	return sns, nil
}

// snapshot finds a snapshot by id prefix or "latest".
func (c *cache) snapshot(ctx context.Context, prefix string) (*snapshot.Snapshot, error) {
	c.mu.Lock()
	for id, sn := range c.snaps {
		if id.String() == prefix {
			c.mu.Unlock()
			return sn, nil
		}
	}
	c.mu.Unlock()
	sn, err := snapshot.Find(ctx, c.repo, prefix)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.snaps[sn.ID] = sn
	c.mu.Unlock()
	return sn, nil
}

// LoadBlob makes the cache a loader for the snapshot package.
// Tree blobs are kept, up to maxCachedBlobBytes.
func (c *cache) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID) ([]byte, error) {
	if t != repo.BlobTree {
		return c.repo.LoadBlob(ctx, t, id)
	}
	c.mu.Lock()
	b, ok := c.blobs[id]
	c.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := c.repo.LoadBlob(ctx, t, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.bytes+len(b) > maxCachedBlobBytes {
		clear(c.blobs)
		c.bytes = 0
	}
	if len(b) <= maxCachedBlobBytes {
		c.blobs[id] = b
		c.bytes += len(b)
	}
	c.mu.Unlock()
	return b, nil
}

// tree returns a directory's nodes, sorted by name. The slice is shared:
// callers must not modify it.
func (c *cache) tree(ctx context.Context, id repo.ID) ([]*snapshot.Node, error) {
	return c.get(ctx, treeKey{id: id}, func(ctx context.Context) ([]*snapshot.Node, int, error) {
		select {
		case c.decoders <- struct{}{}:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		defer func() { <-c.decoders }()
		nodes, err := snapshot.LoadTree(ctx, c.repo, id)
		if err != nil {
			return nil, 0, err
		}
		size := ptrBytes * len(nodes)
		for _, n := range nodes {
			size += nodeSize(n)
		}
		return nodes, size, nil
	})
}

// nodeSize estimates the memory a decoded node holds.
func nodeSize(n *snapshot.Node) int {
	size := nodeBytes + len(n.Name) + len(n.User) + len(n.Group) + len(n.LinkTarget) + len(n.Error) +
		len(n.Content)*int(unsafe.Sizeof(snapshot.Extent{}))
	for _, x := range n.Xattrs {
		size += int(unsafe.Sizeof(x)) + len(x.Name) + len(x.Value)
	}
	return size
}

// view returns the nodes of directory id in another order, made by
// order from its nodes (which it must not modify) and kept like the tree,
// so that paging through a large directory sorts it once. The slice is
// shared: callers must not modify it.
func (c *cache) view(ctx context.Context, id repo.ID, name string, order func([]*snapshot.Node) []*snapshot.Node) ([]*snapshot.Node, error) {
	return c.get(ctx, treeKey{id: id, view: name}, func(ctx context.Context) ([]*snapshot.Node, int, error) {
		nodes, err := c.tree(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		return order(nodes), ptrBytes * len(nodes), nil
	})
}

// get returns the nodes under key, calling load unless they are cached or
// being loaded already. load runs on its own goroutine, not cancelled
// with the request that started it: the requests waiting for the same
// nodes still want them, and a result is kept for the next ones. It
// returns the nodes with their estimated size in bytes.
func (c *cache) get(ctx context.Context, key treeKey, load func(context.Context) ([]*snapshot.Node, int, error)) ([]*snapshot.Node, error) {
	c.mu.Lock()
	tl := c.trees[key]
	if tl == nil {
		tl = &treeLoad{key: key, done: make(chan struct{})}
		c.trees[key] = tl
		go c.fill(context.WithoutCancel(ctx), tl, load)
	} else if tl.elem != nil {
		c.lru.MoveToFront(tl.elem)
		if base := c.trees[treeKey{id: key.id}]; key.view != "" && base != nil && base.elem != nil {
			c.lru.MoveToFront(base.elem)
		}
	}
	c.mu.Unlock()
	select {
	case <-tl.done:
		return tl.nodes, tl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fill loads tl and keeps it if it fits.
func (c *cache) fill(ctx context.Context, tl *treeLoad, load func(context.Context) ([]*snapshot.Node, int, error)) {
	nodes, size, err := load(ctx)
	c.mu.Lock()
	tl.nodes, tl.size, tl.err = nodes, size, err
	if !c.keep(tl) {
		delete(c.trees, tl.key)
	}
	c.mu.Unlock()
	close(tl.done)
}

// keep adds tl to the trees kept, evicting those used least recently, and
// reports whether it did. A failed load is not kept, so the next request
// tries again. A view's nodes are its tree's, so a view is kept only with
// its tree, whose size covers them.
func (c *cache) keep(tl *treeLoad) bool {
	if tl.err != nil || tl.size > c.maxBytes {
		return false
	}
	var base *treeLoad
	if tl.key.view != "" {
		base = c.trees[treeKey{id: tl.key.id}]
		if base == nil || base.elem == nil {
			return false
		}
		c.lru.MoveToFront(base.elem)
	}
	for c.size+tl.size > c.maxBytes {
		old := c.lru.Back().Value.(*treeLoad)
		if old == base {
			return false
		}
		c.evict(old)
	}
	tl.elem = c.lru.PushFront(tl)
	c.size += tl.size
	if base != nil {
		base.views = append(slices.DeleteFunc(base.views, func(v *treeLoad) bool { return v.elem == nil }), tl)
	}
	return true
}

// evict drops a kept tree and its views.
func (c *cache) evict(tl *treeLoad) {
	if tl.elem == nil {
		return
	}
	c.lru.Remove(tl.elem)
	tl.elem = nil
	c.size -= tl.size
	if c.trees[tl.key] == tl {
		delete(c.trees, tl.key)
	}
	for _, v := range tl.views {
		c.evict(v)
	}
	tl.views = nil
}
