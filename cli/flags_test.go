//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Global flags work before `at`, after the store and after the command,
// as README says; help and version work the ways users try them; a typo
// gets a suggestion.
func TestFlagsAnywhere(t *testing.T) {
	h := newHarness(t)
	h.create()
	h.backup(sourceTree(t))

	for _, args := range [][]string{
		{"-json", "at", h.repo, "ls"},
		{"at", h.repo, "-json", "ls"},
		{"at", h.repo, "ls", "-json"},
		{"at", h.repo, "ls", "--json"},
	} {
		r := h.run(args...)
		var ev map[string]any
		if r.code != 0 || json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &ev) != nil {
			t.Errorf("coffer %s: exit %d, stdout %q, stderr %q: want JSON", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{
		{"-silent", "at", h.repo, "check"},
		{"at", h.repo, "-silent", "check"},
		{"at", h.repo, "check", "-silent"},
	} {
		if r := h.run(args...); r.code != 0 || r.stdout != "" {
			t.Errorf("coffer %s: exit %d, stdout %q: want nothing", strings.Join(args, " "), r.code, r.stdout)
		}
	}
	// A global flag's value among the command's flags counts.
	wantOneLineError(t, h.at("ls", "-passphrase-file", "/nonexistent/pw"), ExitFailure, "/nonexistent/pw")

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help", "backup"}, []string{"usage: coffer at <store> backup", "-exclude", "-stdin-name", "Global flags"}},
		{[]string{"backup", "-h"}, []string{"usage: coffer at <store> backup", "-exclude"}},
		{[]string{"at", h.repo, "restore", "--help"}, []string{"usage: coffer at <store> restore", "-to"}},
		{[]string{"help", "login"}, []string{"usage: coffer login "}},
		{[]string{"help", "version"}, []string{"usage: coffer version"}},
		{[]string{"help", "rm"}, []string{"usage: coffer at <store> forget", "also: rm"}},
		{[]string{"--version"}, []string{"coffer ", "repository format 1"}},
		{[]string{"-version"}, []string{"coffer ", "repository format 1"}},
		{[]string{"version"}, []string{"coffer ", "repository format 1"}},
		{[]string{"help"}, []string{"usage: coffer [global flags] at <store> <command>", "sync"}},
	} {
		r := h.run(tc.args...)
		if r.code != 0 {
			t.Errorf("coffer %s: exit %d: %s", strings.Join(tc.args, " "), r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("coffer %s printed %q, without %q", strings.Join(tc.args, " "), r.stdout, w)
			}
		}
		if strings.Contains(r.stdout, "usage: coffer at <store> log") || strings.Contains(r.stdout, "usage: coffer at <store> version") {
			t.Errorf("coffer %s: a command without a store shows `at <store>`: %q", strings.Join(tc.args, " "), r.stdout)
		}
	}
	// A command's help lists its own flags, not the global ones.
	if r := h.run("help", "ls"); strings.Contains(r.stdout, "-retry-for") {
		t.Errorf("help ls lists the global flags: %q", r.stdout)
	}

	wantOneLineError(t, h.at("bakup"), ExitUsage, `did you mean "backup"`)
	wantOneLineError(t, h.at("restor"), ExitUsage, `did you mean "restore"`)
	wantOneLineError(t, h.run("help", "chek"), ExitUsage, `did you mean "check"`)
	r := h.at("frobnicate")
	wantOneLineError(t, r, ExitUsage, "unknown command")
	if strings.Contains(r.stderr, "did you mean") {
		t.Errorf("a word far from every command got a suggestion: %q", r.stderr)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"backup", "backup", 0}, {"bakup", "backup", 1}, {"backpu", "backup", 2},
		{"", "ls", 2}, {"ls", "", 2}, {"kitten", "sitting", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// The small things a new user reads first: counts in the singular,
// backup and restore counting alike (symlinks included), info of an
// empty repository without ratios of nothing.
func TestSummariesReadRight(t *testing.T) {
	h := newHarness(t)
	h.create()
	if info := h.mustAt("info"); strings.Contains(info, "0.00x") || !strings.Contains(info, "none yet") {
		t.Errorf("info of an empty repository:\n%s", info)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "only"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("only", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	const counts = "1 file, 1 dir, 1 symlink or special file"
	if out := h.mustAt("backup", src); !strings.Contains(out, "saved: "+counts+", ") {
		t.Errorf("backup: %q, want %q", out, counts)
	}
	if out := h.mustAt("restore", "latest", "-to", filepath.Join(t.TempDir(), "r")); !strings.Contains(out, ": "+counts+", ") {
		t.Errorf("restore: %q, want %q", out, counts)
	}
	if out := h.mustAt("check"); !strings.Contains(out, "checked 1 snapshot, ") || strings.Contains(out, " 1 packs") {
		t.Errorf("check: %q", out)
	}
	if out := h.mustAt("forget", "latest", "-dry-run"); !strings.Contains(out, "would remove 1 snapshot (dry run)") {
		t.Errorf("forget -dry-run: %q", out)
	}
}

// Every command's help: a usage line with `at <store>` exactly when the
// command works on a store, and every flag it takes, with the global
// flags left to coffer -h, which lists them all.
func TestEveryUsageLine(t *testing.T) {
	h := newHarness(t)
	for _, c := range commands {
		out := h.mustRun("help", c.name)
		want := "usage: coffer at <store> " + c.name
		if c.noStore {
			want = "usage: coffer " + c.name
		}
		if !strings.HasPrefix(out, want+" ") && !strings.HasPrefix(out, want+"\n") {
			t.Errorf("help %s: %q, want it to start with %q", c.name, strings.SplitN(out, "\n", 2)[0], want)
		}
		for _, f := range commandFlags(c) {
			if !strings.Contains(out, "  -"+f.Name) {
				t.Errorf("help %s does not list -%s", c.name, f.Name)
			}
		}
	}
	top := h.mustRun("-h")
	for _, f := range globalFlagList() {
		if !strings.Contains(top, "  -"+f.Name) {
			t.Errorf("coffer -h does not list -%s", f.Name)
		}
	}
	for _, c := range commands {
		if !strings.Contains(top, "  "+c.name+" ") {
			t.Errorf("coffer -h does not list %s", c.name)
		}
	}
}
