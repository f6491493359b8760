package testregistry

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestGCFront: a blob uploaded through the front and referenced by a
// tagged manifest within the grace time stays; one left unreferenced is
// deleted once the grace time has passed, and not before.
func TestGCFront(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{Kind: Distribution, Delete: true})
	f := StartGCFront(t, r, "gc", GCFrontOptions{Grace: 2 * time.Second, Every: 200 * time.Millisecond})
	c := newRegClient(t, r, "http://"+f.Host)
	kept := []byte("referenced in time")
	c.pushArtifact("gc", "v1", kept)
	orphan := c.pushBlob("gc", []byte("never referenced"))
	time.Sleep(time.Second)
	if got := c.blobStatus("gc", orphan); got != http.StatusOK {
		t.Fatalf("an unreferenced blob is gone before the grace time: HEAD %d", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.Reaped()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if reaped := f.Reaped(); !slices.Equal(reaped, []string{orphan}) {
		t.Fatalf("reaped %v, want only the unreferenced blob %s", reaped, orphan)
	}
	if got := c.blobStatus("gc", orphan); got != http.StatusNotFound {
		t.Errorf("a reaped blob answers HEAD %d, want 404", got)
	}
	if got := c.blobStatus("gc", digestOf(kept)); got != http.StatusOK {
		t.Errorf("a referenced blob answers HEAD %d, want 200", got)
	}
	if n, errs := f.Sweeps(); n == 0 || len(errs) > 0 {
		t.Errorf("%d sweeps, errors %v", n, errs)
	}
	if f.Uploads() != 3 { // the layer, the empty config, the orphan
		t.Errorf("the front saw %d uploads, want 3", f.Uploads())
	}
}
