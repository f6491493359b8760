//go:build linux

package snapshot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// problemRecorder collects what Check reports.
type problemRecorder []error

func (p *problemRecorder) add(err error) { *p = append(*p, err) }

func (p problemRecorder) String() string {
	var b strings.Builder
	for _, err := range p {
		b.WriteString("\n  " + err.Error())
	}
	return b.String()
}

// mentions reports whether a problem wraps target and names every one
// of names.
func (p problemRecorder) mentions(target error, names ...string) bool {
	for _, err := range p {
		if !errors.Is(err, target) {
			continue
		}
		all := true
		for _, n := range names {
			all = all && strings.Contains(err.Error(), n)
		}
		if all {
			return true
		}
	}
	return false
}

// storedPacks returns the packs in st and their sizes.
func storedPacks(t *testing.T, st storage.Store) map[string]int64 {
	t.Helper()
	packs := map[string]int64{}
	if err := st.List(t.Context(), storage.KindPack, func(name string, size int64) error {
		packs[name] = size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return packs
}

// reachable returns the tree and data blob ids the snapshots reference.
func reachable(t *testing.T, r *repo.Repository, sns ...*Snapshot) (trees, data map[repo.ID]bool) {
	t.Helper()
	trees, data = map[repo.ID]bool{}, map[repo.ID]bool{}
	for _, sn := range sns {
		trees[sn.Tree] = true
		err := Walk(t.Context(), r, "/", sn.Tree, func(_ string, n *Node) error {
			if n.Type == TypeDir {
				trees[n.Subtree] = true
			}
			for _, e := range n.Content {
				if !e.Hole {
					data[e.ID] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return trees, data
}

// TestCheckClean checks a healthy repository of two snapshots: no
// problems with or without reading the data, and counts that match what
// the snapshots reference and the store holds.
func TestCheckClean(t *testing.T) {
	t.Parallel()
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			src := t.TempDir()
			testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 7, Files: 20})
			st := sk.open(t)
			r := newRepo(t, st)
			first := backup(t, r, src, BackupOptions{})
			writeFile(t, filepath.Join(src, "a/added.bin"), testutil.RandomBytes(70, 300<<10), 0o644)
			second := backup(t, r, src, BackupOptions{})

			r = reopen(t, st)
			trees, data := reachable(t, r, first, second)
			packs := storedPacks(t, st)
			var packBytes int64
			for _, size := range packs {
				packBytes += size
			}
			if len(packs) < 2 {
				t.Fatalf("only %d packs: the test needs several", len(packs))
			}
			for _, readData := range []bool{false, true} {
				var problems problemRecorder
				res, err := Check(t.Context(), r, CheckOptions{ReadData: readData}, problems.add)
				if err != nil {
					t.Fatal(err)
				}
				if res.Problems != 0 || len(problems) != 0 {
					t.Errorf("ReadData=%v: %d problems:%s", readData, res.Problems, problems)
				}
				if res.Snapshots != 2 || res.Packs != len(packs) || res.UnindexedPacks != 0 || res.Trees != len(trees) || res.DataBlobs != len(data) {
					t.Errorf("ReadData=%v: %+v; want 2 snapshots, %d packs, 0 unindexed, %d trees, %d data blobs",
						readData, res, len(packs), len(trees), len(data))
				}
				wantRead, wantBytes := 0, int64(0)
				if readData {
					wantRead, wantBytes = len(packs), packBytes
				}
				if res.PacksRead != wantRead || res.BytesRead != wantBytes {
					t.Errorf("ReadData=%v: read %d packs, %d bytes; want %d, %d", readData, res.PacksRead, res.BytesRead, wantRead, wantBytes)
				}
			}
		})
	}
}

// TestCheckReadFraction reads a share of the packs.
func TestCheckReadFraction(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "big.bin"), testutil.RandomBytes(8, 6<<20), 0o644)
	st := mem.New()
	backup(t, newSmallChunkRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)
	// Packs close at 1 MiB and chunks are at most 256 KiB: 6 MiB of data
	// make at least four packs.
	n := len(storedPacks(t, st))
	if n < 4 {
		t.Fatalf("only %d packs: the test needs several", n)
	}
	cases := []struct {
		fraction float64
		want     int
	}{
		{0.5, (n + 1) / 2},
		{0.01, 1}, // at least one
		{1, n},
		{0, n}, // unset means all
	}
	for _, c := range cases {
		var problems problemRecorder
		res, err := Check(t.Context(), r, CheckOptions{ReadData: true, ReadFraction: c.fraction}, problems.add)
		if err != nil {
			t.Fatal(err)
		}
		if res.PacksRead != c.want || res.Problems != 0 {
			t.Errorf("ReadFraction %v of %d packs: read %d, %d problems%s; want %d read", c.fraction, n, res.PacksRead, res.Problems, problems, c.want)
		}
	}
}

