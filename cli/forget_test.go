//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage/all"
)

// churnBackups makes n backups of src, changing a file before each, and
// returns their short ids, oldest first.
func churnBackups(t *testing.T, h *harness, src string, n int, args ...string) []string {
	t.Helper()
	var out []string
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, "churn"), testutil.RandomBytes(int64(len(out)*31+i), 300<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, h.backup(append(slices.Clone(args), src)...))
	}
	return out
}

func listedIDs(t *testing.T, h *harness) []string {
	t.Helper()
	var ids []string
	for _, m := range regexp.MustCompile(`   ([0-9a-f]{8}) `).FindAllStringSubmatch(h.mustAt("ls"), -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestForgetByID(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	ids := churnBackups(t, h, src, 3)

	// An unknown id anywhere in the list removes nothing.
	wantOneLineError(t, h.at("forget", ids[0], "ffffffff"), ExitNoSnapshot)
	if got := listedIDs(t, h); len(got) != 3 {
		t.Fatalf("after a failed forget, ls lists %v, want all 3", got)
	}
	out := h.mustAt("forget", ids[0][:4], ids[1])
	for _, id := range ids[:2] {
		if !strings.Contains(out, "removed snapshot "+id) {
			t.Errorf("forget output %q does not name %s", out, id)
		}
	}
	if got := listedIDs(t, h); !slices.Equal(got, ids[2:]) {
		t.Errorf("after forget, ls lists %v, want %v", got, ids[2:])
	}
	// plakar's name for it.
	h.mustAt("rm", ids[2])
	if got := listedIDs(t, h); len(got) != 0 {
		t.Errorf("after rm, ls lists %v", got)
	}
	wantOneLineError(t, h.at("forget", ids[2]), ExitNoSnapshot)
	if out := h.mustAt("check"); !strings.Contains(out, "no errors were found") {
		t.Errorf("check after forget: %s", out)
	}
}

func TestForgetPolicy(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	other := sourceTree(t)
	h.create()
	ids := churnBackups(t, h, src, 5)
	otherIDs := churnBackups(t, h, other, 2, "-host", "elsewhere")

	// A dry run shows restic's table and removes nothing.
	out := h.mustAt("forget", "-keep-last", "2", "-dry-run")
	for _, want := range []string{"Applying policy: keep 2 latest snapshots", "keep 2 snapshots:", "remove 3 snapshots:",
		"last snapshot", "would remove 3 snapshots (dry run)", "snapshots for host [elsewhere], paths ["} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	if got := listedIDs(t, h); len(got) != 7 {
		t.Fatalf("a dry run removed snapshots: ls lists %v", got)
	}

	// Filters leave other hosts alone; groups are per host and paths.
	h.mustAt("forget", "-keep-last", "2", "-host", hostname(t))
	want := append(slices.Clone(ids[3:]), otherIDs...)
	if got := listedIDs(t, h); !sameSet(got, want) {
		t.Errorf("after -keep-last 2 -host %s, ls lists %v, want %v", hostname(t), got, want)
	}
	for _, id := range ids[3:] {
		restored := filepath.Join(t.TempDir(), "r")
		h.mustAt("restore", id, "-to", restored)
	}
	restored := filepath.Join(t.TempDir(), "r")
	h.mustAt("restore", ids[4], "-to", restored)
	testutil.CompareTrees(t, src, restored)

	// JSON: one document per group, then a summary.
	r := h.run("-json", "at", h.repo, "forget", "-keep-last", "1", "-dry-run")
	if r.code != 0 {
		t.Fatalf("forget -json: exit %d: %s", r.code, r.stderr)
	}
	var groups int
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var doc struct {
			Type    string   `json:"type"`
			Keep    []string `json:"keep"`
			Remove  []string `json:"remove"`
			Reasons []struct {
				ID      string   `json:"id"`
				Matches []string `json:"matches"`
			} `json:"reasons"`
		}
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("forget -json printed %q: %v", line, err)
		}
		if doc.Type == "group" {
			groups++
			if len(doc.Keep) != 1 || len(doc.Remove) != 1 || len(doc.Reasons) != 1 || doc.Reasons[0].Matches[0] != "last snapshot" {
				t.Errorf("group document %s", line)
			}
		}
	}
	if groups != 2 {
		t.Errorf("forget -json printed %d groups, want 2:\n%s", groups, r.stdout)
	}
}

