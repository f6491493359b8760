//go:build linux

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A file whose stat size is 0 but which has content, such as
// /proc/version, is stored with its content (it was stored empty).
func TestBackupProcFile(t *testing.T) {
	const proc = "/proc/version"
	want, err := os.ReadFile(proc)
	if fi, serr := os.Stat(proc); err != nil || serr != nil || fi.Size() != 0 || len(want) == 0 {
		t.Skipf("%s: need a file of stat size 0 with content", proc)
	}
	h := newHarness(t)
	h.create()
	h.backup(proc)
	if out := h.mustAt("cat", "latest:"+proc); out != string(want) {
		t.Errorf("cat latest:%s = %q, want %q", proc, out, want)
	}
	dst := t.TempDir()
	h.mustAt("restore", "latest:"+proc, "-to", dst)
	if b, err := os.ReadFile(filepath.Join(dst, "version")); err != nil || !bytes.Equal(b, want) {
		t.Errorf("restored %s: %q, %v; want %q", proc, b, err, want)
	}
}
