package repo

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// packReads counts pack reads of a store.
type packReads struct {
	storage.Store
	n atomic.Int64
}

func (p *packReads) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if kind == storage.KindPack {
		p.n.Add(1)
	}
	return p.Store.Get(ctx, kind, name, rng)
}

// Tree blobs are served from the local cache after a backup stored them,
// with no pack read; a damaged cache entry is read from the store again.
func TestTreeCache(t *testing.T) {
	ctx := context.Background()
	_, st := newTestRepo(t)
	cache := t.TempDir()
	counting := &packReads{Store: st}
	r := reopen(t, counting, OpenOptions{CacheDir: cache})
	tree := []byte(`{"version":1}`)
	var id ID
	if _, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
		var err error
		id, _, err = s.Save(ctx, BlobTree, tree)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	r2 := reopen(t, counting, OpenOptions{CacheDir: cache})
	counting.n.Store(0)
	for range 3 {
		if b, err := r2.LoadBlob(ctx, BlobTree, id); err != nil || string(b) != string(tree) {
			t.Fatalf("LoadBlob: %q %v", b, err)
		}
	}
	if n := counting.n.Load(); n != 0 {
		t.Errorf("%d pack reads for a cached tree, want 0", n)
	}

	path := filepath.Join(cache, r2.Config().ID, "trees", id.String()[:2], id.String())
	if err := os.WriteFile(path, []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := r2.LoadBlob(ctx, BlobTree, id); err != nil || string(b) != string(tree) {
		t.Fatalf("LoadBlob with a damaged cache entry: %q %v", b, err)
	}
	if n := counting.n.Load(); n != 1 {
		t.Errorf("%d pack reads after a damaged cache entry, want 1", n)
	}
	if b, _ := os.ReadFile(path); string(b) == "damaged" {
		t.Error("the damaged cache entry was not replaced")
	}
}
