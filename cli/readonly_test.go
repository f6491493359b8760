//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// TestOCIReadOnly: against a registry in read-only maintenance mode, a
// backup fails at once with the reason, before it reads any file (a path
// that does not exist is not even looked at), and ls, cat, restore and
// check -read-data work.
func TestOCIReadOnly(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	h := ociHarness(t, reg, "read-only")
	h.create()
	src := sourceTree(t)
	h.backup(src)
	reg.SetReadOnly(true)

	for _, paths := range [][]string{{src}, {filepath.Join(t.TempDir(), "does-not-exist")}} {
		r := h.at(append([]string{"backup"}, paths...)...)
		wantOneLineError(t, r, ExitFailure, "refuses writes (read-only")
		if strings.Contains(r.stderr, "does-not-exist") {
			t.Errorf("backup looked at its paths before finding that it cannot write: %s", r.stderr)
		}
	}
	if out := h.mustAt("ls"); strings.Count(out, "\n") != 1 {
		t.Errorf("ls on a read-only registry:\n%s", out)
	}
	want, err := os.ReadFile(filepath.Join(src, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.mustAt("cat", "latest:LICENSE"); got != string(want) {
		t.Errorf("cat on a read-only registry: %q", got)
	}
	restored := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored)
	testutil.CompareTrees(t, src, restored)
	h.checkReadData("on a read-only registry")

	reg.SetReadOnly(false)
	h.backup(src)
}
