//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFindAgainstFind runs find over two snapshots and checks that it
// lists what find(1) lists over the restored snapshots.
func TestFindAgainstFind(t *testing.T) {
	if _, err := exec.LookPath("find"); err != nil {
		t.Fatal("find(1) is not installed")
	}
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	sn1 := h.backup(src)
	// Changes: a new directory and files, a removed file, a changed one.
	writeTestFile(t, filepath.Join(src, "a/new/added.txt"), []byte("added"))
	writeTestFile(t, filepath.Join(src, "a/b/c/d/deep.txt"), []byte("changed"))
	writeTestFile(t, filepath.Join(src, "files/sub/n7.txt"), []byte("seven"))
	if err := os.Remove(filepath.Join(src, "text.txt")); err != nil {
		t.Fatal(err)
	}
	sn2 := h.backup(src)

	restored := map[string]string{}
	for _, sn := range []string{sn1, sn2} {
		dir := t.TempDir()
		h.mustAt("restore", sn, "-to", dir)
		restored[sn] = dir // the snapshot's base, src, restores as dir
	}
	fi, err := os.Lstat(filepath.Join(src, "perms/p0600"))
	if err != nil {
		t.Fatal(err)
	}
	// Whole seconds: generated times have nanoseconds, so none equals it
	// (find's -newermt is strictly after, coffer's -newer at or after).
	newer := fi.ModTime().UTC().Truncate(time.Second).Format(time.RFC3339)

	for _, c := range []struct {
		name     string
		coffer   []string
		findArgs []string
	}{
		{"glob on name", []string{"*.txt"}, []string{"-name", "*.txt"}},
		{"glob with path", []string{"a/b/*"}, []string{"-path", "*/a/b/*", "!", "-path", "*/a/b/*/*"}},
		{"double star", []string{"a/**/*.txt"}, []string{"-path", "*/a/*", "-name", "*.txt"}},
		{"regex", []string{"-regex", `/[a-c]/[^/]*[0-9]$`}, []string{"-regextype", "posix-extended", "-regex", `.*/[a-c]/[^/]*[0-9]`}},
		{"newer", []string{"-newer", newer, "*"}, []string{"-newermt", newer}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var want []string
			for _, sn := range []string{sn1, sn2} {
				cmd := exec.Command("find", append([]string{restored[sn]}, c.findArgs...)...)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("find %s: %v: %s", strings.Join(c.findArgs, " "), err, stderr.String())
				}
				for _, p := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
					if p != "" {
						want = append(want, sn+" "+src+strings.TrimPrefix(p, restored[sn]))
					}
				}
			}
			r := h.run(append([]string{"-json", "at", h.repo, "find"}, c.coffer...)...)
			if r.code != 0 {
				t.Fatalf("find: exit %d: %s", r.code, r.stderr)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
				var m struct {
					ShortID string `json:"short_id"`
					Path    string `json:"path"`
				}
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				// The snapshots hold src's parents too; the restores do not.
				if m.Path == src || strings.HasPrefix(m.Path, src+"/") {
					got = append(got, m.ShortID+" "+m.Path)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if len(want) == 0 {
				t.Fatal("find(1) found nothing: the case tests nothing")
			}
			if !slices.Equal(got, want) {
				t.Errorf("coffer find %s:\n%s\nfind(1) %s:\n%s", strings.Join(c.coffer, " "), strings.Join(got, "\n"),
					strings.Join(c.findArgs, " "), strings.Join(want, "\n"))
			}
		})
	}
}

func TestFindOutput(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	sn := h.backup(src)
	out := h.mustAt("find", "deep.txt", "d")
	want := []string{sn + "  ", src + "/a/b/c/d/\n", src + "/a/b/c/d/deep.txt\n"}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("find output %q lacks %q", out, w)
		}
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("find printed %d lines, want 2: %q", n, out)
	}
	r := h.at("find", "no-such-name")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no matches") {
		t.Errorf("find without a match: exit %d, stdout %q, stderr %q; want 0, nothing, \"no matches\"", r.code, r.stdout, r.stderr)
	}
	if r := h.at("find", "-tag", "nope", "*"); r.code != 0 || r.stdout != "" {
		t.Errorf("find -tag nope: exit %d, stdout %q; want 0 and nothing", r.code, r.stdout)
	}
	wantOneLineError(t, h.at("find"), 2, "needs a pattern")
	wantOneLineError(t, h.at("find", "[x"), 2, "bad pattern")
	wantOneLineError(t, h.at("find", "-newer", "yesterday", "*"), 2, "not a time")
}
