//go:build linux

package ui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// TestVanishedSnapshotWarns: a snapshot the UI has listed that leaves the
// store with no forget behind it is reported once, naming its writer,
// though no new snapshot made the UI load the list again.
func TestVanishedSnapshotWarns(t *testing.T) {
	ctx := t.Context()
	st := mem.New()
	if _, err := repo.Create(ctx, st, []byte("pw"), repo.CreateOptions{KDF: repo.TestKDF, PackSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var warnings []string
	r, err := repo.Open(ctx, st, func() ([]byte, error) { return []byte("pw"), nil }, repo.OpenOptions{
		CacheDir: t.TempDir(),
		Warnf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			warnings = append(warnings, fmt.Sprintf(format, args...))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var sns []*snapshot.Snapshot
	for _, host := range []string{"alpha", "beta"} {
		sn, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Host: host})
		if err != nil {
			t.Fatal(err)
		}
		sns = append(sns, sn)
	}
	s, err := New(r, Options{Token: "test-token"})
	if err != nil {
		t.Fatal(err)
	}
	getOK(t, s, "/snapshots")
	if len(warnings) != 0 {
		t.Fatalf("warnings before anything vanished: %q", warnings)
	}
	if err := st.Delete(ctx, storage.KindSnapshot, sns[1].ID.String()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if body := getOK(t, s, "/snapshots"); strings.Contains(body, sns[1].ID.Short()) {
			t.Errorf("the vanished snapshot is still listed")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 1 || !strings.Contains(warnings[0], sns[1].ID.Short()) || !strings.Contains(warnings[0], "@beta") {
		t.Errorf("warnings %q; want one naming snapshot %s of writer …@beta", warnings, sns[1].ID.Short())
	}
}
