//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// -limit-upload and -limit-download hold a backup's uploads and a
// restore's downloads to within 15% of the rate set, over 30 s on
// loopback, where the registry alone would take a fraction of a second.
func TestBandwidthLimits(t *testing.T) {
	testutil.SkipInShort(t, "two transfers of 30 s")
	t.Parallel()
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution})
	proxy := testregistry.StartFaultProxy(t, reg.URL, testregistry.FaultOptions{})
	h := ociHarness(t, reg, "limited")
	h.repo = proxy.Location("limited")
	h.create()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "data.bin"), testutil.RandomBytes(31, 6<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	const kibps = 200
	within := func(what string, bytes int64, took time.Duration) {
		t.Helper()
		want := time.Duration(float64(bytes) / (kibps << 10) * float64(time.Second))
		t.Logf("%s: %d bytes in %s at %d KiB/s: %.0f%% of the time the limit sets", what, bytes, took.Round(time.Millisecond), kibps, 100*took.Seconds()/want.Seconds())
		if want < 25*time.Second {
			t.Errorf("%s moved %d bytes: too few to time over 30 s", what, bytes)
		}
		if took < want*85/100 || took > want*115/100 {
			t.Errorf("%s took %s for %d bytes at %d KiB/s; want %s within 15%%", what, took, bytes, kibps, want)
		}
	}

	proxy.Reset()
	start := time.Now()
	h.mustAt("-limit-upload", "200", "backup", src)
	within("backup", uploaded(proxy), time.Since(start))

	h.env["COFFER_CACHE_DIR"] = t.TempDir() // every read goes to the registry
	proxy.Reset()
	start = time.Now()
	h.mustAt("restore", "latest", "-to", filepath.Join(t.TempDir(), "r"), "-limit-download", "200")
	took := time.Since(start)
	var served int64
	for _, n := range proxy.Served() {
		served += n
	}
	within("restore", served, took)
}
