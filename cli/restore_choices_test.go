//go:build linux

package cli

import (
	"os"
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
