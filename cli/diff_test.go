//go:build linux

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// TestDiffLive compares a backed-up source with itself on disk after
// changes of each kind, through every form of live path.
func TestDiffLive(t *testing.T) {
	t.Parallel()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(t *testing.T, src string)
		// live turns the source into the argument given (default: as is).
		live  func(t *testing.T, src string) string
		flags []string
		want  []string // lines of the output, with %s for the source
	}{
		{name: "unchanged", want: nil},
		{name: "unchanged, relative path", live: func(t *testing.T, src string) string {
			rel, err := filepath.Rel(cwd, src) // ../../tmp/...: the harness runs here
			if err != nil || !strings.HasPrefix(rel, "../") {
				t.Skipf("no ../ path from %s to %s", cwd, src)
			}
			return rel
		}, want: nil},
		{name: "every kind", change: func(t *testing.T, src string) {
			write(t, filepath.Join(src, "LICENSE"), "a new licence")
			write(t, filepath.Join(src, "added.txt"), "new")
			if err := os.Remove(filepath.Join(src, "large.bin")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(src, "zero"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: []string{
			"U %s", "M %s/LICENSE (207 B -> 13 B)", "+ %s/added.txt (3 B)", "- %s/large.bin (2.0 MiB)", "U %s/zero",
			"1 added, 1 removed, 1 modified, 2 metadata only",
		}},
		{name: "changed behind its mtime, not read", change: rewriteKeepingMtime,
			want: nil},
		{name: "changed behind its mtime, -content", change: rewriteKeepingMtime, flags: []string{"-content"},
			want: []string{"M %s/LICENSE (207 B -> 207 B)", "0 added, 0 removed, 1 modified, 0 metadata only"}},
		{name: "excluded", change: func(t *testing.T, src string) {
			write(t, filepath.Join(src, "a", "scratch.tmp"), "x")
		}, flags: []string{"-exclude", "*.tmp"}, want: []string{"U %s/a", "0 added, 0 removed, 0 modified, 1 metadata only"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			src := sourceTree(t)
			h.create()
			id := h.backup(src)
			if tc.change != nil {
				tc.change(t, src)
			}
			live := src
			if tc.live != nil {
				live = tc.live(t, src)
			}
			out := h.mustAt(append([]string{"diff", id, live}, tc.flags...)...)
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "%s", src))
			}
			if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("diff %s %s %v:\n%s\nwant:\n%s", id, live, tc.flags, out, strings.Join(want, "\n"))
			}
		})
	}
}

// rewriteKeepingMtime changes LICENSE's content, not its size, and puts
// its mtime back, as a tool that preserves times would.
func rewriteKeepingMtime(t *testing.T, src string) {
	t.Helper()
	p := filepath.Join(src, "LICENSE")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p, strings.ToUpper(licenseText))
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDiffSubpaths compares subtrees and files of two snapshots and of a
// snapshot and the disk, and the mistakes one can make naming them.
func TestDiffSubpaths(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	src := t.TempDir()
	past := time.Date(2020, 2, 2, 0, 0, 0, 0, time.UTC)
	for _, f := range []string{"d/f", "d/g", "e/f", "top"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(src, f), "one")
	}
	h.create()
	a := h.backup(src)
	write(t, filepath.Join(src, "d", "f"), "two!")
	write(t, filepath.Join(src, "top"), "changed outside d")
	for _, p := range []string{"d", "d/f", "top", "."} {
		if err := os.Chtimes(filepath.Join(src, p), past, past); err != nil {
			t.Fatal(err)
		}
	}
	b := h.backup(src)

	cases := []struct {
		name       string
		args       []string
		want       []string // lines, %s for src
		code       int
		errorParts []string
	}{
		{name: "subtrees", args: []string{a + ":d", b + ":d"},
			want: []string{"U %s/d", "M %s/d/f (3 B -> 4 B)", "0 added, 0 removed, 1 modified, 1 metadata only"}},
		{name: "subtree and a whole snapshot's base", args: []string{a + ":e", b},
			want: []string{"U %s/e", "+ %s/e/d (0 B)", "+ %s/e/d/f (4 B)", "+ %s/e/d/g (3 B)", "+ %s/e/e (0 B)",
				"+ %s/e/e/f (3 B)", "- %s/e/f (3 B)", "+ %s/e/top (17 B)", "6 added, 1 removed, 0 modified, 1 metadata only"}},
		{name: "files", args: []string{a + ":d/f", b + ":d/f"},
			want: []string{"M %s/d/f (3 B -> 4 B)", "0 added, 0 removed, 1 modified, 0 metadata only"}},
		{name: "a file against a directory is a type change", args: []string{a + ":top", b + ":e"},
			want: []string{"- %s/top (3 B)", "+ %s/top (0 B)", "+ %s/top/f (3 B)", "2 added, 1 removed, 0 modified, 0 metadata only"}},
		{name: "subtree against the disk", args: []string{a + ":d", filepath.Join(src, "d")},
			want: []string{"U %s/d", "M %s/d/f (3 B -> 4 B)", "0 added, 0 removed, 1 modified, 1 metadata only"}},
		{name: "file against the disk", args: []string{b + ":top", filepath.Join(src, "top")},
			want: nil},
		{name: "missing path", args: []string{a + ":no/such", b + ":d"}, code: ExitNoPath, errorParts: []string{"no/such", "not in snapshot"}},
		{name: "missing path, second", args: []string{a + ":d", b + ":d/no"}, code: ExitNoPath, errorParts: []string{"d/no", "not in snapshot"}},
		{name: "missing path against the disk", args: []string{a + ":no/such", src}, code: ExitNoPath, errorParts: []string{"no/such"}},
		{name: "below a file", args: []string{a + ":top/x", src}, code: ExitNoPath, errorParts: []string{"not a directory"}},
		{name: "missing live path", args: []string{a, filepath.Join(src, "nothing")}, code: ExitUsage, errorParts: []string{"nothing", "no such file"}},
		{name: "-content between snapshots", args: []string{a, b, "-content"}, code: ExitUsage, errorParts: []string{"live path"}},
		{name: "one argument", args: []string{a}, code: ExitUsage, errorParts: []string{"two arguments"}},
		{name: "relative path without ./ is a snapshot", args: []string{a, "notasnapshot"}, code: ExitNoSnapshot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.at(append([]string{"diff"}, tc.args...)...)
			if tc.code != 0 {
				wantOneLineError(t, r, tc.code, tc.errorParts...)
				return
			}
			if r.code != 0 {
				t.Fatalf("diff %v: exit %d: %s", tc.args, r.code, r.stderr)
			}
			want := ""
			if len(tc.want) > 0 {
				want = strings.ReplaceAll(strings.Join(tc.want, "\n"), "%s", src) + "\n"
			}
			if r.stdout != want {
				t.Errorf("diff %v:\n%s\nwant:\n%s", tc.args, r.stdout, want)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		r := h.run("-json", "at", h.repo, "diff", a+":d", filepath.Join(src, "d"))
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var kinds []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var m struct {
				Type   string `json:"type"`
				Change struct {
					Kind string `json:"kind"`
					Path string `json:"path"`
				} `json:"change"`
				Modified int `json:"modified"`
			}
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if m.Type == "summary" {
				kinds = append(kinds, "summary", strings.Repeat("M", m.Modified))
				continue
			}
			kinds = append(kinds, m.Change.Kind+" "+strings.TrimPrefix(m.Change.Path, src))
		}
		if got, want := strings.Join(kinds, ","), "U /d,M /d/f,summary,M"; got != want {
			t.Errorf("json: %s, want %s\n%s", got, want, r.stdout)
		}
	})
}

