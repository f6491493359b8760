package mount

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage/mem"
)

// storeFile saves a file of the given pieces, the holes among them
// (by index) as holes, and returns its extents and bytes.
func storeFile(t *testing.T, r *repo.Repository, seed int64, pieces []int, holes map[int]bool) ([]snapshot.Extent, []byte) {
	t.Helper()
	exts, data := storeFiles(t, r, seed, [][]int{pieces}, holes)
	return exts[0], data[0]
}

// storeFiles saves files in one backup's packs, each of the given
// pieces, and returns their extents and bytes; holes (by piece index)
// apply to every file.
func storeFiles(t *testing.T, r *repo.Repository, seed int64, files [][]int, holes map[int]bool) ([][]snapshot.Extent, [][]byte) {
	t.Helper()
	exts := make([][]snapshot.Extent, len(files))
	data := make([][]byte, len(files))
	_, err := r.WithBlobSaver(context.Background(), func(ctx context.Context, s *repo.BlobSaver) error {
		for f, pieces := range files {
			for i, n := range pieces {
				if holes[i] {
					exts[f] = append(exts[f], snapshot.Extent{Size: int64(n), Hole: true})
					data[f] = append(data[f], make([]byte, n)...)
					continue
				}
				b := testutil.RandomBytes(seed+int64(1000*f+i), n)
				id, _, err := s.Save(ctx, repo.BlobData, b)
				if err != nil {
					return err
				}
				exts[f] = append(exts[f], snapshot.Extent{ID: id, Size: int64(n)})
				data[f] = append(data[f], b...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return exts, data
}

func newTestRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Create(context.Background(), mem.New(), []byte("pw"), repo.CreateOptions{KDF: repo.TestKDF, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Random reads from many goroutines, through a cache far smaller than
// the file (so blobs are evicted and fetched again), with and without a
// spill cache (small enough to drop segments), return the file's
// bytes: holes as zeros, the end of the file short.
func TestReaderRandomReads(t *testing.T) {
	r := newTestRepo(t)
	pieces := []int{300 << 10, 5000, 700 << 10, 64 << 10, 1, 900 << 10, 200 << 10, 450 << 10}
	ext, want := storeFile(t, r, 1, pieces, map[int]bool{1: true, 6: true})
	c := newContent(&snapshot.Node{Type: snapshot.TypeFile, Size: int64(len(want)), Content: ext})
	for _, tc := range []struct {
		cache int64
		spill int64 // 0: none
	}{{1 << 20, 0}, {DefaultCacheBytes, 0}, {1 << 20, 1 << 20}, {1 << 20, DefaultSpillBytes}} {
		cache := tc.cache
		var spill *spillCache
		if tc.spill > 0 {
			spill = newTestSpill(t, tc.spill)
		}
		rd := newReader(context.Background(), r, cache, spill)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), uint64(cache+tc.spill)))
				for range 200 {
					off := rng.Int64N(int64(len(want)) + 10)
					p := make([]byte, 1+rng.IntN(400<<10))
					n, err := read(rd, c, p, off, rng.IntN(2) == 0)
					if err != nil {
						t.Errorf("read at %d+%d: %v", off, len(p), err)
						return
					}
					wantN := max(0, min(int64(len(p)), int64(len(want))-off))
					if int64(n) != wantN || !bytes.Equal(p[:n], want[off:off+wantN]) {
						t.Errorf("read at %d+%d: %d bytes, not the file's %d", off, len(p), n, wantN)
						return
					}
				}
			})
		}
		wg.Wait()
		rd.wait()
		if rd.cache.size > cache+int64(900<<10) {
			t.Errorf("cache holds %d bytes, bound %d", rd.cache.size, cache)
		}
	}
}

// readAt fills p from byte off of a file and returns the bytes read,
// fewer only at the end of the file: slices, copied, for the tests.
func (rd *reader) readAt(c *content, p []byte, off int64, sequential bool, next iter.Seq[[]snapshot.Extent]) (int, error) {
	vs, err := rd.slices(context.Background(), c, off, len(p), sequential, next)
	n := 0
	for _, v := range vs {
		n += copy(p[n:], v)
	}
	return n, err
}

// read reads as the FUSE node does, through slices of the cache (copied
// into p for the test).
func read(rd *reader, c *content, p []byte, off int64, sequential bool) (int, error) {
	return rd.readAt(c, p, off, sequential, nil)
}

// failingSource fails the authentication of one blob, as OpenBlob does
// with a blob damaged in its pack.
type failingSource struct {
	*repo.Repository
	bad   repo.ID
	fails int
	mu    sync.Mutex
}

func (s *failingSource) OpenBlob(ref repo.BlobRef, sealed []byte) ([]byte, error) {
	if ref.ID == s.bad {
		s.mu.Lock()
		s.fails++
		s.mu.Unlock()
		return nil, &repo.IntegrityError{Kind: "blob", Name: ref.ID.String(), Err: errors.New("tampered")}
	}
	return s.Repository.OpenBlob(ref, sealed)
}

// A damaged blob fails the reads that need it, every time (nothing
// wrong is cached), while the blobs around it, fetched in the same run,
// still read right.
func TestReaderDamagedBlob(t *testing.T) {
	r := newTestRepo(t)
	ext, want := storeFile(t, r, 2, []int{100 << 10, 100 << 10, 100 << 10}, nil)
	src := &failingSource{Repository: r, bad: ext[1].ID}
	c := newContent(&snapshot.Node{Type: snapshot.TypeFile, Size: int64(len(want)), Content: ext})
	rd := newReader(context.Background(), src, DefaultCacheBytes, nil)
	for range 2 {
		p := make([]byte, 10)
		if _, err := read(rd, c, p, 150<<10, false); !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("read of the damaged blob: %v, want an integrity error", err)
		}
		for _, off := range []int64{0, 250 << 10} {
			n, err := read(rd, c, p, off, false)
			if err != nil || !bytes.Equal(p[:n], want[off:off+10]) {
				t.Fatalf("read at %d beside the damaged blob: %v", off, err)
			}
		}
	}
	if src.fails < 2 {
		t.Errorf("the damaged blob was fetched %d times: a failure must not be cached", src.fails)
	}
}

