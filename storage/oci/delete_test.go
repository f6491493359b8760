package oci

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cofferhq/coffer/storage"
)

// TestDeleteRefusedTombstone deletes keys and locks on a registry that
// answers every DELETE with 405: the tag moves to a tombstone, the object
// is gone for Get, Stat and List, and the user is told how to reclaim it.
func TestDeleteRefusedTombstone(t *testing.T) {
	reg := newRefusingRegistry(t)
	log := &logRecorder{}
	st := openStore(t, reg.newRepo(), func(o *Options) { o.Logf = log.logf })
	ctx := t.Context()
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	if got := st.Describe(ctx)["delete"]; !strings.HasPrefix(got, "refused") {
		t.Errorf(`after Create, Describe()["delete"] = %q, want it to say "refused"`, got)
	}
	for _, kind := range []storage.Kind{storage.KindKey, storage.KindLock} {
		t.Run(string(kind), func(t *testing.T) {
			data := []byte("the " + string(kind) + " to delete")
			name := "0123abcd"
			if kind == storage.KindKey {
				name = sumHex(data)
			}
			keep := []byte("another " + string(kind))
			keepName := "4567ef"
			if kind == storage.KindKey {
				keepName = sumHex(keep)
			}
			for n, b := range map[string][]byte{name: data, keepName: keep} {
				if err := st.Put(ctx, kind, n, storage.BytesBody(b)); err != nil {
					t.Fatalf("Put %s %s: %v", kind, n, err)
				}
			}
			if err := st.Delete(ctx, kind, name); err != nil {
				t.Fatalf("Delete %s on a registry refusing DELETE: %v", kind, err)
			}

			tag := tagPrefix(kind) + name
			var m ocispec.Manifest
			fetchJSON(t, st, tag, &m)
			if m.ArtifactType != artifactTombstone || m.MediaType != ocispec.MediaTypeImageManifest {
				t.Errorf("after Delete, %s points at %q/%q, want a tombstone manifest", tag, m.MediaType, m.ArtifactType)
			}
			if m.Annotations[annotationName] != name {
				t.Errorf("tombstone annotations %v do not name %s", m.Annotations, name)
			}

			if rc, err := st.Get(ctx, kind, name, nil); !errors.Is(err, storage.ErrNotFound) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("Get of a deleted %s = %v, want ErrNotFound", kind, err)
			}
			if n, err := st.Stat(ctx, kind, name); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Stat of a deleted %s = %d, %v; want ErrNotFound", kind, n, err)
			}
			listed := listNames(t, st, kind)
			if _, ok := listed[name]; ok {
				t.Errorf("List %s returned the deleted %s", kind, name)
			}
			if size, ok := listed[keepName]; !ok || size != int64(len(keep)) {
				t.Errorf("List %s = %v, want %s with size %d", kind, listed, keepName, len(keep))
			}
			if err := st.Delete(ctx, kind, name); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("second Delete of a %s = %v, want ErrNotFound", kind, err)
			}
			// A key is the user's and gets a notice; a lock, which every
			// backup removes, does not.
			if told := strings.Contains(log.String(), tag); told != (kind == storage.KindKey) {
				t.Errorf("log %q names %s: %v, want %v", log.String(), tag, told, kind == storage.KindKey)
			}
			if kind == storage.KindKey && (!strings.Contains(log.String(), st.loc.host) || !strings.Contains(log.String(), "refuses DELETE")) {
				t.Errorf("log %q does not tell that %s refuses DELETE and %s is a tombstone", log.String(), st.loc.host, tag)
			}

			// The name can be used again.
			if err := st.Put(ctx, kind, name, storage.BytesBody(data)); err != nil {
				t.Fatalf("Put after Delete: %v", err)
			}
			rc, err := st.Get(ctx, kind, name, nil)
			if err != nil {
				t.Fatalf("Get after re-Put: %v", err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Errorf("Get after re-Put = %q, want %q", got, data)
			}
		})
	}
}

func sumHex(b []byte) string {
	return digest.FromBytes(b).Encoded()
}