// TestCheckUnindexedPack leaves a pack behind by a blob saver run that
// fails, as an interrupted backup does. Check counts it without calling
// it a problem, and the next backup adopts it.
func TestCheckUnindexedPack(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f.txt"), []byte("something"), 0o644)
	st := mem.New()
	r := newRepo(t, st)
	backup(t, r, src, BackupOptions{})
	indexed := len(storedPacks(t, st))

	interrupted := errors.New("interrupted")
	_, err := r.WithBlobSaver(t.Context(), func(ctx context.Context, s *repo.BlobSaver) error {
		// More than a pack's worth: this pack is stored.
		if _, _, err := s.Save(ctx, repo.BlobData, testutil.RandomBytes(9, testPackSize+1)); err != nil {
			return err
		}
		// This one is still in the unfinished pack when the run fails.
		if _, _, err := s.Save(ctx, repo.BlobData, []byte("lost")); err != nil {
			return err
		}
		return interrupted
	})
	if !errors.Is(err, interrupted) {
		t.Fatalf("WithBlobSaver: %v, want the callback's error", err)
	}
	if got := len(storedPacks(t, st)); got != indexed+1 {
		t.Fatalf("%d packs after the failed run, want %d", got, indexed+1)
	}

	r = reopen(t, st)
	for _, readData := range []bool{false, true} {
		var problems problemRecorder
		res, err := Check(t.Context(), r, CheckOptions{ReadData: readData}, problems.add)
		if err != nil {
			t.Fatal(err)
		}
		if res.UnindexedPacks != 1 || res.Packs != indexed+1 || res.Problems != 0 {
			t.Errorf("ReadData=%v: %+v%s; want 1 unindexed of %d packs, no problems", readData, res, problems, indexed+1)
		}
	}

	writeFile(t, filepath.Join(src, "g.txt"), []byte("more"), 0o644)
	backup(t, r, src, BackupOptions{})
	var problems problemRecorder
	res, err := Check(t.Context(), reopen(t, st), CheckOptions{}, problems.add)
	if err != nil {
		t.Fatal(err)
	}
	if res.UnindexedPacks != 0 || res.Problems != 0 {
		t.Errorf("after the next backup: %+v%s; want the pack adopted", res, problems)
	}
}

// tamperFixture is a backup in a local store, for tests that damage the
// files of the repository.
type tamperFixture struct {
	src, repoDir string
	st           storage.Store
	r            *repo.Repository
	sn           *Snapshot
	nodes        map[string]*Node
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	f := &tamperFixture{src: t.TempDir(), repoDir: filepath.Join(t.TempDir(), "repo")}
	testutil.GenerateTree(t, f.src, testutil.TreeOptions{Seed: 9, Files: 10, NoSpecial: true})
	f.st = newFSStore(t, f.repoDir)
	backup(t, newSmallChunkRepo(t, f.st), f.src, BackupOptions{})
	f.r = reopen(t, f.st)
	var err error
	if f.sn, err = Find(t.Context(), f.r, "latest"); err != nil {
		t.Fatal(err)
	}
	f.nodes = listSnapshot(t, f.r, f.sn)
	return f
}

