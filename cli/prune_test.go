//go:build linux

package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// churnTree writes round r of a source tree: 12 files of 512 KiB, a
// third of which change each round, so that a history of rounds shares
// most of its data.
func churnTree(t *testing.T, dir string, r int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f := range 12 {
		// The last round, up to r, in which file f changed.
		gen := max(r-((r-f%3)%3+3)%3, 0)
		name := filepath.Join(dir, fmt.Sprintf("f%02d", f))
		if err := os.WriteFile(name, testutil.RandomBytes(int64(1000*f+gen), 512<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		// Equal rounds give equal trees, times included, so a restore
		// compares with the tree written again.
		stamp := time.Date(2026, 1, 1, 0, f, gen, 0, time.UTC)
		if err := os.Chtimes(name, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
}

// churnHistory backs up rounds 0 to n-1 of churnTree into src and returns
// the snapshots' short ids, oldest first.
func churnHistory(t *testing.T, h *harness, src string, n int) []string {
	t.Helper()
	var ids []string
	for r := range n {
		churnTree(t, src, r)
		ids = append(ids, h.backup(src))
	}
	return ids
}

var snapshotSaved = regexp.MustCompile(`snapshot ([0-9a-f]{8}) saved`)

// freshCopy backs the given snapshots (restored) up into a new
// repository, for the size a repository holding only them has.
func freshCopy(t *testing.T, h *harness, fresh *harness, ids []string) {
	t.Helper()
	fresh.create()
	for _, id := range ids {
		dir := filepath.Join(t.TempDir(), "src")
		h.mustAt("restore", id, "-to", dir)
		fresh.backup(dir)
	}
}

// 20 snapshots with churn, forget -keep-last 2 -prune: the repository
// shrinks to within 10% of a new one holding only those two snapshots.
func TestPruneReclaimsSpace(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		h := newHarness(t)
		src := filepath.Join(t.TempDir(), "src")
		h.create()
		ids := churnHistory(t, h, src, 20)
		before := dirSize(t, h.repo)
		out := h.mustAt("forget", "-keep-last", "2", "-prune")
		t.Logf("forget -prune:\n%s", out)
		after := dirSize(t, h.repo)
		fresh := newHarness(t)
		freshCopy(t, h, fresh, ids[18:])
		want := dirSize(t, fresh.repo)
		t.Logf("repository: %d bytes before, %d after; a new one with the 2 snapshots: %d", before, after, want)
		if float64(after) > 1.10*float64(want) {
			t.Errorf("after forget -keep-last 2 -prune the repository holds %d bytes, more than 110%% of %d", after, want)
		}
		h.checkReadData("after forget -prune")
		restored := filepath.Join(t.TempDir(), "r")
		h.mustAt("restore", ids[19], "-to", restored)
		testutil.CompareTrees(t, src, restored)
	})
	t.Run("distribution", func(t *testing.T) {
		reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
		h := ociHarness(t, reg, "prune")
		src := filepath.Join(t.TempDir(), "src")
		h.create()
		ids := churnHistory(t, h, src, 20)
		before := dirSize(t, reg.DataDir)
		h.mustAt("forget", "-keep-last", "2", "-prune")
		reg.GarbageCollect(t, true)
		after := dirSize(t, reg.DataDir)
		freshReg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
		fresh := ociHarness(t, freshReg, "prune")
		freshCopy(t, h, fresh, ids[18:])
		freshReg.GarbageCollect(t, true)
		want := dirSize(t, freshReg.DataDir)
		t.Logf("registry storage: %d bytes before, %d after GC; a new repository with the 2 snapshots: %d", before, after, want)
		if float64(after) > 1.10*float64(want) {
			t.Errorf("after forget -prune and GC the registry holds %d bytes, more than 110%% of %d", after, want)
		}
		h.env["COFFER_CACHE_DIR"] = t.TempDir()
		h.checkReadData("after forget -prune and GC")
		restored := filepath.Join(t.TempDir(), "r")
		h.mustAt("restore", ids[19], "-to", restored)
		testutil.CompareTrees(t, src, restored)
	})
}

// On a registry that refuses DELETE, forget and prune succeed, say what
// brings the space back, and after the registry's garbage collection the
// bytes are gone from its storage.
func TestPruneDeleteRefused(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: false})
	h := ociHarness(t, reg, "nodelete")
	src := filepath.Join(t.TempDir(), "src")
	h.create()
	ids := churnHistory(t, h, src, 8)
	reg.GarbageCollect(t, true)
	before := dirSize(t, reg.DataDir)
	r := h.at("forget", "-keep-last", "1", "-prune")
	if r.code != 0 {
		t.Fatalf("forget -prune on a registry without delete: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "refuses DELETE") || !strings.Contains(r.stderr, "garbage collection") {
		t.Errorf("forget -prune did not say how the space comes back: %q", r.stderr)
	}
	reg.GarbageCollect(t, true)
	after := dirSize(t, reg.DataDir)
	t.Logf("registry storage: %d bytes before, %d after prune and GC", before, after)
	if after > before*6/10 {
		t.Errorf("after forget -keep-last 1 -prune and GC the registry holds %d of %d bytes", after, before)
	}
	h.env["COFFER_CACHE_DIR"] = t.TempDir()
	h.checkReadData("after forget -prune without delete")
	restored := filepath.Join(t.TempDir(), "r")
	h.mustAt("restore", ids[7], "-to", restored)
	testutil.CompareTrees(t, src, restored)
}

// repoState counts what a local repository holds.
type repoState struct{ packs, index, plans, locks int }

func stateOf(dir string) repoState {
	count := func(sub string) int {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		return len(entries)
	}
	return repoState{countPacks(dir), count("index"), count("plans"), count("locks")}
}

// prune killed with SIGKILL at 10 points of its run, each chosen by what
// it has done so far: check -read-data passes every time, and the next
// prune completes.
func TestPruneKilled(t *testing.T) {
	// Its processes start in goroutines, where a skip would not stop the test.
	testutil.SkipInShort(t, "runs the coffer binary")
	h := newHarness(t)
	src := filepath.Join(t.TempDir(), "src")
	h.mustAt("create", "-pack-size", "1") // many packs: a prune with many steps
	ids := churnHistory(t, h, src, 16)
	h.mustAt("forget", "-keep-last", "3")
	s0 := stateOf(h.repo)
	done := copyRepo(t, h)
	done.mustAt("prune", "-max-unused", "0%")
	final := stateOf(done.repo)
	t.Logf("before prune: %+v; after: %+v", s0, final)
	sawPlan := false
	points := []struct {
		name string
		at   func(s repoState) bool
	}{
		{"at start", func(repoState) bool { return true }},
		{"lock written", func(s repoState) bool { return s.locks > 0 }},
		{"a repacked pack written", func(s repoState) bool { return s.packs > s0.packs }},
		{"a plan written", func(s repoState) bool { return s.plans > 0 }},
		{"the second plan written", func(s repoState) bool { return s.plans > 1 }},
		{"index objects changed", func(s repoState) bool { return s.index != s0.index }},
		{"the first pack deleted", func(s repoState) bool { return s.packs < s0.packs }},
		{"a third of the packs deleted", func(s repoState) bool { return s.packs <= s0.packs-(s0.packs-final.packs)/3 }},
		{"most packs deleted", func(s repoState) bool { return s.packs <= final.packs+2 }},
		{"the plan removed", func(s repoState) bool {
			sawPlan = sawPlan || s.plans > 0
			return sawPlan && s.plans == 0
		}},
	}
	midway := 0
	for i, p := range points {
		t.Run(fmt.Sprintf("kill %d %s", i, p.name), func(t *testing.T) {
			c := copyRepo(t, h)
			sawPlan = false
			cmd := binaryCmd(t, c, "at", c.repo, "prune", "-max-unused", "0%")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
		watch:
			for !p.at(stateOf(c.repo)) {
				select {
				case <-exited:
					break watch
				default:
					time.Sleep(200 * time.Microsecond)
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			s := stateOf(c.repo)
			t.Logf("killed at %q: %+v", p.name, s)
			if s != s0 && s != final {
				midway++
			}
			c.recoversFromKilledPrune()
			for _, id := range ids[13:] {
				restored := filepath.Join(t.TempDir(), "r")
				c.mustAt("restore", id, "-to", restored)
			}
		})
	}
	// Kills that fall before the first change or after the last prove
	// less; most must land in between.
	if midway < 4 {
		t.Errorf("only %d of %d kills left a prune half done", midway, len(points))
	}
	restored := filepath.Join(t.TempDir(), "r")
	h.mustAt("restore", ids[15], "-to", restored)
	testutil.CompareTrees(t, src, restored)
}

// recoversFromKilledPrune checks a repository a prune was killed in: it
// verifies, the next prune goes ahead (the dead prune's lock, of a process
// gone from this machine, does not stop it) and finishes the work.
func (h *harness) recoversFromKilledPrune() {
	h.t.Helper()
	h.checkReadData("after prune was killed")
	h.mustAt("prune", "-max-unused", "0%")
	h.checkReadData("after the next prune")
	if out := h.mustAt("prune", "-dry-run", "-max-unused", "0%"); !strings.Contains(out, "would delete 0 packs (0 B) and repack 0 packs") {
		h.t.Errorf("the prune after the killed one left work: %s", out)
	}
}

// copyRepo copies a local repository, with a cache of its own.
func copyRepo(t *testing.T, h *harness) *harness {
	t.Helper()
	c := newHarness(t)
	if out, err := exec.Command("cp", "-a", h.repo, c.repo).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return c
}

// Ten rounds in which a backup and `forget -keep-last 3 -prune` run at
// the same time: every kept snapshot passes check -read-data and
// restores identical to its source.
func TestPruneWhileBackingUp(t *testing.T) {
	// Its processes start in goroutines, where a skip would not stop the test.
	testutil.SkipInShort(t, "runs the coffer binary")
	for name, newH := range bothStores("busy") {
		t.Run(name, func(t *testing.T) {
			h := newH(t)
			h.create()
			src := filepath.Join(t.TempDir(), "src")
			round := map[string]int{} // snapshot id -> round of its source
			deferred := 0             // prunes that found a backup running
			for r := range 10 {
				churnTree(t, src, r)
				var wg sync.WaitGroup
				var backupOut, forgetOut []byte
				var backupErr, forgetErr error
				wg.Go(func() {
					backupOut, backupErr = binaryCmd(t, h, "at", h.repo, "backup", src).CombinedOutput()
				})
				wg.Go(func() {
					time.Sleep(time.Duration(r%4) * 150 * time.Millisecond)
					forgetOut, forgetErr = binaryCmd(t, h, "at", h.repo, "forget", "-keep-last", "3", "-prune").CombinedOutput()
				})
				wg.Wait()
				if backupErr != nil {
					t.Fatalf("round %d: backup: %v\n%s", r, backupErr, backupOut)
				}
				if forgetErr != nil {
					t.Fatalf("round %d: forget -prune: %v\n%s", r, forgetErr, forgetOut)
				}
				if m := snapshotSaved.FindSubmatch(backupOut); m != nil {
					round[string(m[1])] = r
				}
				if strings.Contains(string(forgetOut), "planned for deletion") {
					deferred++
				}
			}
			t.Logf("%d of 10 prunes found the backup running and left their deletes to a later prune", deferred)
			h.checkReadData("after the rounds")
			listed := listedIDs(t, h)
			if len(listed) < 3 {
				t.Errorf("only %d snapshots are left: %v", len(listed), listed)
			}
			for _, id := range listed {
				r, ok := round[id]
				if !ok {
					t.Errorf("snapshot %s is listed but no backup saved it", id)
					continue
				}
				want := filepath.Join(t.TempDir(), "want")
				churnTree(t, want, r)
				restored := filepath.Join(t.TempDir(), "r")
				h.mustAt("restore", id, "-to", restored)
				testutil.CompareTrees(t, want, restored)
			}
			// With no backup running, a last prune leaves nothing planned.
			h.mustAt("prune")
			if out := h.mustAt("prune", "-dry-run"); !strings.Contains(out, "would delete 0 packs") {
				t.Errorf("after a quiet prune: %s", out)
			}
		})
	}
}
