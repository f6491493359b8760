package oci

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// This file holds the test registries: go-containerregistry's in-memory
// registry on an httptest server, with wrappers that make it behave like
// registries coffer meets in the field.

// testRegistry is one in-memory registry; each store a test opens on it
// gets a repository of its own.
type testRegistry struct {
	srv   *httptest.Server
	host  string // 127.0.0.1:port
	repos atomic.Int64
}

// newTestRegistry serves ggcr's in-memory registry, wrapped by wrap
// (outermost last), until t ends.
func newTestRegistry(t *testing.T, wrap ...func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &testRegistry{srv: srv, host: u.Host}
}

// newRepo returns the location of a repository nothing has used yet.
func (r *testRegistry) newRepo() string {
	return fmt.Sprintf("oci://%s/coffer/test-%d", r.host, r.repos.Add(1))
}

// openStore opens loc with the test defaults (a private cache and docker
// config, writer "test"), changed by mod, and closes it when t ends.
func openStore(t *testing.T, loc string, mod func(*Options)) *Store {
	t.Helper()
	st := openStoreNoClose(t, loc, mod)
	t.Cleanup(func() { st.Close() })
	return st
}

func openStoreNoClose(t *testing.T, loc string, mod func(*Options)) *Store {
	t.Helper()
	opt := Options{CacheDir: t.TempDir(), Writer: "test", DockerConfig: t.TempDir()}
	if mod != nil {
		mod(&opt)
	}
	st, err := Open(t.Context(), loc, opt)
	if err != nil {
		t.Fatalf("Open(%q): %v", loc, err)
	}
	return st
}

// writeRegistryError answers as a Distribution registry does.
func writeRegistryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// refuseDeletes answers every DELETE with 405, as GHCR and Docker Hub do.
func refuseDeletes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			writeRegistryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "deletes are disabled")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// untagOnDelete makes DELETE /v2/<repo>/manifests/<digest> also remove
// every tag that points at the manifest, as CNCF Distribution and the
// OCI distribution spec do: ggcr removes only the digest, so a deleted
// manifest stays reachable through its tags.
func untagOnDelete(next http.Handler) http.Handler {
	var mu sync.RWMutex // a delete and its untagging are one step
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, ref, ok := splitManifestPath(r.URL.Path)
		if r.Method != http.MethodDelete || !ok || !strings.HasPrefix(ref, "sha256:") {
			mu.RLock()
			defer mu.RUnlock()
			next.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil))
		var list struct{ Tags []string }
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &list) == nil {
			for _, tag := range list.Tags {
				head := httptest.NewRecorder()
				next.ServeHTTP(head, httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, nil))
				if head.Code == http.StatusOK && head.Header().Get("Docker-Content-Digest") == ref {
					next.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/v2/"+repo+"/manifests/"+tag, nil))
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// manifestPath splits /v2/<repo>/manifests/<ref>.
func splitManifestPath(p string) (repo, ref string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+len("/manifests/"):], true
}

// rfcRanges makes closed Range requests for blobs behave as RFC 9110
// §14.1.2 says and CNCF Distribution does: a last byte past the end is
// clamped to the end, and a first byte at or past the end is answered
// 416. ggcr instead answers 416 for any range running past the end and,
// because its end+1 > size check overflows, answers "bytes=1-<MaxInt64>"
// with 206 and a Content-Range echoing that impossible end.
func rfcRanges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rh := r.Header.Get("Range")
		var first, last int64
		if r.Method != http.MethodGet || rh == "" || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
			next.ServeHTTP(w, r)
			return
		}
		if _, err := fmt.Sscanf(rh, "bytes=%d-%d", &first, &last); err != nil || first < 0 || last < first {
			next.ServeHTTP(w, r)
			return
		}
		head := httptest.NewRecorder()
		next.ServeHTTP(head, httptest.NewRequest(http.MethodHead, r.URL.Path, nil))
		size, err := strconv.ParseInt(head.Header().Get("Content-Length"), 10, 64)
		if head.Code != http.StatusOK || err != nil {
			next.ServeHTTP(w, r)
			return
		}
		if first >= size {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			writeRegistryError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UNKNOWN", "range not satisfiable")
			return
		}
		r = r.Clone(r.Context())
		r.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, min(last, size-1)))
		next.ServeHTTP(w, r)
	})
}
