package ui

import (
	"context"
	"sync"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

// cache keeps decoded snapshots and recently used trees. Snapshot objects
// never change once written, so a loaded one is kept for good; the list of
// ids is read again on each request so that new backups show up.
type cache struct {
	repo *repo.Repository

	mu    sync.Mutex
	snaps map[repo.ID]*snapshot.Snapshot
	trees map[repo.ID][]*snapshot.Node
	blobs map[repo.ID][]byte // tree blobs, for snapshot.Resolve
	bytes int
}

const maxCachedBlobBytes = 64 << 20

const maxCachedTrees = 512

func newCache(r *repo.Repository) *cache {
	return &cache{repo: r, snaps: map[repo.ID]*snapshot.Snapshot{}, trees: map[repo.ID][]*snapshot.Node{}, blobs: map[repo.ID][]byte{}}
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
	c.blobs[id] = b
	c.bytes += len(b)
	c.mu.Unlock()
	return b, nil
}

// tree returns a directory's nodes, sorted by name. The slice is shared:
// callers must not modify it.
func (c *cache) tree(ctx context.Context, id repo.ID) ([]*snapshot.Node, error) {
	c.mu.Lock()
	nodes, ok := c.trees[id]
	c.mu.Unlock()
	if ok {
		return nodes, nil
	}
	nodes, err := snapshot.LoadTree(ctx, c.repo, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.trees) >= maxCachedTrees {
		clear(c.trees)
	}
	c.trees[id] = nodes
	c.mu.Unlock()
	return nodes, nil
}