func TestForgetBadInput(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	ids := churnBackups(t, h, src, 2, "-tag", "nightly")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no policy and no ids", []string{"forget"}, ExitUsage},
		{"a policy that keeps nothing", []string{"forget", "-keep-tag", "weekly"}, ExitUsage},
		{"keep-last 0", []string{"forget", "-keep-last", "0"}, ExitUsage},
		{"a count below -1", []string{"forget", "-keep-last", "-2"}, ExitUsage},
		{"a bad duration", []string{"forget", "-keep-within", "3x"}, ExitUsage},
		{"a bad group", []string{"forget", "-keep-last", "1", "-group-by", "color"}, ExitUsage},
		{"ids and a policy", []string{"forget", "-keep-last", "1", ids[0]}, ExitUsage},
		{"unknown id", []string{"forget", "0123abcd"}, ExitNoSnapshot},
		{"not an id", []string{"forget", "xyz"}, ExitNoSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantOneLineError(t, h.at(tt.args...), tt.code)
			if got := listedIDs(t, h); len(got) != 2 {
				t.Errorf("after a refused forget, ls lists %v, want both snapshots", got)
			}
		})
	}
	for _, policy := range [][]string{{"-keep-tag", "weekly"}, {"-keep-last", "0"}, {"-keep-within", "0d"}} {
		if r := h.at(append([]string{"forget"}, policy...)...); !strings.Contains(r.stderr, "-allow-empty") {
			t.Errorf("the refusal of forget %v does not name -allow-empty: %q", policy, r.stderr)
		}
	}
	h.mustAt("forget", "-keep-tag", "weekly", "-allow-empty")
	if got := listedIDs(t, h); len(got) != 0 {
		t.Errorf("after -allow-empty, ls lists %v", got)
	}
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// forget (then forget -prune) on real registries, with delete allowed and
// refused, and the registry's garbage collection afterwards: what is kept
// stays whole,
// what was forgotten is gone, and where DELETE is refused coffer says
// how the space comes back.
func TestOCIForget(t *testing.T) {
	tests := []testregistry.RegistryOptions{
		{Kind: testregistry.Distribution, Delete: true},
		{Kind: testregistry.Distribution, Delete: false},
		{Kind: testregistry.Registry28, Delete: true},
	}
	for _, opt := range tests {
		t.Run(opt.Kind.String()+map[bool]string{true: "-delete", false: "-nodelete"}[opt.Delete], func(t *testing.T) {
			reg := testregistry.StartRegistry(t, opt)
			h := ociHarness(t, reg, "forget")
			src := sourceTree(t)
			h.create()
			ids := churnBackups(t, h, src, 6)
			r := h.at("forget", "-keep-last", "2")
			if r.code != 0 {
				t.Fatalf("forget: exit %d: %s", r.code, r.stderr)
			}
			if refused := strings.Contains(r.stderr, "refuses DELETE") && strings.Contains(r.stderr, "garbage collection"); refused == opt.Delete {
				t.Errorf("with delete %v, forget's notice was %q", opt.Delete, r.stderr)
			}
			reg.GarbageCollect(t, true)
			h.env["COFFER_CACHE_DIR"] = t.TempDir()
			if got := listedIDs(t, h); !sameSet(got, ids[4:]) {
				t.Errorf("after forget and GC, ls lists %v, want %v", got, ids[4:])
			}
			h.checkReadData("after forget and GC")
			restored := filepath.Join(t.TempDir(), "r")
			h.mustAt("restore", ids[5], "-to", restored)
			testutil.CompareTrees(t, src, restored)
			// Backups go on after a forget, and a later forget works too.
			more := churnBackups(t, h, src, 2)
			h.mustAt("forget", ids[4], "-prune")
			reg.GarbageCollect(t, true)
			if got := listedIDs(t, h); !sameSet(got, append([]string{ids[5]}, more...)) {
				t.Errorf("after a second forget and GC, ls lists %v", got)
			}
			h.checkReadData("after the second forget")
		})
	}
}

// forget waits for no one: while another process holds the exclusive
// lock it fails with exit code 19, naming the holder; backups go on.
func TestForgetLocked(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	id := h.backup(src)
	st, err := all.Registry(all.Options{}).Open(t.Context(), h.repo)
	if err != nil {
		t.Fatal(err)
	}
	other, err := repo.Open(t.Context(), st, func() ([]byte, error) { return []byte(testPassphrase), nil }, repo.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l, err := other.Lock(t.Context(), repo.LockExclusive, "prune")
	if err != nil {
		t.Fatal(err)
	}
	wantOneLineError(t, h.at("forget", id), ExitLocked, "exclusive lock of `prune`", "coffer unlock")
	h.backup(src) // a shared lock does not wait for an exclusive one
	if out := h.mustAt("unlock"); !strings.Contains(out, "removed 0 locks") || !strings.Contains(out, "still held") {
		t.Errorf("unlock removed a live lock: %q", out)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	h.mustAt("forget", id)
}
