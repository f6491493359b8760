package repo

import (
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/cofferhq/coffer/internal/cachefile"
)

// treeCache keeps sealed tree blobs on local disk, as they are in their
// packs, so that walking a snapshot again (the next backup's comparison
// with its parent, ls, diff, the UI) costs no request to a remote store.
// Only ciphertext is cached, and every read is authenticated like one from
// the store, so a damaged entry costs a read from the store and nothing
// else.
//
// Entries are of two kinds. A backup stores tree blobs in packs of their
// own and caches each such pack whole when it is stored: one file per
// pack, because creating a file per tree costs more than the rest of the
// backup's I/O on a directory-heavy source. A tree read from the store on
// a miss (another machine's backup, a cleared cache) is cached on its own.
//
// A nil *treeCache caches nothing.
type treeCache struct {
	dir string

	mu    sync.Mutex
	packs map[ID]*os.File // open cached packs; nil value: known absent
}

// maxOpenCachedPacks bounds the file descriptors the cache keeps open; a
// pack beyond it is opened for each read.
const maxOpenCachedPacks = 64

func newTreeCache(dir string) *treeCache {
	if dir == "" {
		return nil
	}
	return &treeCache{dir: dir, packs: make(map[ID]*os.File)}
}

func (c *treeCache) packPath(pack ID) string {
	s := pack.String()
	return filepath.Join(c.dir, "treepacks", s[:2], s)
}

func (c *treeCache) blobPath(id ID) string {
	s := id.String()
	return filepath.Join(c.dir, "trees", s[:2], s)
}

// load returns the tree at loc opened by open, or nil when the cache has
// no copy that open accepts. A cached pack that fails is removed, so that
// a damaged copy costs one store read, not one per tree.
func (c *treeCache) load(id ID, loc Location, open func(sealed []byte) ([]byte, error)) []byte {
	if c == nil {
		return nil
	}
	if sealed := c.fromPack(loc); sealed != nil {
		if plain, err := open(sealed); err == nil {
			return plain
		}
		c.dropPack(loc.Pack)
	}
	if sealed, err := os.ReadFile(c.blobPath(id)); err == nil {
		if plain, err := open(sealed); err == nil {
			return plain
		}
	}
	return nil
}

func (c *treeCache) fromPack(loc Location) []byte {
	c.mu.Lock()
	f, known := c.packs[loc.Pack]
	if !known {
		var err error
		if f, err = os.Open(c.packPath(loc.Pack)); err != nil {
			f = nil
		}
		if len(c.packs) < maxOpenCachedPacks {
			c.packs[loc.Pack] = f
		} else if f != nil {
			defer f.Close()
		}
	}
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	b := make([]byte, loc.Length)
	if _, err := f.ReadAt(b, int64(loc.Offset)); err != nil {
		return nil
	}
	return b
}

func (c *treeCache) dropPack(pack ID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.packs[pack]; f != nil {
		f.Close()
	}
	c.packs[pack] = nil
	_ = os.Remove(c.packPath(pack))
}

// putBlob caches one sealed tree.
func (c *treeCache) putBlob(id ID, sealed []byte) {
	if c != nil {
		cachefile.Write(c.blobPath(id), sealed)
	}
}

// putPack caches a pack of trees, read from r.
func (c *treeCache) putPack(pack ID, r io.Reader) {
	if c == nil {
		return
	}
	cachefile.Copy(c.packPath(pack), r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.packs[pack]; ok && f == nil {
		delete(c.packs, pack) // no longer absent
	}
}

// close releases the open cached packs.
func (c *treeCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, f := range c.packs {
		if f != nil {
			f.Close()
		}
		delete(c.packs, id)
	}
}
