//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `backup link link/f`, where link is a symlink to a directory, backs up
// link/f under the path given (it was silently dropped), and ls, cat and
// restore show it with its content.
func TestBackupSymlinkAndPathThroughIt(t *testing.T) {
	h := newHarness(t)
	h.create()
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "real", "f"), []byte("content of f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(src)
	r := h.at("backup", "link", "link/f")
	if r.code != 0 {
		t.Fatalf("backup link link/f: exit %d: %s", r.code, r.stderr)
	}
	// The symlink cannot be both a symlink and the directory holding
	// link/f: the user is told which it became.
	if !strings.Contains(r.stderr, "warning: "+filepath.Join(src, "link")+": is a symlink") {
		t.Errorf("backup did not say link is stored as a directory: %q", r.stderr)
	}
	if out := h.mustAt("ls", "-r", "latest"); !strings.Contains(out, filepath.Join(src, "link", "f")+"\n") {
		t.Errorf("ls -r latest does not show link/f:\n%s", out)
	}
	if out := h.mustAt("cat", "latest:link/f"); out != "content of f\n" {
		t.Errorf("cat latest:link/f = %q", out)
	}
	dst := t.TempDir()
	h.mustAt("restore", "latest", "-to", dst)
	if b, err := os.ReadFile(filepath.Join(dst, "link", "f")); err != nil || string(b) != "content of f\n" {
		t.Errorf("restored link/f: %q, %v", b, err)
	}
}
