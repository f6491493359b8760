package cli

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

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
		var ids []string
		for r := range 20 {
			churnTree(t, src, r)
			ids = append(ids, h.backup(src))
		}
		before := dirBytes(t, h.repo)
		out := h.mustAt("forget", "-keep-last", "2", "-prune")
		t.Logf("forget -prune:\n%s", out)
		after := dirBytes(t, h.repo)
		fresh := newHarness(t)
		freshCopy(t, h, fresh, ids[18:])
		want := dirBytes(t, fresh.repo)
		t.Logf("repository: %d bytes before, %d after; a new one with the 2 snapshots: %d", before, after, want)
		if float64(after) > 1.10*float64(want) {
			t.Errorf("after forget -keep-last 2 -prune the repository holds %d bytes, more than 110%% of %d", after, want)
		}
		if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
			t.Errorf("check: %s", out)
		}
		restored := filepath.Join(t.TempDir(), "r")
		h.mustAt("restore", ids[19], "-to", restored)
		testutil.CompareTrees(t, src, restored)
	})
	t.Run("distribution", func(t *testing.T) {
		reg := testutil.StartRegistry(t, testutil.RegistryOptions{Kind: testutil.Distribution, Delete: true})
		h := ociHarness(t, reg, "prune")
		src := filepath.Join(t.TempDir(), "src")
		h.create()
		var ids []string
		for r := range 20 {
			churnTree(t, src, r)
			ids = append(ids, h.backup(src))
		}
		before := dirBytes(t, reg.DataDir)
		h.mustAt("forget", "-keep-last", "2", "-prune")
		reg.GarbageCollect(t, true)
		after := dirBytes(t, reg.DataDir)
		freshReg := testutil.StartRegistry(t, testutil.RegistryOptions{Kind: testutil.Distribution, Delete: true})
		fresh := ociHarness(t, freshReg, "prune")
		freshCopy(t, h, fresh, ids[18:])
		freshReg.GarbageCollect(t, true)
		want := dirBytes(t, freshReg.DataDir)
		t.Logf("registry storage: %d bytes before, %d after GC; a new repository with the 2 snapshots: %d", before, after, want)
		if float64(after) > 1.10*float64(want) {
			t.Errorf("after forget -prune and GC the registry holds %d bytes, more than 110%% of %d", after, want)
		}
		h.env["COFFER_CACHE_DIR"] = t.TempDir()
		if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
			t.Errorf("check: %s", out)
		}
		restored := filepath.Join(t.TempDir(), "r")
		h.mustAt("restore", ids[19], "-to", restored)
		testutil.CompareTrees(t, src, restored)
	})
}

// On a registry that refuses DELETE, forget and prune succeed, say what
// brings the space back, and after the registry's garbage collection the
// bytes are gone from its storage.
func TestPruneDeleteRefused(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Kind: testutil.Distribution, Delete: false})
	h := ociHarness(t, reg, "nodelete")
	src := filepath.Join(t.TempDir(), "src")
	h.create()
	var ids []string
	for r := range 8 {
		churnTree(t, src, r)
		ids = append(ids, h.backup(src))
	}
	reg.GarbageCollect(t, true)
	before := dirBytes(t, reg.DataDir)
	r := h.at("forget", "-keep-last", "1", "-prune")
	if r.code != 0 {
		t.Fatalf("forget -prune on a registry without delete: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "refuses DELETE") || !strings.Contains(r.stderr, "garbage collection") {
		t.Errorf("forget -prune did not say how the space comes back: %q", r.stderr)
	}
	reg.GarbageCollect(t, true)
	after := dirBytes(t, reg.DataDir)
	t.Logf("registry storage: %d bytes before, %d after prune and GC", before, after)
	if after > before*6/10 {
		t.Errorf("after forget -keep-last 1 -prune and GC the registry holds %d of %d bytes", after, before)
	}
	h.env["COFFER_CACHE_DIR"] = t.TempDir()
	if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
		t.Errorf("check: %s", out)
	}
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
	h := newHarness(t)
	src := filepath.Join(t.TempDir(), "src")
	h.mustAt("create", "-pack-size", "1") // many packs: a prune with many steps
	var ids []string
	for r := range 16 {
		churnTree(t, src, r)
		ids = append(ids, h.backup(src))
	}
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
			if out := c.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
				t.Errorf("check after prune was killed: %s", out)
			}
			// The dead prune's lock does not stop the next (its process
			// is gone, on this machine).
			c.mustAt("prune", "-max-unused", "0%")
			if out := c.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
				t.Errorf("check after the next prune: %s", out)
			}
			if out := c.mustAt("prune", "-dry-run", "-max-unused", "0%"); !strings.Contains(out, "would delete 0 packs (0 B) and repack 0 packs") {
				t.Errorf("the prune after the killed one left work: %s", out)
			}
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
	stores := map[string]func(t *testing.T) *harness{
		"local": newHarness,
		"distribution": func(t *testing.T) *harness {
			reg := testutil.StartRegistry(t, testutil.RegistryOptions{Kind: testutil.Distribution, Delete: true})
			return ociHarness(t, reg, "busy")
		},
	}
	for name, newH := range stores {
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
			if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
				t.Fatalf("check -read-data: %s", out)
			}
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
