package oci

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
)

// This file holds the test registries: a real CNCF Distribution registry
// (testregistry.StartRegistry), behind an in-process reverse proxy when a test
// needs to see or change requests at the HTTP level, which the registry
// itself cannot do (refuse one upload, hold one, cut a body short).

// testRegistry is one registry; each store a test opens on it gets a
// repository of its own.
type testRegistry struct {
	host  string // 127.0.0.1:port, the proxy's when there is one
	proc  *testregistry.Registry
	repos atomic.Int64
}

// newTestRegistry starts a Distribution registry with deletes enabled,
// behind wrap (outermost last) when there is any, until t ends.
func newTestRegistry(t *testing.T, wrap ...func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	return newTestRegistryWith(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true}, wrap...)
}

// newRefusingRegistry starts a Distribution registry with deletes
// disabled: it answers every DELETE with 405, as GHCR and Docker Hub do.
func newRefusingRegistry(t *testing.T, wrap ...func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	return newTestRegistryWith(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: false}, wrap...)
}

// newTestRegistryWith starts a registry as opt says, behind wrap
// (outermost last) when there is any, until t ends.
func newTestRegistryWith(t *testing.T, opt testregistry.RegistryOptions, wrap ...func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	proc := testregistry.StartRegistry(t, opt)
	reg := &testRegistry{host: proc.Host, proc: proc}
	if len(wrap) == 0 {
		return reg
	}
	if opt.TLS {
		t.Fatal("newTestRegistryWith: the proxy speaks plain HTTP only")
	}
	target, err := url.Parse(proc.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true // pass bodies and their lengths as they are
	var h http.Handler = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The registry builds upload locations from the Host header:
			// keeping it sends the rest of an upload back through the
			// proxy, and so through the test's wrappers.
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0), // a cut connection is what some tests want
	}
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	reg.host = u.Host
	return reg
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
