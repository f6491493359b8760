//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
)

// coffer cache lists the repository and registry caches with their use;
// -cleanup removes those unused for -max-age and nothing else; every
// cache directory carries a cache directory tag.
func TestCacheCommand(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution})
	h := newHarness(t)
	cache := h.env["COFFER_CACHE_DIR"]
	h.create()
	h.backup(sourceTree(t))
	oldRepo := *h
	oldRepo.repo = filepath.Join(t.TempDir(), "old")
	oldRepo.create()
	oldRepo.backup(sourceTree(t))
	onRegistry := *h
	onRegistry.repo = reg.Location("cached")
	onRegistry.create()
	onRegistry.backup(sourceTree(t))

	dirs, _ := filepath.Glob(filepath.Join(cache, "*"))
	var repoDirs []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && len(filepath.Base(d)) == 64 {
			repoDirs = append(repoDirs, d)
		}
	}
	ociDirs, _ := filepath.Glob(filepath.Join(cache, "oci", "*"))
	if len(repoDirs) != 3 || len(ociDirs) != 1 {
		t.Fatalf("caches: %v and %v; want 3 repositories and 1 registry", repoDirs, ociDirs)
	}
	for _, d := range append(append([]string{cache}, repoDirs...), ociDirs...) {
		if b, err := os.ReadFile(filepath.Join(d, "CACHEDIR.TAG")); err != nil || !strings.HasPrefix(string(b), "Signature: 8a477f597d28d172789f06886806bc55") {
			t.Errorf("%s has no cache directory tag: %v", d, err)
		}
	}
	out := h.mustRun("cache")
	if !strings.Contains(out, "4 caches in "+cache) || strings.Count(out, "repository ") != 3 || strings.Count(out, "registry ") != 1 {
		t.Errorf("cache:\n%s", out)
	}

	// The old repository's cache was last used 40 days ago.
	var oldDir string
	for _, d := range repoDirs {
		if _, err := os.Stat(filepath.Join(d, "index")); err == nil && strings.Contains(oldRepo.mustAt("info"), filepath.Base(d)) {
			oldDir = d
		}
	}
	if oldDir == "" {
		t.Fatal("no cache directory for the old repository")
	}
	past := time.Now().AddDate(0, 0, -40)
	os.Chtimes(oldDir, past, past)
	out = h.mustRun("cache", "-cleanup")
	if !strings.Contains(out, "removed 1 cache unused since") {
		t.Errorf("cache -cleanup:\n%s", out)
	}
	if _, err := os.Stat(oldDir); err == nil {
		t.Errorf("cache -cleanup left %s", oldDir)
	}
	for _, d := range append(repoDirs, ociDirs...) {
		if _, err := os.Stat(d); err != nil && d != oldDir {
			t.Errorf("cache -cleanup removed %s, in use: %v", d, err)
		}
	}
	// A 10-day limit removes nothing used today; the old repository works
	// on without its cache, which it makes again.
	if out := h.mustRun("cache", "-cleanup", "-max-age", "10d"); !strings.Contains(out, "removed 0 caches") {
		t.Errorf("cache -cleanup -max-age 10d:\n%s", out)
	}
	if ls := oldRepo.mustAt("ls"); strings.Count(ls, "\n") != 1 {
		t.Errorf("ls after its cache was removed: %q", ls)
	}
	if _, err := os.Stat(oldDir); err != nil {
		t.Errorf("the cache was not made again: %v", err)
	}
	wantOneLineError(t, h.run("-no-cache", "cache"), ExitUsage, "no cache directory")
}
