package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// cachedIndexes returns the names of the entries in a repository's index
// cache directory.
func cachedIndexes(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func TestIndexCache(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	var blobs []testBlob
	var ids []ID
	for seed := range uint64(3) {
		b := mixedBlobs(20+seed, 10, 32<<10)
		got, _ := saveBlobs(t, r, b)
		blobs, ids = append(blobs, b...), append(ids, got...)
	}
	indexes := objectNames(t, st, storage.KindIndex)
	if len(indexes) != 3 {
		t.Fatalf("%d index objects, want 3", len(indexes))
	}
	base := t.TempDir()
	dir := filepath.Join(base, r.Config().ID, "index")
	opt := OpenOptions{CacheDir: base}
	loadAll := func(r *Repository) {
		t.Helper()
		for i, b := range blobs {
			if got, err := r.LoadBlob(ctx, b.typ, ids[i]); err != nil || !bytes.Equal(got, b.data) {
				t.Fatalf("blob %d: %v", i, err)
			}
		}
	}
	checkCache := func(want []string) {
		t.Helper()
		if got := cachedIndexes(t, dir); !slices.Equal(got, want) {
			t.Fatalf("cache holds %v, want %v", got, want)
		}
		for _, name := range want {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, getObject(t, st, storage.KindIndex, name)) {
				t.Errorf("cached index %s differs from the stored one", name[:8])
			}
		}
	}

	// The first load fills the cache.
	loadAll(reopen(t, st, opt))
	checkCache(indexes)

	// A cached index is used: the store's copy is not needed while the
	// cached one is intact.
	victim := indexes[1]
	stored := getObject(t, st, storage.KindIndex, victim)
	putObject(t, st, storage.KindIndex, victim, flipped(stored, len(stored)/2))
	loadAll(reopen(t, st, opt))
	if err := openTestRepo(t, st, testPassphrase, OpenOptions{}).LoadIndex(ctx); err == nil {
		t.Fatal("without the cache, the damaged stored index loaded")
	}
	putObject(t, st, storage.KindIndex, victim, stored)

	// A damaged cache file is ignored and fetched again.
	tests := []struct {
		name string
		b    []byte
	}{
		{"byte flipped", flipped(stored, 3)},
		{"truncated", stored[:len(stored)/2]},
		{"empty", nil},
		{"another index", getObject(t, st, storage.KindIndex, indexes[0])},
	}
	for _, tt := range tests {
		if err := os.WriteFile(filepath.Join(dir, victim), tt.b, 0o600); err != nil {
			t.Fatal(err)
		}
		r2 := reopen(t, st, opt)
		loadAll(r2)
		checkCache(indexes)
	}
	// So is a cache entry that is a directory, not a file.
	if err := os.Remove(filepath.Join(dir, victim)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, victim), 0o700); err != nil {
		t.Fatal(err)
	}
	loadAll(reopen(t, st, opt))
	if err := os.Remove(filepath.Join(dir, victim)); err != nil {
		t.Fatal(err)
	}
	loadAll(reopen(t, st, opt))
	checkCache(indexes)

	// An index no longer in the store leaves the cache, as do stray files.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, storage.KindIndex, indexes[2]); err != nil {
		t.Fatal(err)
	}
	reopen(t, st, opt)
	checkCache(indexes[:2])

	// A backup in a session with a cache caches its new index at once.
	r3 := reopen(t, st, opt)
	saveBlobs(t, r3, mixedBlobs(30, 5, 1000))
	now := objectNames(t, st, storage.KindIndex)
	if len(now) != 3 {
		t.Fatalf("%d index objects, want 3", len(now))
	}
	checkCache(now)

	// Another repository's cache lives in its own directory.
	other, otherStore := newTestRepo(t)
	saveBlobs(t, other, mixedBlobs(31, 5, 1000))
	reopen(t, otherStore, opt)
	checkCache(now)
	if got := cachedIndexes(t, filepath.Join(base, other.Config().ID, "index")); !slices.Equal(got, objectNames(t, otherStore, storage.KindIndex)) {
		t.Errorf("the other repository's cache holds %v", got)
	}
}

// TestIndexCacheUnwritable checks the cache is only an optimisation: a
// cache directory that cannot be created does not stop LoadIndex.
func TestIndexCacheUnwritable(t *testing.T) {
	r, st := newTestRepo(t)
	ids, _ := saveBlobs(t, r, []testBlob{{BlobData, []byte("cached or not")}})
	base := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(base, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	r2 := reopen(t, st, OpenOptions{CacheDir: base})
	if got, err := r2.LoadBlob(context.Background(), BlobData, ids[0]); err != nil || string(got) != "cached or not" {
		t.Errorf("LoadBlob: %q, %v", got, err)
	}
}

// Snapshots are cached as index objects are: the first load fills the
// cache, an intact cached copy is used (a damaged stored one does not
// matter then), a damaged cached one is fetched again, and a listing
// drops the snapshots the store no longer has.
func TestSnapshotCache(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	var ids []ID
	var names []string
	for i := range 3 {
		id, err := r.SaveObject(ctx, storage.KindSnapshot, []byte(fmt.Sprintf(`{"snapshot":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids, names = append(ids, id), append(names, id.String())
	}
	slices.Sort(names)
	base := t.TempDir()
	dir := filepath.Join(base, r.Config().ID, "snapshots")
	opt := OpenOptions{CacheDir: base}
	load := func(r *Repository, i int) error {
		t.Helper()
		b, err := r.LoadObject(ctx, storage.KindSnapshot, ids[i])
		if err == nil && string(b) != fmt.Sprintf(`{"snapshot":%d}`, i) {
			t.Fatalf("snapshot %d reads %q", i, b)
		}
		return err
	}

	r2 := reopen(t, st, opt)
	for i := range ids {
		if err := load(r2, i); err != nil {
			t.Fatal(err)
		}
	}
	if got := cachedIndexes(t, dir); !slices.Equal(got, names) {
		t.Fatalf("the snapshot cache holds %v, want %v", got, names)
	}

	stored := getObject(t, st, storage.KindSnapshot, ids[0].String())
	putObject(t, st, storage.KindSnapshot, ids[0].String(), flipped(stored, len(stored)/2))
	if err := load(reopen(t, st, opt), 0); err != nil {
		t.Fatalf("with an intact cached copy, a damaged stored snapshot: %v", err)
	}
	if err := load(reopen(t, st, OpenOptions{}), 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("without the cache, a damaged stored snapshot: %v, want an integrity error", err)
	}
	putObject(t, st, storage.KindSnapshot, ids[0].String(), stored)

	cached := filepath.Join(dir, ids[0].String())
	if err := os.WriteFile(cached, flipped(stored, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := load(reopen(t, st, opt), 0); err != nil {
		t.Fatalf("with a damaged cached copy: %v", err)
	}
	if b, err := os.ReadFile(cached); err != nil || !bytes.Equal(b, stored) {
		t.Errorf("a damaged cached snapshot was not replaced by the stored one: %v", err)
	}

	if err := st.Delete(ctx, storage.KindSnapshot, ids[2].String()); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.ListObjects(ctx, storage.KindSnapshot); err != nil {
		t.Fatal(err)
	}
	want := []string{ids[0].String(), ids[1].String()}
	slices.Sort(want)
	if got := cachedIndexes(t, dir); !slices.Equal(got, want) {
		t.Errorf("after a listing without snapshot %s, the cache holds %v", ids[2].Short(), got)
	}
}