// middleExtent returns a data extent from the middle of the large file, its
// offset in the file and where it is stored.
func (f *tamperFixture) middleExtent(t *testing.T) (Extent, int64, repo.Location) {
	t.Helper()
	n := f.nodes["large.bin"]
	if n == nil || len(n.Content) < 3 {
		t.Fatalf("large.bin has too few extents: %+v", n)
	}
	k := len(n.Content) / 2
	var off int64
	for _, e := range n.Content[:k] {
		off += e.Size
	}
	e := n.Content[k]
	loc, ok := f.r.Index().Lookup(e.ID)
	if !ok || e.Hole {
		t.Fatalf("extent %d of large.bin is not an indexed blob", k)
	}
	return e, off, loc
}

// TestTamperedDataPack flips one byte inside a data blob in a pack file.
func TestTamperedDataPack(t *testing.T) {
	t.Parallel()
	f := newTamperFixture(t)
	e, off, loc := f.middleExtent(t)
	flipByte(t, packPath(f.repoDir, loc.Pack), int64(loc.Offset)+int64(loc.Length)/2)
	r := reopen(t, f.st)

	t.Run("restore", func(t *testing.T) {
		dst := t.TempDir()
		_, err := Restore(t.Context(), r, f.sn, "", RestoreOptions{Target: dst})
		if !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("restore from a tampered pack: %v, want ErrCorrupt", err)
		}
		if !strings.Contains(err.Error(), e.ID.String()) && !strings.Contains(err.Error(), loc.Pack.String()) {
			t.Errorf("error %q names neither the blob %s nor the pack %s", err, e.ID.Short(), loc.Pack.Short())
		}
		// The restorer creates every file at its full size before it
		// writes data, and writes packs in parallel, so a failed restore
		// leaves files of which only some ranges have been written; the
		// rest reads as zeros. What must never happen is a byte that is
		// neither: the restorer only writes authenticated plaintext. So
		// every byte of every restored file must equal the source byte at
		// its offset or be zero, and the range of the damaged blob (random
		// data, not zeros in the source) must be all zeros.
		err = filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(dst, p)
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			want, err := os.ReadFile(filepath.Join(f.src, rel))
			if err != nil {
				return err
			}
			if len(got) > len(want) {
				t.Errorf("%s: %d bytes restored, the source has %d", rel, len(got), len(want))
				return nil
			}
			for i := range got {
				if got[i] != want[i] && got[i] != 0 {
					t.Errorf("%s: byte %d is %#x, the source has %#x: wrong data written", rel, i, got[i], want[i])
					return nil
				}
			}
			if rel == "large.bin" && len(got) == len(want) {
				if bad := got[off : off+e.Size]; !bytes.Equal(bad, make([]byte, e.Size)) {
					t.Errorf("large.bin: the range of the damaged blob [%d,+%d) was written", off, e.Size)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cat", func(t *testing.T) {
		var buf bytes.Buffer
		err := Cat(t.Context(), r, f.nodes["large.bin"], &buf)
		if !errors.Is(err, repo.ErrCorrupt) {
			t.Fatalf("cat of a damaged file: %v, want ErrCorrupt", err)
		}
		want, _ := os.ReadFile(filepath.Join(f.src, "large.bin"))
		if int64(buf.Len()) != off || !bytes.Equal(buf.Bytes(), want[:buf.Len()]) {
			t.Errorf("cat wrote %d bytes before failing, want the %d before the damaged blob", buf.Len(), off)
		}
	})
	t.Run("check", func(t *testing.T) {
		var problems problemRecorder
		res, err := Check(t.Context(), r, CheckOptions{}, problems.add)
		if err != nil || res.Problems != 0 {
			t.Errorf("check without reading data: %+v, %v%s; want no problems (sizes are intact)", res, err, problems)
		}
		problems = nil
		res, err = Check(t.Context(), r, CheckOptions{ReadData: true}, problems.add)
		if err != nil {
			t.Fatal(err)
		}
		if res.Problems == 0 || res.Problems != len(problems) || !problems.mentions(repo.ErrCorrupt, loc.Pack.String()) {
			t.Errorf("check reading data: %d problems%s; want ErrCorrupt naming pack %s", res.Problems, problems, loc.Pack.Short())
		}
	})
}

// TestTamperedSnapshot flips one byte of a snapshot object.
func TestTamperedSnapshot(t *testing.T) {
	t.Parallel()
	f := newTamperFixture(t)
	id := f.sn.ID.String()
	flipByte(t, filepath.Join(f.repoDir, "snapshots", id), 40)
	r := reopen(t, f.st)
	_, findErr := Find(t.Context(), r, id[:8])
	_, loadErr := Load(t.Context(), r, f.sn.ID)
	for what, err := range map[string]error{"Find": findErr, "Load": loadErr} {
		if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), id) {
			t.Errorf("%s of a tampered snapshot: %v; want ErrCorrupt naming %s", what, err, id)
		}
	}
	var problems problemRecorder
	res, err := Check(t.Context(), r, CheckOptions{}, problems.add)
	if err != nil {
		t.Fatal(err)
	}
	if res.Problems != 1 || res.Snapshots != 0 || !problems.mentions(repo.ErrCorrupt, id) {
		t.Errorf("check: %+v%s; want one problem naming snapshot %s", res, problems, id)
	}
}

