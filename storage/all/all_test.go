package all

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/storage/local"
)

func TestRegistry(t *testing.T) {
	r := Registry(Options{})
	if got := r.Schemes(); !slices.Contains(got, "fs") || !slices.Contains(got, "oci") || !slices.Contains(got, "s3") {
		t.Fatalf("Schemes() = %q, want it to include fs, oci and s3", got)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	for _, location := range []string{dir, "fs://" + dir} {
		st, err := r.Open(context.Background(), location)
		if err != nil {
			t.Fatalf("Open(%q): %v", location, err)
		}
		if st.Location() != dir {
			t.Errorf("Open(%q).Location() = %q, want %q", location, st.Location(), dir)
		}
		st.Close()
	}
	// Each call must return an independent registry.
	Registry(Options{}).Register("extra", local.Open)
	if slices.Contains(Registry(Options{}).Schemes(), "extra") {
		t.Fatal("a scheme registered on one Registry(Options{}) result shows up in another")
	}
}
