//go:build linux

package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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

// restore -exclude and -include, repeated, choose what is restored.
func TestRestoreIncludeExclude(t *testing.T) {
	h := newHarness(t)
	h.create()
	src := t.TempDir()
	for _, f := range []string{"keep.txt", "a/skip.log", "a/keep.txt", "b/c/keep.txt", "b/c/other.bin", "d/x.txt"} {
		p := filepath.Join(src, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := h.backup(src)
	list := func(dir string) []string {
		var got []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				got = append(got, rel)
			}
			return err
		})
		return got
	}
	dst := t.TempDir()
	h.mustAt("restore", id, "-to", dst, "-exclude", "*.log", "-exclude", "d/")
	if got, want := list(dst), []string{"a/keep.txt", "b/c/keep.txt", "b/c/other.bin", "keep.txt"}; !slices.Equal(got, want) {
		t.Errorf("restore -exclude restored %q, want %q", got, want)
	}
	dst = t.TempDir()
	h.mustAt("restore", id, "-to", dst, "-include", "keep.txt", "-include", "*.bin", "-exclude", "a")
	if got, want := list(dst), []string{"b/c/keep.txt", "b/c/other.bin", "keep.txt"}; !slices.Equal(got, want) {
		t.Errorf("restore -include restored %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dst, "d")); err == nil {
		t.Error("restore -include made a directory with nothing included in it")
	}
}
