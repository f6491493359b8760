package mount

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

func newTestSpill(t *testing.T, max int64) *spillCache {
	t.Helper()
	s, err := newSpillCache(t.TempDir(), max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

// The spill cache keeps what was put until its segments exceed the
// bound, then drops the oldest segments whole (never the one being
// written); close removes its directory.
func TestSpillCacheBound(t *testing.T) {
	s := newTestSpill(t, 3000)
	var ids []repo.ID
	for i := range 5 {
		seg := s.newSegment()
		for j := range 2 {
			id := repo.ID{byte(i), byte(j)}
			if !s.put(seg, id, bytes.Repeat([]byte{byte(10*i + j)}, 500)) {
				t.Fatalf("segment %d: blob %d not kept", i, j)
			}
			ids = append(ids, id)
		}
		if s.size > 3000 {
			t.Fatalf("after segment %d: %d bytes spilled, bound 3000", i, s.size)
		}
	}
	for k, id := range ids {
		b, ok := s.get(id)
		if kept := k >= 4; ok != kept || s.has(id) != kept {
			t.Errorf("blob %d of segment %d: kept %v, want %v (the oldest segments are dropped)", k%2, k/2, ok, kept)
		}
		if ok && !bytes.Equal(b, bytes.Repeat([]byte{byte(10*(k/2) + k%2)}, 500)) {
			t.Errorf("blob %d of segment %d: wrong bytes", k%2, k/2)
		}
	}
	// A segment larger than the bound by itself is kept while written.
	seg := s.newSegment()
	for j := range 8 {
		if !s.put(seg, repo.ID{9, byte(j)}, make([]byte, 500)) {
			t.Fatalf("blob %d of the segment being written was dropped", j)
		}
	}
	if s.has(ids[len(ids)-1]) {
		t.Error("an older segment was kept past the bound")
	}
	dir := s.dir
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spill directory is left after close: %v", err)
	}
}

// countingSource counts the fetches that reach the store.
type countingSource struct {
	*repo.Repository
	fetches atomic.Int64
}

func (s *countingSource) LoadSealedBlobs(ctx context.Context, pack repo.ID, blobs []repo.BlobRef, fn func(repo.BlobRef, []byte) error) error {
	s.fetches.Add(1)
	return s.Repository.LoadSealedBlobs(ctx, pack, blobs, fn)
}

// A sequential read fetches the span of the pack after it; the chunks of
// another file in that span go to the spill cache, sealed, and that file
// is then read from there without a fetch, while a small file's blob
// (up to pushMax) is decrypted into memory. A byte changed in a spilled
// blob is an integrity error, not data, and the next read fetches the
// blob from the store again.
func TestReaderSpill(t *testing.T) {
	r := newTestRepo(t)
	files, data := storeFiles(t, r, 300, [][]int{{pushMax + 1}, {pushMax + 1<<10, pushMax + 2<<10}, {30 << 10}}, nil)
	src := &countingSource{Repository: r}
	rd := newReader(context.Background(), src, DefaultCacheBytes, newTestSpill(t, DefaultSpillBytes))
	rd.wait() // the pack order is built
	a := newContent(&snapshot.Node{Type: snapshot.TypeFile, Size: int64(len(data[0])), Content: files[0]})
	b := newContent(&snapshot.Node{Type: snapshot.TypeFile, Size: int64(len(data[1])), Content: files[1]})
	p := make([]byte, len(data[0]))
	if n, err := rd.readAt(a, p, 0, true, nil); err != nil || !bytes.Equal(p[:n], data[0]) {
		t.Fatalf("first file: %d bytes, %v", n, err)
	}
	rd.wait()
	for i, x := range files[1] {
		if !rd.spill.has(x.ID) || rd.cache.has(x.ID) {
			t.Fatalf("blob %d of the second file: spilled %v, in memory %v; want spilled only", i, rd.spill.has(x.ID), rd.cache.has(x.ID))
		}
	}
	if x := files[2][0]; rd.spill.has(x.ID) || rd.cache.get(x.ID) == nil || rd.cache.get(x.ID).data == nil {
		t.Fatalf("the small file's blob: spilled %v, in memory %v; want decrypted in memory only", rd.spill.has(x.ID), rd.cache.has(x.ID))
	}
	fetches := src.fetches.Load()

	// Damage the second file's first blob where it is spilled.
	loc := rd.spill.m[files[1][0].ID]
	one := make([]byte, 1)
	if _, err := loc.seg.f.ReadAt(one, loc.off+int64(loc.n)/2); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 1
	if _, err := loc.seg.f.WriteAt(one, loc.off+int64(loc.n)/2); err != nil {
		t.Fatal(err)
	}
	q := make([]byte, len(data[1]))
	if _, err := rd.readAt(b, q, 0, false, nil); !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("read of a damaged spilled blob: %v, want an integrity error", err)
	}
	if got := src.fetches.Load(); got != fetches {
		t.Fatalf("%d fetches for a spilled blob, want none", got-fetches)
	}
	// Its second blob comes from the spill cache; the damaged first one,
	// dropped from it, from the store.
	n, err := rd.readAt(b, q, 0, false, nil)
	if err != nil || !bytes.Equal(q[:n], data[1]) {
		t.Fatalf("second file after the damage: %d bytes, %v", n, err)
	}
	if got := src.fetches.Load() - fetches; got != 1 {
		t.Errorf("%d fetches to read the second file again, want 1 (its damaged blob)", got)
	}
}
