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
