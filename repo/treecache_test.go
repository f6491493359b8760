package repo

import (
	"context"
	"fmt"
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
// with no pack read; the backup caches whole tree packs, not a file per
// tree; a damaged cached pack is dropped and costs one read from the store.
func TestTreeCache(t *testing.T) {
	ctx := context.Background()
	_, st := newTestRepo(t)
	cache := t.TempDir()
	counting := &packReads{Store: st}
	r := reopen(t, counting, OpenOptions{CacheDir: cache})
	trees := make(map[ID][]byte)
	if _, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
		for i := range 50 {
			tree := fmt.Appendf(nil, `{"version":1,"n":%d}`, i)
			id, _, err := s.Save(ctx, BlobTree, tree)
			if err != nil {
				return err
			}
			trees[id] = tree
			if _, _, err := s.Save(ctx, BlobData, fmt.Appendf(nil, "data %d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	dir := filepath.Join(cache, r.Config().ID)
	if n := countFiles(t, filepath.Join(dir, "treepacks")); n != 1 {
		t.Errorf("the backup cached %d tree packs, want 1", n)
	}
	if n := countFiles(t, filepath.Join(dir, "trees")); n != 0 {
		t.Errorf("the backup cached %d single trees, want none: trees are cached by pack", n)
	}

	r2 := reopen(t, counting, OpenOptions{CacheDir: cache})
	counting.n.Store(0)
	load := func(id ID) {
		t.Helper()
		if b, err := r2.LoadBlob(ctx, BlobTree, id); err != nil || string(b) != string(trees[id]) {
			t.Fatalf("LoadBlob: %q %v", b, err)
		}
	}
	for range 3 {
		for id := range trees {
			load(id)
		}
	}
	if n := counting.n.Load(); n != 0 {
		t.Errorf("%d pack reads for cached trees, want 0", n)
	}

	// Damage the cached pack without changing its size.
	var some ID
	for id := range trees {
		some = id
		break
	}
	loc, _ := r2.index.Lookup(some)
	path := filepath.Join(dir, "treepacks", loc.Pack.String()[:2], loc.Pack.String())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r2 = reopen(t, counting, OpenOptions{CacheDir: cache})
	counting.n.Store(0)
	load(some)
	if n := counting.n.Load(); n != 1 {
		t.Errorf("%d pack reads after damaging the cached pack, want 1", n)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the damaged cached pack was not removed: %v", err)
	}
	load(some)
	if n := counting.n.Load(); n != 1 {
		t.Errorf("%d pack reads in all after the tree was cached again, want 1", n)
	}
}

// Trees and file data never share a pack, so that the tree cache holds
// only trees and a snapshot's trees are found in few packs.
func TestTreesInPacksOfTheirOwn(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	saveBlobs(t, r, mixedBlobs(3, 200, 20_000))
	packsOf := make(map[BlobType]int)
	err := st.List(ctx, storage.KindPack, func(name string, size int64) error {
		id, err := ParseID(name)
		if err != nil {
			return err
		}
		entries, err := r.ReadPackTrailer(ctx, id, size)
		if err != nil {
			return err
		}
		packsOf[entries[0].Type]++
		for _, e := range entries[1:] {
			if e.Type != entries[0].Type {
				t.Errorf("pack %s holds %s and %s blobs", id.Short(), entries[0].Type, e.Type)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if packsOf[BlobData] == 0 || packsOf[BlobTree] == 0 {
		t.Errorf("packs by blob type: %v, want both types stored", packsOf)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		if os.IsNotExist(err) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
