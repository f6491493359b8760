package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// testPassphrase is the passphrase newTestRepo creates repositories with.
const testPassphrase = "correct horse battery staple"

// testPackSize is the smallest pack size a config accepts; it makes a few
// MiB of blobs spread over several packs.
const testPackSize = 1 << 20

// newTestRepo creates a repository in a fresh memory store with the cheap
// test KDF and 1 MiB packs.
func newTestRepo(t testing.TB) (*Repository, *mem.Store) {
	t.Helper()
	st := mem.New()
	r, err := Create(context.Background(), st, []byte(testPassphrase), CreateOptions{KDF: TestKDF, PackSize: testPackSize})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r, st
}

// pass returns a passphrase callback for Open.
func pass(pw string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(pw), nil }
}

// openTestRepo opens st with pw and fails the test on error.
func openTestRepo(t testing.TB, st storage.Store, pw string, opt OpenOptions) *Repository {
	t.Helper()
	r, err := Open(context.Background(), st, pass(pw), opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

// reopen opens st with the test passphrase and loads the index.
func reopen(t testing.TB, st storage.Store, opt OpenOptions) *Repository {
	t.Helper()
	r := openTestRepo(t, st, testPassphrase, opt)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatalf("LoadIndex: %v", err)
	}
	return r
}

// testBlob is a blob a test saves and expects to read back.
type testBlob struct {
	typ  BlobType
	data []byte
}

// mixedBlobs returns count distinct blobs of random and compressible data,
// of sizes between 64 bytes and maxSize, a quarter of them trees.
func mixedBlobs(seed uint64, count, maxSize int) []testBlob {
	rng := rand.New(rand.NewPCG(seed, 42))
	blobs := make([]testBlob, 0, count)
	for i := range count {
		n := 64 + rng.IntN(maxSize-63)
		s := seed<<20 | uint64(i)
		var b testBlob
		switch i % 4 {
		case 0, 1:
			b = testBlob{BlobData, testutil.RandomBytes(int64(s), n)}
		case 2:
			b = testBlob{BlobData, testutil.CompressibleBytes(int64(s), n)}
		case 3:
			b = testBlob{BlobTree, testutil.CompressibleBytes(int64(s), n)}
		}
		blobs = append(blobs, b)
	}
	return blobs
}

// saveBlobs stores blobs in one WithBlobSaver run and returns their ids,
// in order, and the run's stats.
func saveBlobs(t testing.TB, r *Repository, blobs []testBlob) ([]ID, SaveStats) {
	t.Helper()
	ids := make([]ID, len(blobs))
	stats, err := r.WithBlobSaver(context.Background(), func(ctx context.Context, s *BlobSaver) error {
		for i, b := range blobs {
			id, _, err := s.Save(ctx, b.typ, b.data)
			if err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WithBlobSaver: %v", err)
	}
	return ids, stats
}

// objectNames returns the sorted names of the store's objects of a kind.
func objectNames(t testing.TB, st storage.Store, kind storage.Kind) []string {
	t.Helper()
	var names []string
	if err := st.List(context.Background(), kind, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatalf("List %s: %v", kind, err)
	}
	slices.Sort(names)
	return names
}

// storeSize returns the bytes held by every object of every kind.
func storeSize(t testing.TB, st storage.Store) int64 {
	t.Helper()
	var total int64
	for _, kind := range storage.Kinds {
		if err := st.List(context.Background(), kind, func(_ string, size int64) error {
			total += size
			return nil
		}); err != nil {
			t.Fatalf("List %s: %v", kind, err)
		}
	}
	return total
}

// getObject returns a whole stored object.
func getObject(t testing.TB, st storage.Store, kind storage.Kind, name string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), kind, name, nil)
	if err != nil {
		t.Fatalf("Get %s %s: %v", kind, name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s %s: %v", kind, name, err)
	}
	return b
}

// putObject stores b under kind/name, replacing what is there. Stores do
// not overwrite objects, so the old one is deleted first.
func putObject(t testing.TB, st storage.Store, kind storage.Kind, name string, b []byte) {
	t.Helper()
	ctx := context.Background()
	if err := st.Delete(ctx, kind, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete %s %s: %v", kind, name, err)
	}
	if err := st.Put(ctx, kind, name, storage.BytesBody(b)); err != nil {
		t.Fatalf("Put %s %s: %v", kind, name, err)
	}
}

// sha256Name returns the hex SHA-256 of b, the name content-addressed
// objects are stored under.
func sha256Name(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// flipped returns a copy of b with the byte at i inverted.
func flipped(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

// packsOf groups the index's blobs by pack.
func packsOf(x *Index) map[ID][]ID {
	packs := map[ID][]ID{}
	x.Each(func(id ID, loc Location) { packs[loc.Pack] = append(packs[loc.Pack], id) })
	return packs
}

// packSizes returns the size the index records for each pack.
func packSizes(x *Index) map[ID]int64 {
	sizes := map[ID]int64{}
	x.Packs(func(id ID, size int64) { sizes[id] = size })
	return sizes
}

// asIntegrity returns the *IntegrityError in err's chain, failing the test
// when err does not match ErrCorrupt or carries none.
func asIntegrity(t testing.TB, err error) *IntegrityError {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not match ErrCorrupt", err)
	}
	var ie *IntegrityError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v carries no *IntegrityError", err)
	}
	return ie
}

// newTestPackBuilder starts a pack in the test's temporary directory.
func newTestPackBuilder(tb testing.TB) *packBuilder {
	tb.Helper()
	p, err := newPackBuilder(tb.TempDir(), nil, BlobData)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.discard)
	return p
}

func mustAdd(tb testing.TB, p *packBuilder, t BlobType, id ID, sealed []byte, rawLen int) {
	tb.Helper()
	if err := p.add(t, id, sealed, rawLen); err != nil {
		tb.Fatal(err)
	}
}

// finishPack finishes p and returns the pack's bytes and name.
func finishPack(tb testing.TB, p *packBuilder, c *codec) ([]byte, ID) {
	tb.Helper()
	id, err := p.finish(c)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(p.contents())
	if err != nil {
		tb.Fatal(err)
	}
	return data, id
}
