package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/storage"
)

// uploadRecorder records the upload requests a store sends.
type uploadRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []string // "METHOD length Content-Range"
	max  int64    // the largest body sent
}

func (u *uploadRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.Contains(req.URL.Path, "/blobs/uploads/") {
		u.mu.Lock()
		u.reqs = append(u.reqs, fmt.Sprintf("%s %d %s", req.Method, req.ContentLength, req.Header.Get("Content-Range")))
		u.max = max(u.max, req.ContentLength)
		u.mu.Unlock()
	}
	return u.next.RoundTrip(req)
}

func (u *uploadRecorder) take() ([]string, int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	reqs, m := u.reqs, u.max
	u.reqs, u.max = nil, 0
	return reqs, m
}

// TestChunkedUpload uploads blobs around the chunk size in chunks to
// CNCF Distribution, without auth and with bearer tokens, and to
// registry 2.8 over TLS with bearer tokens, and reads them back: every
// request carries at most one chunk, and the chunks are PATCHed in order
// with inclusive Content-Ranges.
func TestChunkedUpload(t *testing.T) {
	const chunk = MinUploadChunk
	for _, v := range []testregistry.RegistryOptions{
		{Kind: testregistry.Distribution, Delete: true, Auth: testregistry.AuthNone},
		{Kind: testregistry.Distribution, Delete: true, Auth: testregistry.AuthToken},
		{Kind: testregistry.Registry28, Delete: true, TLS: true, Auth: testregistry.AuthToken},
	} {
		t.Run(fmt.Sprintf("%s-tls=%v-%s", v.Kind, v.TLS, v.Auth), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, v)
			base := http.DefaultTransport.(*http.Transport).Clone()
			base.TLSClientConfig = reg.TLSConfig()
			rec := &uploadRecorder{next: base}
			ctx := t.Context()
			st, err := Open(ctx, reg.Location("chunks/r"), Options{DockerConfig: reg.DockerConfig, CacheDir: t.TempDir(),
				Writer: "t", UploadChunk: chunk, Transport: rec})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Create(ctx, []byte("config")); err != nil {
				t.Fatal(err)
			}
			rec.take()
			for _, size := range []int{1, chunk - 1, chunk, chunk + 1, 3*chunk + 17} {
				data := make([]byte, size)
				rand.Read(data)
				if err := st.Put(ctx, storage.KindPack, sumHex(data), storage.BytesBody(data)); err != nil {
					t.Fatalf("Put of %d bytes: %v", size, err)
				}
				reqs, largest := rec.take()
				if largest > chunk {
					t.Errorf("Put of %d bytes sent a request of %d bytes, over the %d-byte chunk: %q", size, largest, chunk, reqs)
				}
				if size > chunk {
					want := []string{"POST 0 "}
					for off := 0; off < size; off += chunk {
						n := min(chunk, size-off)
						want = append(want, fmt.Sprintf("PATCH %d %d-%d", n, off, off+n-1))
					}
					want = append(want, "PUT 0 ")
					if fmt.Sprint(reqs) != fmt.Sprint(want) {
						t.Errorf("Put of %d bytes sent\n%q\nwant\n%q", size, reqs, want)
					}
				}
				rc, err := st.Get(ctx, storage.KindPack, sumHex(data), nil)
				if err != nil {
					t.Fatalf("Get of %d bytes: %v", size, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("Get of %d bytes: %d bytes back, equal %v, %v", size, len(got), bytes.Equal(got, data), err)
				}
			}
		})
	}
}

