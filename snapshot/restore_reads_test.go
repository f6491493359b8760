package snapshot

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// countingStore counts reads of packs larger than any tree blob here, that
// is, reads of file content.
type countingStore struct {
	storage.Store
	packGets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if kind == storage.KindPack && (rng == nil || rng.Length > 256<<10) {
		c.packGets.Add(1)
	}
	return c.Store.Get(ctx, kind, name, rng)
}

// Restoring a file whose chunks sit next to each other in one pack takes
// one ranged read, not one per chunk.
func TestRestoreCoalescesReads(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: mem.New()}
	r, err := repo.Create(ctx, st, []byte("pw"), repo.CreateOptions{KDF: repo.TestKDF, PackSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	data := testutil.RandomBytes(3, 12<<20) // about 12 chunks of ~1 MiB, under one coalesced read
	if err := os.WriteFile(filepath.Join(src, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sn, err := Backup(ctx, r, BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	node, _, err := Resolve(ctx, r, sn, "big")
	if err != nil {
		t.Fatal(err)
	}
	if len(node.Content) < 6 {
		t.Fatalf("only %d chunks: the test needs many", len(node.Content))
	}
	st.packGets.Store(0)
	if _, err := Restore(ctx, r, sn, "big", RestoreOptions{Target: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if got := st.packGets.Load(); got != 1 {
		t.Errorf("restoring %d chunks from one pack took %d reads, want 1", len(node.Content), got)
	}
}

// treeReads counts every read of a pack.
type treeReads struct {
	storage.Store
	gets atomic.Int64
}

func (c *treeReads) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if kind == storage.KindPack {
		c.gets.Add(1)
	}
	return c.Store.Get(ctx, kind, name, rng)
}

// Walking a snapshot's trees with no cache (sync, stats) reads a level
// of directories at a time, one request per pack and level, not one per
// directory; the blobs found are the same either way.
func TestTreeWalkReadsByLevel(t *testing.T) {
	ctx := context.Background()
	st := &treeReads{Store: mem.New()}
	r, err := repo.Create(ctx, st, []byte("pw"), repo.CreateOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for i := range 60 { // 60 directories of 3 levels
		dir := filepath.Join(src, string(rune('a'+i%20)), string(rune('a'+i/20)), "leaf")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sn, err := Backup(ctx, r, BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	cold, err := repo.Open(ctx, st, func() ([]byte, error) { return []byte("pw"), nil }, repo.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cold.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	st.gets.Store(0)
	byLevel := map[repo.ID]repo.BlobType{}
	if err := treeBlobs(ctx, cold, sn.Tree, byLevel); err != nil {
		t.Fatal(err)
	}
	levels := int64(len(splitPath(src)) + 4) // the path to src, then three levels and the files' level
	if got := st.gets.Load(); got > levels {
		t.Errorf("a cold walk of %d trees made %d pack reads; want at most one per level (%d)", len(byLevel), got, levels)
	}
	oneByOne := map[repo.ID]repo.BlobType{}
	if err := treeBlobs(ctx, blobLoaderOnly{cold}, sn.Tree, oneByOne); err != nil {
		t.Fatal(err)
	}
	if len(oneByOne) != len(byLevel) || len(byLevel) < 60+61 {
		t.Errorf("walks found %d and %d blobs", len(byLevel), len(oneByOne))
	}
	for id, typ := range oneByOne {
		if byLevel[id] != typ {
			t.Errorf("blob %s: %v one by one, %v by level", id.Short(), typ, byLevel[id])
		}
	}
}

// blobLoaderOnly hides a repository's LoadTrees.
type blobLoaderOnly struct{ r *repo.Repository }

func (b blobLoaderOnly) LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID) ([]byte, error) {
	return b.r.LoadBlob(ctx, t, id)
}

func splitPath(p string) []string {
	var parts []string
	for p != "/" && p != "." {
		parts = append(parts, filepath.Base(p))
		p = filepath.Dir(p)
	}
	return parts
}
