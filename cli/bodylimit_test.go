//go:build linux

package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/oci"
)

// bigFilesTree writes files of 3-5 MiB of random data, larger than
// nginx's default body limit, and a few small ones.
func bigFilesTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "big")
	for i, n := range []int{3 << 20, 4<<20 + 1234, 5 << 20} {
		writeTestFile(t, filepath.Join(src, fmt.Sprintf("big-%d.bin", i)), testutil.RandomBytes(int64(100+i), n))
	}
	for i := range 20 {
		writeTestFile(t, filepath.Join(src, "small", fmt.Sprintf("s%02d.txt", i)), testutil.CompressibleBytes(int64(i), 2000+100*i))
	}
	return src
}

func writeTestFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOCIBodyLimit: behind nginx with its default 1 MiB body limit (with
// request buffering on, nginx's default, and off), a backup of files
// larger than that fails at once with one line that says the registry
// refused an upload as too large and names -upload-chunk; with
// -upload-chunk 512KiB it completes, restores identical and passes
// check -read-data.
func TestOCIBodyLimit(t *testing.T) {
	regs := map[testregistry.AuthKind]*testregistry.Registry{}
	for _, auth := range []testregistry.AuthKind{testregistry.AuthNone, testregistry.AuthToken} {
		regs[auth] = testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true, Auth: auth})
	}
	src := bigFilesTree(t)
	for _, v := range []struct {
		buffering bool
		auth      testregistry.AuthKind
	}{{true, testregistry.AuthNone}, {false, testregistry.AuthNone}, {true, testregistry.AuthToken}} {
		buffering := v.buffering
		t.Run(fmt.Sprintf("request-buffering=%v-%s", buffering, v.auth), func(t *testing.T) {
			reg := regs[v.auth]
			proxy := testregistry.StartNginx(t, reg, testregistry.NginxOptions{MaxBodySize: "1m", NoRequestBuffering: !buffering})
			h := ociHarness(t, reg, "")
			h.repo = proxy.Location(fmt.Sprintf("limit/buffering-%v-%s", buffering, v.auth))
			// The docker config names the registry's own host, not the
			// proxy's.
			h.env["COFFER_REGISTRY_USERNAME"], h.env["COFFER_REGISTRY_PASSWORD"] = reg.Username, reg.Password
			h.create()

			// A short -retry-for: were the 413 retried, the test would
			// fail in seconds rather than wait ten minutes.
			start := time.Now()
			r := h.run("-retry-for", "20s", "at", h.repo, "backup", src)
			wantOneLineError(t, r, ExitFailure, "registry "+proxy.Host+" refused an upload of",
				"as too large (413 Request Entity Too Large)", "proxy", "-upload-chunk 512KiB")
			t.Logf("in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("the refused backup took %s: the 413 was retried", d)
			}
			// nginx logs a refused request once it has closed the
			// connection.
			for deadline := time.Now().Add(5 * time.Second); proxy.Refused() == 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			if n := proxy.Refused(); n < 1 || n > 4 {
				t.Errorf("nginx refused %d requests, want 1 to 4 (one per upload, none retried)", n)
			}

			out := h.run("-upload-chunk", "512KiB", "at", h.repo, "backup", src)
			if out.code != 0 {
				t.Fatalf("backup with -upload-chunk 512KiB: exit %d: %s\nnginx:\n%s", out.code, out.stderr, proxy.ErrorLog())
			}
			restored := t.TempDir()
			h.mustAt("restore", "latest", "-to", restored)
			testutil.CompareTrees(t, src, restored)
			h.checkReadData("after a chunked backup through nginx")
		})
	}
}

// TestOCIBackupPackSize: backup -pack-size 1MiB stores packs of at most
// 1 MiB, trailer and padding included, even for files of several MiB,
// so a backup gets through nginx's 1 MiB limit without -upload-chunk;
// the restore is identical and check -read-data passes. A second backup
// at 512KiB packs does too.
func TestOCIBackupPackSize(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	proxy := testregistry.StartNginx(t, reg, testregistry.NginxOptions{MaxBodySize: "1m"})
	h := ociHarness(t, reg, "")
	h.repo = proxy.Location("limit/pack-size")
	h.create()
	src := bigFilesTree(t)
	h.backup("-pack-size", "1MiB", src)
	packSizes := func() []int64 {
		st, err := oci.Open(t.Context(), h.repo, oci.Options{CacheDir: t.TempDir(), Writer: "t", DockerConfig: reg.DockerConfig})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var sizes []int64
		err = st.List(t.Context(), storage.KindPack, func(_ string, size int64) error {
			sizes = append(sizes, size)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return sizes
	}
	sizes := packSizes()
	if len(sizes) < 12 {
		t.Errorf("%d packs for 12 MiB of random data in 1 MiB packs", len(sizes))
	}
	for _, n := range sizes {
		if n > 1<<20 {
			t.Errorf("a pack of %d bytes, over -pack-size 1MiB", n)
		}
	}
	restored := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored)
	testutil.CompareTrees(t, src, restored)
	h.checkReadData("after a backup in 1 MiB packs")

	// Other data, in the smallest packs.
	src2 := filepath.Join(t.TempDir(), "more")
	writeTestFile(t, filepath.Join(src2, "f"), testutil.RandomBytes(7, 3<<20))
	h.backup("-pack-size", "512KiB", src2)
	for _, n := range packSizes() {
		if n > 1<<20 {
			t.Errorf("a pack of %d bytes, over 1 MiB", n)
		}
	}
	small := 0
	for _, n := range packSizes() {
		if n <= repo.MinPackSize {
			small++
		}
	}
	if small < 6 {
		t.Errorf("%d packs of at most 512 KiB after backing up 3 MiB with -pack-size 512KiB", small)
	}
	restored2 := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored2)
	testutil.CompareTrees(t, src2, restored2)
}

// TestSizeFlags: -upload-chunk and backup -pack-size take sizes with
// binary units, and refuse others, or sizes out of range, with one line
// and exit 2 before anything is read.
func TestSizeFlags(t *testing.T) {
	h := newHarness(t)
	h.create()
	src := t.TempDir()
	writeTestFile(t, filepath.Join(src, "f"), []byte("data"))
	for _, args := range [][]string{
		{"-upload-chunk", "1KiB", "at", h.repo, "ls"},
		{"-upload-chunk", "5MB", "at", h.repo, "ls"},
		{"-upload-chunk", "lots", "at", h.repo, "ls"},
		{"-upload-chunk", "-1m", "at", h.repo, "ls"},
		{"at", h.repo, "backup", "-pack-size", "100KiB", src},
		{"at", h.repo, "backup", "-pack-size", "2GiB", src},
		{"at", h.repo, "backup", "-pack-size", "0", src},
	} {
		r := h.run(args...)
		wantOneLineError(t, r, ExitUsage)
		if !strings.Contains(r.stderr, "size") && !strings.Contains(r.stderr, "unit") && !strings.Contains(r.stderr, "64KiB") {
			t.Errorf("coffer %q: %q does not say what size to give", args, r.stderr)
		}
	}
	for _, args := range [][]string{
		{"-upload-chunk", "512KiB", "at", h.repo, "backup", src},
		{"-upload-chunk", "1m", "at", h.repo, "backup", "-pack-size", "1", src},
		{"at", h.repo, "backup", "-pack-size", "512k", src},
	} {
		if r := h.run(args...); r.code != 0 {
			t.Errorf("coffer %q: exit %d: %s", args, r.code, r.stderr)
		}
	}
}