// limitBodies answers requests with bodies over limit bytes with 413 and
// an HTML page, as nginx does beyond client_max_body_size, and counts
// them.
func limitBodies(limit int64, refused *int) func(http.Handler) http.Handler {
	var mu sync.Mutex
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > limit {
				mu.Lock()
				*refused++
				mu.Unlock()
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				io.WriteString(w, "<html><head><title>413 Request Entity Too Large</title></head></html>\n")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestUploadTooLarge checks that a 413 fails an upload at once (it is
// not retried) with one line that says what happened and names
// -upload-chunk, and that chunks below the limit get through.
func TestUploadTooLarge(t *testing.T) {
	const limit = 1 << 20
	var refused int
	reg := newTestRegistry(t, limitBodies(limit, &refused))
	ctx := t.Context()
	data := make([]byte, 3<<20)
	rand.Read(data)
	put := func(st *Store) error {
		return st.Put(ctx, storage.KindPack, sumHex(data), storage.BytesBody(data))
	}

	st := openStore(t, reg.newRepo(), nil)
	err := put(st)
	var tl *tooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("Put of 3 MiB through a 1 MiB limit: %v, want a tooLargeError", err)
	}
	msg := err.Error()
	for _, want := range []string{reg.host, "3145728 bytes", "413 Request Entity Too Large", "proxy", "-upload-chunk 512KiB"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, "<html>") {
		t.Errorf("error %q is not one plain line", msg)
	}
	if refused != 1 {
		t.Errorf("the upload was sent %d times, want once: a 413 must not be retried", refused)
	}
	if kind := classify(err); kind != permanent {
		t.Errorf("classify(413) = %v, want permanent", kind)
	}

	// Chunks over the limit still fail, with advice for a smaller one.
	st = openStore(t, reg.newRepo(), func(o *Options) { o.UploadChunk = 2 << 20 })
	if err := put(st); !errors.As(err, &tl) || !strings.Contains(err.Error(), "2097152 bytes") || !strings.Contains(err.Error(), "smaller -upload-chunk") {
		t.Errorf("Put in 2 MiB chunks through a 1 MiB limit: %v", err)
	}

	// Chunks under the limit get through, and read back whole.
	st = openStore(t, reg.newRepo(), func(o *Options) { o.UploadChunk = 512 << 10 })
	if err := put(st); err != nil {
		t.Fatalf("Put in 512 KiB chunks through a 1 MiB limit: %v", err)
	}
	rc, err := st.Get(ctx, storage.KindPack, sumHex(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
	}
}

// TestUploadChunkOption checks that Open refuses chunks below the
// minimum.
func TestUploadChunkOption(t *testing.T) {
	_, err := Open(context.Background(), "oci://127.0.0.1:1/r", Options{UploadChunk: 1000})
	if err == nil || !strings.Contains(err.Error(), "at least") {
		t.Errorf("Open with a 1000-byte chunk: %v", err)
	}
}

// failOnce answers the first request that matches with status, once.
func failOnce(status int, match func(*http.Request) bool, failed *atomic.Bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) && failed.CompareAndSwap(false, true) {
				io.Copy(io.Discard, r.Body)
				writeRegistryError(w, status, "UNKNOWN", "injected")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestChunkedUploadRetried: a chunked upload whose middle PATCH fails
// with a 502 (a proxy without its backend for a moment), or whose
// session the registry lost (416, 404), is retried from a new session
// and stores the right bytes.
func TestChunkedUploadRetried(t *testing.T) {
	middle := func(r *http.Request) bool {
		return r.Method == http.MethodPatch && !strings.HasPrefix(r.Header.Get("Content-Range"), "0-")
	}
	for _, status := range []int{http.StatusBadGateway, http.StatusRequestedRangeNotSatisfiable, http.StatusNotFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var failed atomic.Bool
			var posts atomic.Int64
			countPosts := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
						posts.Add(1)
					}
					next.ServeHTTP(w, r)
				})
			}
			reg := newTestRegistry(t, failOnce(status, middle, &failed), countPosts)
			st := openStore(t, reg.newRepo(), func(o *Options) { o.UploadChunk = MinUploadChunk })
			st.backoff = func(int) time.Duration { return time.Millisecond }
			// A 404 means a lost session only in a repository that exists.
			if err := st.Create(t.Context(), []byte("config")); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 5*MinUploadChunk+3)
			rand.Read(data)
			before := posts.Load()
			if err := st.Put(t.Context(), storage.KindPack, sumHex(data), storage.BytesBody(data)); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if !failed.Load() {
				t.Fatal("no PATCH failed")
			}
			if n := posts.Load() - before; n != 2 {
				t.Errorf("%d upload sessions, want 2 (the failed one and a new one)", n)
			}
			rc, err := st.Get(t.Context(), storage.KindPack, sumHex(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
				t.Errorf("read back %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
			}
		})
	}
}
