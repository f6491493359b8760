package oci

import (
	"errors"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cofferhq/coffer/storage"
)

// TestObjectsAreNotBareBlobs checks that a pack, index or snapshot exists
// only while a root references it as that kind: a blob that is merely in
// the registry (the config, the empty config, a blob of another kind, a
// blob whose object was deleted and awaits garbage collection) is not an
// object.
func TestObjectsAreNotBareBlobs(t *testing.T) {
	reg := newTestRegistry(t)
	st := openStore(t, reg.newRepo(), nil)
	ctx := t.Context()
	config := []byte("config of TestObjectsAreNotBareBlobs")
	if err := st.Create(ctx, config); err != nil {
		t.Fatal(err)
	}
	index := []byte("an index object")
	if err := st.Put(ctx, storage.KindIndex, sumHex(index), storage.BytesBody(index)); err != nil {
		t.Fatal(err)
	}
	deleted := []byte("a pack that was deleted")
	if err := st.Put(ctx, storage.KindPack, sumHex(deleted), storage.BytesBody(deleted)); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, storage.KindPack, sumHex(deleted)); err != nil {
		t.Fatal(err)
	}
	key := []byte("a key")
	if err := st.Put(ctx, storage.KindKey, sumHex(key), storage.BytesBody(key)); err != nil {
		t.Fatal(err)
	}
	absent := map[string]string{
		"the config":        sumHex(config),
		"the empty config":  ocispec.DescriptorEmptyJSON.Digest.Encoded(),
		"an index object":   sumHex(index),
		"a deleted pack":    sumHex(deleted),
		"the blob of a key": sumHex(key),
		"a manifest (refs)": refsDigest(t, st),
	}
	for _, kind := range []storage.Kind{storage.KindPack, storage.KindSnapshot, storage.KindIndex} {
		for what, name := range absent {
			if kind == storage.KindIndex && what == "an index object" {
				continue
			}
			if rc, err := st.Get(ctx, kind, name, nil); !errors.Is(err, storage.ErrNotFound) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("Get %s named by %s = %v, want ErrNotFound", kind, what, err)
			}
			if n, err := st.Stat(ctx, kind, name); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Stat %s named by %s = %d, %v; want ErrNotFound", kind, what, n, err)
			}
		}
	}
}

func refsDigest(t *testing.T, st *Store) string {
	t.Helper()
	if err := st.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for tag := range checkRefs(t, st) {
		var m ocispec.Manifest
		return fetchJSON(t, st, tag, &m).Digest.Encoded()
	}
	t.Fatal("no refs tag")
	return ""
}

// TestLongNames stores keys and locks under the longest names
// storage.ValidName allows. A tag is at most 128 characters, so a tag of
// "coffer-lock-" and the name does not fit past 116.
func TestLongNames(t *testing.T) {
	reg := newTestRegistry(t)
	st := openStore(t, reg.newRepo(), nil)
	ctx := t.Context()
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{116, 117, 128} {
		name := strings.Repeat("e", n)
		data := []byte("lock content")
		if err := st.Put(ctx, storage.KindLock, name, storage.BytesBody(data)); err != nil {
			t.Errorf("Put of a lock named by %d characters: %v", n, err)
			continue
		}
		if size, err := st.Stat(ctx, storage.KindLock, name); err != nil || size != int64(len(data)) {
			t.Errorf("Stat of a lock named by %d characters = %d, %v", n, size, err)
		}
		if got := listNames(t, st, storage.KindLock); got[name] != int64(len(data)) {
			t.Errorf("List lock = %v, want the %d-character name", got, n)
		}
		if err := st.Delete(ctx, storage.KindLock, name); err != nil {
			t.Errorf("Delete of a lock named by %d characters: %v", n, err)
		}
	}
	// A missing object with a long name is missing, not an error.
	for _, kind := range []storage.Kind{storage.KindKey, storage.KindLock} {
		name := strings.Repeat("d", 128)
		if _, err := st.Stat(ctx, kind, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat of a missing %s named by 128 characters = %v, want ErrNotFound", kind, err)
		}
		if err := st.Delete(ctx, kind, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete of a missing %s named by 128 characters = %v, want ErrNotFound", kind, err)
		}
	}
}
