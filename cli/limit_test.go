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
// restore's downloads to the rate set, over 30 s on loopback, where the
// registry alone would take a fraction of a second: never more than 15%
// faster, and no slower than 15% plus what the same command takes
// unlimited (its own start and CPU, which a loaded machine stretches).
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
	within := func(what string, bytes int64, took, unlimited time.Duration) {
		t.Helper()
		want := time.Duration(float64(bytes) / (kibps << 10) * float64(time.Second))
		t.Logf("%s: %d bytes in %s at %d KiB/s: %.0f%% of the time the limit sets (unlimited: %s)", what, bytes, took.Round(time.Millisecond), kibps, 100*took.Seconds()/want.Seconds(), unlimited.Round(time.Millisecond))
		if want < 25*time.Second {
			t.Errorf("%s moved %d bytes: too few to time over 30 s", what, bytes)
		}
		if took < want*85/100 || took > want*115/100+unlimited {
			t.Errorf("%s took %s for %d bytes at %d KiB/s; want %s within 15%%, plus up to %s for the command itself", what, took, bytes, kibps, want, unlimited)
		}
	}
	timed := func(args ...string) time.Duration {
		start := time.Now()
		h.mustAt(args...)
		return time.Since(start)
	}

	// The same amount of other data, unlimited: what the command costs
	// on this machine now, besides the transfer.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "other.bin"), testutil.RandomBytes(32, 6<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	unlimited := timed("backup", other)
	proxy.Reset()
	took := timed("-limit-upload", "200", "backup", src)
	within("backup", uploaded(proxy), took, unlimited)

	// Every read goes to the registry: a fresh cache for each restore.
	h.env["COFFER_CACHE_DIR"] = t.TempDir()
	unlimited = timed("restore", "latest", "-path", src, "-to", filepath.Join(t.TempDir(), "u"))
	h.env["COFFER_CACHE_DIR"] = t.TempDir()
	proxy.Reset()
	took = timed("restore", "latest", "-path", src, "-to", filepath.Join(t.TempDir(), "r"), "-limit-download", "200")
	var served int64
	for _, n := range proxy.Served() {
		served += n
	}
	within("restore", served, took, unlimited)
}
