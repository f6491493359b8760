//go:build linux

package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// prune killed with SIGKILL at 10 points of its run on a real
// registry: the registry's storage is put back before each kill, so each
// kill lands in the same prune, spread over its duration. check
// -read-data passes every time, and the next prune completes.
func TestPruneKilledOCI(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	h := ociHarness(t, reg, "killed")
	src := filepath.Join(t.TempDir(), "src")
	h.mustAt("create", "-pack-size", "1")
	ids := churnHistory(t, h, src, 16)
	h.mustAt("forget", "-keep-last", "3")
	template := filepath.Join(t.TempDir(), "template")
	restore := func() {
		t.Helper()
		reg.Stop()
		if err := os.RemoveAll(reg.DataDir); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", template, reg.DataDir).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		reg.Start()
		h.env["COFFER_CACHE_DIR"] = t.TempDir()
	}
	reg.Stop()
	if out, err := exec.Command("cp", "-a", reg.DataDir, template).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	reg.Start()
	// Time a whole prune, as a process, to spread the kills over it.
	start := time.Now()
	if out, err := binaryCmd(t, h, "at", h.repo, "prune", "-max-unused", "0%").CombinedOutput(); err != nil {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	took := time.Since(start)
	t.Logf("a whole prune took %s", took)
	for i := range 10 {
		t.Run(fmt.Sprintf("kill %d", i), func(t *testing.T) {
			restore()
			cmd := binaryCmd(t, h, "at", h.repo, "prune", "-max-unused", "0%")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(took * time.Duration(i+1) / 11)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			tags, _ := os.ReadDir(filepath.Join(reg.DataDir, "docker/registry/v2/repositories/killed/_manifests/tags"))
			t.Logf("killed after %s: %d tags", took*time.Duration(i+1)/11, len(tags))
			h.recoversFromKilledPrune()
			restored := filepath.Join(t.TempDir(), "r")
			h.mustAt("restore", ids[15], "-to", restored)
			testutil.CompareTrees(t, src, restored)
		})
	}
}
