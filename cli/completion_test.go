//go:build linux

package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// needTool returns the path of a program a test runs, or skips loudly
// (fails in CI, which installs it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testutil.SkipLoudly(t, name+" is not installed")
	}
	return p
}

// The completion scripts load in their shells and complete commands,
// their flags and global flags, after global flags and `at STORE`.
func TestCompletion(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if err := os.WriteFile(filepath.Join(dir, shell), []byte(h.mustRun("completion", shell)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(shell string, script string) string {
		t.Helper()
		cmd := exec.Command(needTool(t, shell), "-c", script)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("%s -c %q: %v: %s", shell, script, err, stderr.String())
		}
		return string(out)
	}

	bash := run("bash", "source "+filepath.Join(dir, "bash")+`
complete -p coffer
c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _coffer; echo "${COMPREPLY[*]}"; }
c coffer at /r bac
c coffer -json at /r backup -exc
c coffer at /r restore -ov
c coffer -cache-dir /c at /r sync -ho
c coffer at /r ls -js
c coffer he`)
	want := []string{"complete -o default -F _coffer coffer", "backup", "-exclude -exclude-file", "-overwrite", "-host", "-json", "help"}
	if got := strings.Split(strings.TrimSuffix(bash, "\n"), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("bash completion:\n%s\nwant:\n%s", bash, strings.Join(want, "\n"))
	}

	if out := run("zsh", "source "+filepath.Join(dir, "zsh")+"; print -r -- $_comps[coffer]"); !strings.Contains(out, "_coffer") {
		t.Errorf("zsh: coffer completes with %q, not _coffer", out)
	}

	fish := run("fish", "source "+filepath.Join(dir, "fish")+`
complete -C "coffer at /r bac"
complete -C "coffer at /r backup -exc"
complete -C "coffer at /r sync -ho"`)
	for _, w := range []string{"backup\t", "-exclude\t", "-exclude-file\t", "-host\t"} {
		if !strings.Contains(fish, w) {
			t.Errorf("fish completion lacks %q:\n%s", w, fish)
		}
	}
}

// coffer man writes a page per command and one for coffer, each of which
// man renders without a warning, naming every flag of its command.
func TestManPages(t *testing.T) {
	man := needTool(t, "man")
	h := newHarness(t)
	dir := t.TempDir()
	h.mustRun("man", dir)
	for _, c := range append([]*command{nil}, commands...) {
		name, flags := "coffer.1", globalFlagList()
		if c != nil {
			name, flags = "coffer-"+c.name+".1", commandFlags(c)
		}
		cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", filepath.Join(dir, name))
		cmd.Env = append(os.Environ(), "MANWIDTH=80")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("man -l %s: %v: %s", name, err, stderr.String())
			continue
		}
		text := string(out)
		for _, f := range flags {
			if !strings.Contains(text, "-"+f.Name) {
				t.Errorf("%s does not describe -%s", name, f.Name)
			}
		}
		if c != nil && !strings.Contains(text, "coffer-"+c.name) {
			t.Errorf("%s does not name its command", name)
		}
	}
	if n, _ := filepath.Glob(filepath.Join(dir, "*.1")); len(n) != len(commands)+1 {
		t.Errorf("%d pages for %d commands", len(n), len(commands))
	}
}