// A directory the diff cannot list is a warning, left out, and exit 3;
// the rest is compared. As root the diff runs as nobody, as
// TestUnreadableFileIsPartial's backup does.
func TestDiffLiveUnreadableIsPartial(t *testing.T) {
	h := newHarness(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755) // the test's own temp root is 0700
	src := filepath.Join(base, "src")
	os.MkdirAll(filepath.Join(src, "locked"), 0o755)
	write(t, filepath.Join(src, "ok"), "fine")
	write(t, filepath.Join(src, "locked", "inside"), "hidden")
	h.repo = filepath.Join(base, "repo")
	h.env["COFFER_CACHE_DIR"] = filepath.Join(base, "cache")
	h.create()
	h.backup(src)
	write(t, filepath.Join(src, "ok"), "changed")

	cmd := binaryCmd(t, h, "at", h.repo, "diff", "latest", src)
	if os.Geteuid() == 0 {
		// Hand the repository and cache to nobody; locked stays root's.
		for _, dir := range []string{h.repo, h.env["COFFER_CACHE_DIR"]} {
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 65534, 65534) })
		}
		os.Chmod(filepath.Join(src, "locked"), 0o700)
		os.Chmod(filepath.Dir(testutil.CofferBinary(t)), 0o755)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		os.Chmod(filepath.Join(src, "locked"), 0)
		t.Cleanup(func() { os.Chmod(filepath.Join(src, "locked"), 0o755) })
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitPartial {
		t.Fatalf("diff with an unreadable directory: %v, want exit %d; stderr %s", err, ExitPartial, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning: "+filepath.Join(src, "locked")) || !strings.Contains(stderr.String(), "permission denied") ||
		!strings.Contains(stderr.String(), "diff is partial") {
		t.Errorf("stderr does not warn about the directory: %s", stderr.String())
	}
	// locked's mode changed (U), ok's content; nothing inside locked is "removed".
	want := "U " + src + "/locked\nM " + src + "/ok (4 B -> 7 B)\n0 added, 0 removed, 1 modified, 1 metadata only\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
}

// A repository and cache inside the source are left out on disk, as
// backup leaves them out, so they are not "added".
func TestDiffLiveSkipsRepositoryAndCache(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "data"), "x")
	h.repo = filepath.Join(src, "repo")
	h.env["COFFER_CACHE_DIR"] = filepath.Join(src, "cache")
	h.create()
	h.backup(src)
	h.backup(src) // the cache exists now
	if out := h.mustAt("diff", "latest", src); out != "" {
		t.Errorf("diff against the source holding the repository:\n%s", out)
	}
}
