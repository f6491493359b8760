package oci

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The refs a listing read come back from the cache only where the
// manifest still matches its digest: a damaged or edited entry costs a
// request, never a wrong manifest.
func TestDiskCacheRefs(t *testing.T) {
	c := newDiskCache(t.TempDir(), "registry.example/repo")
	if got := c.refs(); got != nil {
		t.Fatalf("an empty cache has refs: %v", got)
	}
	good := []byte(`{"schemaVersion":2,"layers":[]}`)
	other := []byte(`{"schemaVersion":2,"layers":[{}]}`)
	c.putRefs(map[string]cachedRef{
		"coffer-refs-a-000001": {digest.FromBytes(good), good},
		"coffer-refs-b-000001": {digest.FromBytes(good), other}, // not its digest
		"coffer-refs-c-000001": {"sha256:short", good},          // not a digest
	})
	got := c.refs()
	if len(got) != 1 || string(got["coffer-refs-a-000001"].Manifest) != string(good) {
		t.Errorf("refs read back: %v, want only the entry whose manifest matches its digest", got)
	}

	if err := os.WriteFile(filepath.Join(c.dir, refsFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := c.refs(); got != nil {
		t.Errorf("a damaged refs file read as %v, want nothing", got)
	}
	if got := (&diskCache{}).refs(); got != nil {
		t.Errorf("no cache directory: refs %v", got)
	}
}
