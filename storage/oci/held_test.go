package oci

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/storage"
)

// A registry that deleted uploads before a tag referenced them (online
// garbage collection, or its storage restored from an older copy) makes
// the refs manifest push fail for a missing layer. The Store uploads the
// missing objects again from the bytes it held, pushes the manifest
// again, and every object reads back; an object it could not hold (a
// large one put from memory) gives an error that says what happened and
// what to do.
func TestReuploadLayersTheRegistryLost(t *testing.T) {
	for _, kind := range testregistry.RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: kind, Delete: true})
			var mu sync.Mutex
			var notices []string
			st := openStore(t, reg.Location("held/r"), func(o *Options) {
				o.DockerConfig = reg.DockerConfig
				o.TempDir = t.TempDir()
				o.Logf = func(f string, a ...any) {
					mu.Lock()
					defer mu.Unlock()
					notices = append(notices, fmt.Sprintf(f, a...))
				}
			})
			ctx := t.Context()
			if err := st.Create(ctx, []byte("config")); err != nil {
				t.Fatal(err)
			}
			deleteBlob := func(name string) {
				t.Helper()
				req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, reg.URL+"/v2/held/r/blobs/sha256:"+name, nil)
				req.SetBasicAuth(reg.Username, reg.Password)
				resp, err := reg.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("DELETE blob %s: %s", name[:8], resp.Status)
				}
			}

			// A pack as the repository writes one (CreateTemp, PutFile),
			// and an index object put from memory.
			pack := make([]byte, 3<<20)
			rand.Read(pack)
			f, err := st.CreateTemp()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(pack); err != nil {
				t.Fatal(err)
			}
			packName := sumHex(pack)
			if err := st.PutFile(ctx, storage.KindPack, packName, f, int64(len(pack))); err != nil {
				t.Fatal(err)
			}
			index := []byte("an index object")
			indexName := sumHex(index)
			if err := st.Put(ctx, storage.KindIndex, indexName, storage.BytesBody(index)); err != nil {
				t.Fatal(err)
			}
			deleteBlob(packName)
			deleteBlob(indexName)
			if err := st.Flush(ctx); err != nil {
				t.Fatalf("Flush after the registry lost two uploads: %v", err)
			}
			mu.Lock()
			if len(notices) != 1 || !strings.Contains(notices[0], "2 uploaded objects were gone") {
				t.Errorf("notices: %q", notices)
			}
			mu.Unlock()
			other := openStore(t, reg.Location("held/r"), func(o *Options) { o.DockerConfig = reg.DockerConfig })
			for name, want := range map[string][]byte{packName: pack, indexName: index} {
				kind := storage.KindPack
				if name == indexName {
					kind = storage.KindIndex
				}
				rc, err := other.Get(ctx, kind, name, nil)
				if err != nil {
					t.Fatalf("Get %s %s: %v", kind, name[:8], err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s %s reads back %d bytes (%v), want the %d uploaded", kind, name[:8], len(got), err, len(want))
				}
			}
			st.pendingMu.Lock()
			if len(st.held) != 0 || st.heldBytes != 0 {
				t.Errorf("after the flush, %d objects (%d bytes) are still held", len(st.held), st.heldBytes)
			}
			st.pendingMu.Unlock()

			// Too large to copy, so not held: the error says why the
			// object is gone and what to change.
			big := make([]byte, maxHeldCopy+1)
			rand.Read(big)
			if err := st.Put(ctx, storage.KindPack, sumHex(big), storage.BytesBody(big)); err != nil {
				t.Fatal(err)
			}
			deleteBlob(sumHex(big))
			err = st.Flush(ctx)
			var gone errLayersGone
			if !errors.As(err, &gone) || gone.first != digest.FromBytes(big) || !strings.Contains(err.Error(), "-reference-within") {
				t.Errorf("Flush with a lost upload that is not held: %v", err)
			}
		})
	}
}

// Every object held for a pending reference is released once a tag
// references it, and the bytes held never pass maxHeldBytes by more than
// one object: past it, Put references what is pending at once.
func TestHeldBytesBounded(t *testing.T) {
	reg := newTestRegistry(t)
	st := openStore(t, reg.newRepo(), func(o *Options) { o.TempDir = t.TempDir() })
	ctx := t.Context()
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	obj := make([]byte, maxHeldCopy)
	for i := range 2 * maxHeldBytes / maxHeldCopy {
		obj[0], obj[1] = byte(i), byte(i>>8)
		if err := st.Put(ctx, storage.KindPack, sumHex(obj), storage.BytesBody(obj)); err != nil {
			t.Fatal(err)
		}
		st.pendingMu.Lock()
		held := st.heldBytes
		st.pendingMu.Unlock()
		if held > maxHeldBytes+maxHeldCopy {
			t.Fatalf("after %d objects, %d bytes are held", i+1, held)
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.pendingMu.Lock()
	defer st.pendingMu.Unlock()
	if st.heldBytes != 0 || len(st.held) != 0 {
		t.Errorf("after Flush, %d bytes are held", st.heldBytes)
	}
}
