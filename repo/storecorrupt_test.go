package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// corruptingStore answers as a store that checks its bytes itself (a
// registry, by digest) does when they are damaged: with
// storage.ErrCorrupt, from Open or Get, or from reading a body.
type corruptingStore struct {
	storage.Store
	atOpen, atGet, atRead bool
}

func errStoreCorrupt(what string) error {
	return fmt.Errorf("%s: digest mismatch: %w", what, storage.ErrCorrupt)
}

func (s *corruptingStore) Open(ctx context.Context) ([]byte, error) {
	if s.atOpen {
		return nil, errStoreCorrupt("config")
	}
	return s.Store.Open(ctx)
}

func (s *corruptingStore) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if s.atGet {
		return nil, errStoreCorrupt(name)
	}
	rc, err := s.Store.Get(ctx, kind, name, rng)
	if err != nil || !s.atRead {
		return rc, err
	}
	rc.Close()
	return io.NopCloser(errReader{errStoreCorrupt(name)}), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestStoreCorruptIsIntegrityError checks the rule repo/errors.go states:
// damage the store reports (storage.ErrCorrupt) reaches callers as the
// *IntegrityError naming the object, matching ErrCorrupt, on every read
// path, as damage this package finds itself does.
func TestStoreCorruptIsIntegrityError(t *testing.T) {
	ctx := context.Background()
	r, mst := newTestRepo(t)
	ids, _ := saveBlobs(t, r, mixedBlobs(7, 2, 4096))
	obj, err := r.SaveObject(ctx, storage.KindSnapshot, []byte(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	st := &corruptingStore{Store: mst}
	r = reopen(t, st, OpenOptions{})
	var pack ID
	var packSize int64
	r.Index().Packs(func(id ID, size int64) { pack, packSize = id, size })

	st.atOpen = true
	if ie := asIntegrity(t, second(ReadSealedConfig(ctx, st))); ie.Kind != "config" {
		t.Errorf("ReadSealedConfig: %v, want the config named", ie)
	}
	st.atOpen = false

	for _, mode := range []string{"get", "read"} {
		st.atGet, st.atRead = mode == "get", mode == "read"
		if ie := asIntegrity(t, second(r.LoadBlob(ctx, BlobData, ids[0]))); ie.Kind != storage.KindPack || ie.Name != pack.String() {
			t.Errorf("%s: LoadBlob: %v, want pack %s named", mode, ie, pack.Short())
		}
		err := r.LoadBlobs(ctx, pack, []BlobRef{{ids[0], BlobData}}, func(BlobRef, []byte) error { return nil })
		if ie := asIntegrity(t, err); ie.Kind != storage.KindPack {
			t.Errorf("%s: LoadBlobs: %v, want the pack named", mode, ie)
		}
		if ie := asIntegrity(t, second(r.LoadObject(ctx, storage.KindSnapshot, obj))); ie.Kind != storage.KindSnapshot || ie.Name != obj.String() {
			t.Errorf("%s: LoadObject: %v, want snapshot %s named", mode, ie, obj.Short())
		}
		var problems []error
		if err := r.VerifyPack(ctx, pack, packSize, func(err error) { problems = append(problems, err) }); err != nil {
			t.Errorf("%s: VerifyPack returned %v, want the damage reported as a problem", mode, err)
		}
		if len(problems) == 0 {
			t.Errorf("%s: VerifyPack reported no problem", mode)
		}
		for _, p := range problems {
			if !errors.Is(p, ErrCorrupt) {
				t.Errorf("%s: VerifyPack problem %v does not match ErrCorrupt", mode, p)
			}
		}
	}
}

func second[T any](_ T, err error) error { return err }
