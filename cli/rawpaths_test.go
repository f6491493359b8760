//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// A backed-up directory whose own path is not UTF-8 can be listed and
// restored (ls and restore failed with exit 14), names byte for byte.
func TestNonUTF8DirectoryLsRestore(t *testing.T) {
	h := newHarness(t)
	h.create()
	src := filepath.Join(t.TempDir(), "\xff\xfe-dir")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "n\xe9"), []byte("latin-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.backup(src)
	if out := h.mustAt("ls", "latest"); out != "n\xe9\n" {
		t.Errorf("ls latest = %q, want %q", out, "n\xe9\n")
	}
	if out := h.mustAt("cat", "latest:n\xe9"); out != "latin-1\n" {
		t.Errorf("cat = %q", out)
	}
	dst := t.TempDir()
	h.mustAt("restore", "latest", "-to", dst)
	if b, err := os.ReadFile(filepath.Join(dst, "n\xe9")); err != nil || string(b) != "latin-1\n" {
		t.Errorf("restored n\\xe9: %q, %v", b, err)
	}
	// The whole snapshot, from "/": the directory keeps its own name.
	all := t.TempDir()
	h.mustAt("restore", "latest:/", "-to", all)
	if b, err := os.ReadFile(filepath.Join(all, src, "n\xe9")); err != nil || string(b) != "latin-1\n" {
		t.Errorf("restored %q: %q, %v", filepath.Join(src, "n\xe9"), b, err)
	}
}
