//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// restore -to - is refused, pointing at archive and cat, which write to
// stdout.
func TestRestoreToStdoutRefused(t *testing.T) {
	h := newHarness(t)
	h.create()
	id := h.backup(sourceTree(t))
	wantOneLineError(t, h.at("restore", id, "-to", "-"), ExitUsage, "coffer archive", "coffer cat")
	if _, err := os.Lstat("-"); err == nil {
		t.Error("restore -to - created a directory named -")
	}
}

// cat -l prints a symlink's target; cat without it refuses a symlink and
// says to use -l, and cat -l refuses what is not a symlink.
func TestCatSymlink(t *testing.T) {
	h := newHarness(t)
	h.create()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../some/where", filepath.Join(src, "ln")); err != nil {
		t.Fatal(err)
	}
	id := h.backup(src)
	if got := h.mustAt("cat", "-l", id+":ln"); got != "../some/where\n" {
		t.Errorf("cat -l of a symlink printed %q", got)
	}
	if got := h.mustAt("cat", id+":ln", "-l"); got != "../some/where\n" {
		t.Errorf("cat snap:path -l printed %q", got)
	}
	wantOneLineError(t, h.at("cat", id+":ln"), ExitUsage, "is a symlink", "cat -l")
	wantOneLineError(t, h.at("cat", "-l", id+":f"), ExitUsage, "not a symlink")
	if got := h.mustAt("cat", id+":f"); got != "data" {
		t.Errorf("cat of a file printed %q", got)
	}
}
