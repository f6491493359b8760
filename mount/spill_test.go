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
		kept := k >= 4
		if s.has(id) != kept {
			t.Errorf("blob %d of segment %d: kept %v, want %v (the oldest segments are dropped)", k%2, k/2, !kept, kept)
		}
		b, ok := s.take(id)
		if ok != kept || s.has(id) {
			t.Errorf("blob %d of segment %d: taken %v (want %v), still there after %v", k%2, k/2, ok, kept, s.has(id))
		}
		if ok && !bytes.Equal(b, bytes.Repeat([]byte{byte(10*(k/2) + k%2)}, 500)) {
			t.Errorf("blob %d of segment %d: wrong bytes", k%2, k/2)
		}
	}
	if s.size != 0 || s.segs.Len() != 0 {
		t.Errorf("with every blob taken, %d bytes in %d segments are kept", s.size, s.segs.Len())
	}
	for i := range 5 { // as before, for the next check
		seg := s.newSegment()
		for j := range 2 {
			s.put(seg, repo.ID{byte(i), byte(j)}, make([]byte, 500))
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

// Segments stay in memory up to memMax, then the oldest go to disk,
// whole, and read back the same; a blob taken leaves the cache, and a
// segment whose blobs have all been taken goes at once.
func TestSpillCacheTiers(t *testing.T) {
	s := newTestSpill(t, 10000)
	s.memMax = 1000
	blob := func(i, j int) []byte { return bytes.Repeat([]byte{byte(10*i + j)}, 400) }
	var segs []*spillSeg
	for i := range 2 {
		seg := s.newSegment()
		for j := range 2 {
			if !s.put(seg, repo.ID{byte(i), byte(j)}, blob(i, j)) {
				t.Fatalf("segment %d: blob %d not kept", i, j)
			}
		}
		segs = append(segs, seg)
	}
	if segs[0].f == nil || segs[1].f != nil || s.memSize != 800 || s.size != 1600 {
		t.Fatalf("after 1,600 bytes with 1,000 allowed in memory: first segment on disk %v, second on disk %v, %d bytes in memory, %d in all",
			segs[0].f != nil, segs[1].f != nil, s.memSize, s.size)
	}
	take := func(i, j int) {
		t.Helper()
		if b, ok := s.take(repo.ID{byte(i), byte(j)}); !ok || !bytes.Equal(b, blob(i, j)) {
			t.Errorf("blob %d of segment %d: kept %v, right bytes %v", j, i, ok, bytes.Equal(b, blob(i, j)))
		}
	}
	take(1, 0)
	if s.memSize != 400 || s.size != 1200 || segs[1].elem == nil {
		t.Errorf("one blob in memory taken: %d bytes in memory, %d in all", s.memSize, s.size)
	}
	take(1, 1)
	take(0, 0)
	if segs[1].elem != nil || s.memSize != 0 || s.size != 800 {
		t.Errorf("a segment whose blobs were all taken is kept: %d bytes in memory, %d in all", s.memSize, s.size)
	}
	if s.has(repo.ID{0, 0}) || !s.has(repo.ID{0, 1}) || segs[0].elem == nil {
		t.Errorf("after one of its two blobs was taken: the taken one spilled %v, the other %v", s.has(repo.ID{0, 0}), s.has(repo.ID{0, 1}))
	}
	take(0, 1)
	if segs[0].elem != nil || s.size != 0 {
		t.Errorf("the segment on disk is kept with all its blobs taken: %d bytes", s.size)
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

// A sequential read fetches the span of the pack after it; the blobs of
// another file in that span go to the spill cache, sealed, and that file
// is then read from there without a fetch. A byte changed in a spilled
// blob is an integrity error, not data, and the next read fetches the
// blob from the store again.
func TestReaderSpill(t *testing.T) {
	for _, tier := range []struct {
		name   string
		memMax int64
	}{{"memory", spillMemBytes}, {"disk", 0}} {
		t.Run(tier.name, func(t *testing.T) { testReaderSpill(t, tier.memMax) })
	}
}

func testReaderSpill(t *testing.T, memMax int64) {
	r := newTestRepo(t)
	files, data := storeFiles(t, r, 300, [][]int{{40 << 10, 50 << 10, 60 << 10}, {30 << 10, 70 << 10}}, nil)
	src := &countingSource{Repository: r}
	spill := newTestSpill(t, DefaultSpillBytes)
	spill.memMax = memMax
	rd := newReader(context.Background(), src, DefaultCacheBytes, spill)
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
	fetches := src.fetches.Load()

	// Damage the second file's first blob where it is spilled.
	loc := rd.spill.m[files[1][0].ID]
	if onDisk := loc.seg.f != nil; onDisk != (memMax == 0) {
		t.Fatalf("spilled blob on disk: %v, with %d bytes allowed in memory", onDisk, memMax)
	}
	if loc.seg.f == nil {
		loc.mem[loc.n/2] ^= 1
	} else {
		at := loc.off + int64(loc.n)/2
		one := make([]byte, 1)
		if _, err := loc.seg.f.ReadAt(one, at); err != nil {
			t.Fatal(err)
		}
		one[0] ^= 1
		if _, err := loc.seg.f.WriteAt(one, at); err != nil {
			t.Fatal(err)
		}
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
