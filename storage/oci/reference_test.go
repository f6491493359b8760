package oci

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cofferhq/coffer/storage"
)

// An uploaded pack is referenced within ReferenceWithin, by a timer that
// neither the next Put nor an upload still in flight holds back: a
// registry with online garbage collection would delete it otherwise.
func TestReferenceWithin(t *testing.T) {
	slowData := []byte("a pack whose upload hangs")
	slow := digest.FromBytes(slowData)
	release := make(chan struct{})
	var once sync.Once
	hold := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.RawQuery, slow.Encoded()) {
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := newTestRegistry(t, hold)
	// Registered after the server, so it runs before the server waits
	// for its handlers to return.
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	loc := reg.newRepo()
	const within = 300 * time.Millisecond
	st := openStore(t, loc, func(o *Options) { o.ReferenceWithin = within })
	ctx := t.Context()
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	first := []byte("a pack uploaded first")
	if err := st.Put(ctx, storage.KindPack, sumHex(first), storage.BytesBody(first)); err != nil {
		t.Fatal(err)
	}
	stored := time.Now()
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- st.Put(ctx, storage.KindPack, slow.Encoded(), storage.BytesBody(slowData))
	}()
	other := openStore(t, loc, nil)
	want := []ocispec.Descriptor{{Digest: digest.FromBytes(first), Size: int64(len(first))}}
	deadline := stored.Add(within + 5*time.Second)
	for {
		other.forgetView()
		if len(listNames(t, other, storage.KindPack)) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first pack was not referenced %s after its upload, while another upload hung", time.Since(stored))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if waited := time.Since(stored); waited < within/2 {
		t.Errorf("referenced after %s: a batch of one is expected to wait for the timer (%s)", waited, within)
	}
	checkListed(t, other, storage.KindPack, want)
	once.Do(func() { close(release) })
	if err := <-slowDone; err != nil {
		t.Fatalf("the slow upload: %v", err)
	}
	// Close references what is left at once.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	other.forgetView()
	if n := len(listNames(t, other, storage.KindPack)); n != 2 {
		t.Errorf("after Close, %d packs are referenced, want 2", n)
	}
}
