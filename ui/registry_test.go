//go:build linux

package ui

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage/oci"
)

// registryRepo backs up a tree holding a 10,000-entry directory into a
// repository on a real Distribution registry and returns the snapshot and
// a function that opens the repository afresh, with an empty cache.
func registryRepo(tb testing.TB) (*snapshot.Snapshot, string, func() *repo.Repository) {
	tb.Helper()
	ctx := context.Background()
	reg := testregistry.StartRegistry(tb, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	open := func(cache string) *repo.Repository {
		st, err := oci.Open(ctx, reg.Location("ui/pages"), oci.Options{DockerConfig: reg.DockerConfig, CacheDir: cache, Writer: "ui"})
		if err != nil {
			tb.Fatal(err)
		}
		r, err := repo.Open(ctx, st, func() ([]byte, error) { return []byte("pw"), nil }, repo.OpenOptions{CacheDir: cache})
		if err != nil {
			tb.Fatal(err)
		}
		if err := r.LoadIndex(ctx); err != nil {
			tb.Fatal(err)
		}
		return r
	}
	st, err := oci.Open(ctx, reg.Location("ui/pages"), oci.Options{DockerConfig: reg.DockerConfig, CacheDir: tb.TempDir(), Writer: "ui"})
	if err != nil {
		tb.Fatal(err)
	}
	r, err := repo.Create(ctx, st, []byte("pw"), repo.CreateOptions{KDF: repo.TestKDF})
	if err != nil {
		tb.Fatal(err)
	}
	src := tb.TempDir()
	wide := filepath.Join(src, "wide")
	os.Mkdir(wide, 0o755)
	for i := range 10000 {
		os.WriteFile(filepath.Join(wide, fmt.Sprintf("e%05d", i)), nil, 0o644)
	}
	os.WriteFile(filepath.Join(src, "hello.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	sn, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	return sn, src, func() *repo.Repository { return open(tb.TempDir()) }
}

// The pages work the same on a registry store: overview, snapshots, a
// 10,000-entry directory, a file preview and a download, read with an
// empty cache.
func TestPagesOnRegistry(t *testing.T) {
	sn, src, open := registryRepo(t)
	s, err := New(open(), Options{Token: "test-token"})
	if err != nil {
		t.Fatal(err)
	}
	id := sn.ID.String()
	if body := getOK(t, s, "/"); !strings.Contains(body, "OCI registry") {
		t.Errorf("overview does not show the registry store: %.300s", body)
	}
	if body := getOK(t, s, "/snapshots"); !strings.Contains(body, sn.ID.Short()) {
		t.Errorf("snapshots page lacks %s", sn.ID.Short())
	}
	start := time.Now()
	body := getOK(t, s, "/s/"+id+"/browse"+src+"/wide")
	t.Logf("cold page of a 10,000-entry directory on Distribution: %s", time.Since(start))
	if !strings.Contains(body, "e00000") {
		t.Errorf("directory page lacks its first entry: %.300s", body)
	}
	if body := getOK(t, s, "/s/"+id+"/file"+src+"/hello.go"); !strings.Contains(body, "main") {
		t.Errorf("file page: %.300s", body)
	}
	if body := getOK(t, s, "/s/"+id+"/raw"+src+"/hello.go?download=1"); body != "package main\n\nfunc main() {}\n" {
		t.Errorf("download: %q", body)
	}
}

// BenchmarkColdDirectoryPage measures opening the page of a 10,000-entry
// directory on a Distribution registry with an empty local cache (the
// repository is opened and its index loaded before the clock starts, as
// `coffer ui` does at startup).
//
//	go test ./ui -run '^$' -bench ColdDirectoryPage -benchtime 5x
func BenchmarkColdDirectoryPage(b *testing.B) {
	sn, src, open := registryRepo(b)
	target := "/s/" + sn.ID.String() + "/browse" + src + "/wide"
	for b.Loop() {
		b.StopTimer()
		s, err := New(open(), Options{NoAuth: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		if rec.Code != 200 {
			b.Fatalf("GET %s: %d", target, rec.Code)
		}
	}
}