// TestTamperedTree flips one byte inside the tree blob of one directory:
// everything that reads that directory fails, and nothing else does.
func TestTamperedTree(t *testing.T) {
	t.Parallel()
	f := newTamperFixture(t)
	tree := f.nodes["a/b"].Subtree
	loc, ok := f.r.Index().Lookup(tree)
	if !ok || loc.Type != repo.BlobTree {
		t.Fatalf("tree of a/b not indexed as a tree: %+v", loc)
	}
	flipByte(t, packPath(f.repoDir, loc.Pack), int64(loc.Offset)+int64(loc.Length)/2)
	r := reopen(t, f.st)

	for _, p := range []string{"a/b/c", "a/b/dup-two.bin"} {
		if _, _, err := Resolve(t.Context(), r, f.sn, p); !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), tree.String()) {
			t.Errorf("Resolve(%s) through a damaged tree: %v; want ErrCorrupt naming %s", p, err, tree.Short())
		}
	}
	base, _, err := Resolve(t.Context(), r, f.sn, "")
	if err != nil {
		t.Fatal(err)
	}
	err = Walk(t.Context(), r, "", base.Subtree, func(string, *Node) error { return nil })
	if !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("Walk over a damaged tree: %v, want ErrCorrupt", err)
	}
	if _, err := Restore(t.Context(), r, f.sn, "a", RestoreOptions{Target: t.TempDir()}); !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("Restore of a directory holding a damaged tree: %v, want ErrCorrupt", err)
	}

	// The other directories are intact.
	dst := t.TempDir()
	restore(t, r, f.sn, "files", dst)
	testutil.CompareTrees(t, filepath.Join(f.src, "files"), dst)

	var problems problemRecorder
	res, err := Check(t.Context(), r, CheckOptions{}, problems.add)
	if err != nil {
		t.Fatal(err)
	}
	if res.Problems != 1 || !problems.mentions(repo.ErrCorrupt, tree.String(), "/a/b") {
		t.Errorf("check: %d problems%s; want one naming tree %s at a/b", res.Problems, problems, tree.Short())
	}
}

// TestTruncatedPack cuts a pack short in the middle of a data blob.
func TestTruncatedPack(t *testing.T) {
	t.Parallel()
	f := newTamperFixture(t)
	_, _, loc := f.middleExtent(t)
	path := packPath(f.repoDir, loc.Pack)
	if err := os.Truncate(path, int64(loc.Offset)+int64(loc.Length)/2); err != nil {
		t.Fatal(err)
	}
	r := reopen(t, f.st)
	for _, readData := range []bool{false, true} {
		var problems problemRecorder
		res, err := Check(t.Context(), r, CheckOptions{ReadData: readData}, problems.add)
		if err != nil {
			t.Fatal(err)
		}
		if res.Problems == 0 || !problems.mentions(repo.ErrCorrupt, loc.Pack.String(), "size") {
			t.Errorf("ReadData=%v: %d problems%s; want the size mismatch of pack %s", readData, res.Problems, problems, loc.Pack.Short())
		}
	}
	if _, err := Restore(t.Context(), r, f.sn, "large.bin", RestoreOptions{Target: t.TempDir()}); !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), loc.Pack.String()) {
		t.Errorf("restore from a truncated pack: %v; want ErrCorrupt naming pack %s", err, loc.Pack.Short())
	}
}