// A blob whose plaintext is not the size the tree records is an
// integrity error, not bytes of the wrong length.
func TestReaderSizeMismatch(t *testing.T) {
	r := newTestRepo(t)
	ext, _ := storeFile(t, r, 3, []int{64 << 10}, nil)
	ext[0].Size++
	c := newContent(&snapshot.Node{Type: snapshot.TypeFile, Size: ext[0].Size, Content: ext})
	rd := newReader(context.Background(), r, DefaultCacheBytes, nil)
	if _, err := rd.readAt(c, make([]byte, 10), 0, false, nil); !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("read: %v, want an integrity error", err)
	}
}

// A fetch goes on into the next files of the directory: reading the
// first of many small files fetches the others with it.
func TestReaderRunsIntoNextFiles(t *testing.T) {
	r := newTestRepo(t)
	var sizes [][]int
	for i := range 20 {
		sizes = append(sizes, []int{3000 + i})
	}
	files, data := storeFiles(t, r, 100, sizes, nil)
	next := func(yield func([]snapshot.Extent) bool) {
		for _, ext := range files[1:] {
			if !yield(ext) {
				return
			}
		}
	}
	rd := newReader(context.Background(), r, DefaultCacheBytes, nil)
	c := newContent(&snapshot.Node{Type: snapshot.TypeFile, Size: int64(len(data[0])), Content: files[0]})
	p := make([]byte, len(data[0]))
	if n, err := rd.readAt(c, p, 0, false, next); err != nil || !bytes.Equal(p[:n], data[0]) {
		t.Fatalf("first file: %v", err)
	}
	rd.wait()
	for i, ext := range files {
		if !rd.cache.has(ext[0].ID) {
			t.Errorf("file %d was not fetched with the first", i)
		}
	}
}

// Once the pack order is built, a fetch goes on through the blobs stored
// after the one read, whatever file they belong to: reading the first of
// many small files, without knowing the others, fetches them with it.
func TestReaderRunsInPackOrder(t *testing.T) {
	r := newTestRepo(t)
	var sizes [][]int
	for i := range 20 {
		sizes = append(sizes, []int{3000 + i})
	}
	files, data := storeFiles(t, r, 200, sizes, nil)
	rd := newReader(context.Background(), r, DefaultCacheBytes, nil)
	rd.wait() // the pack order is built
	if rd.packs.Load() == nil {
		t.Fatal("no pack order")
	}
	c := newContent(&snapshot.Node{Type: snapshot.TypeFile, Size: int64(len(data[0])), Content: files[0]})
	p := make([]byte, len(data[0]))
	if n, err := read(rd, c, p, 0, false); err != nil || !bytes.Equal(p[:n], data[0]) {
		t.Fatalf("first file: %v", err)
	}
	rd.wait()
	for i, ext := range files {
		if !rd.cache.has(ext[0].ID) {
			t.Errorf("file %d, stored after the first, was not fetched with it", i)
		}
	}
}

// A file that could not be read in full at backup time is as long as
// what the snapshot holds of it, as restore writes it, not its size on
// disk then padded with bytes it never held; a tree whose size says more
// than its content holds, without saying why, is an error, not zeros.
func TestReaderShortContent(t *testing.T) {
	r := newTestRepo(t)
	ext, want := storeFile(t, r, 3, []int{5000}, nil)
	rd := newReader(context.Background(), r, DefaultCacheBytes, nil)
	for _, tc := range []struct {
		name    string
		node    snapshot.Node
		size    int64
		want    []byte
		corrupt bool
	}{
		{"unreadable, nothing stored", snapshot.Node{Size: 7, Error: "permission denied"}, 0, nil, false},
		{"unreadable, a part stored", snapshot.Node{Size: 9000, Content: ext, Error: "input/output error"}, 5000, want, false},
		{"size past the content", snapshot.Node{Size: 9000, Content: ext}, 9000, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.Type = snapshot.TypeFile
			if got := fileSize(&tc.node); got != tc.size {
				t.Errorf("size %d, want %d", got, tc.size)
			}
			p := make([]byte, 10000)
			n, err := read(rd, newContent(&tc.node), p, 0, false)
			if tc.corrupt {
				if !errors.Is(err, repo.ErrCorrupt) {
					t.Errorf("read: %d bytes, %v; want an error matching repo.ErrCorrupt", n, err)
				}
				return
			}
			if err != nil || !bytes.Equal(p[:n], tc.want) {
				t.Errorf("read: %d bytes, %v; want the %d stored", n, err, len(tc.want))
			}
		})
	}
}
