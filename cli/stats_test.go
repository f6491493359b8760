//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// stats of two snapshots, the second adding 3 MiB of random data: its
// counts equal the backup's, its restore size what a restore writes, and
// the data only it keeps is the new file's; the first keeps next to
// nothing of its own. The repository line agrees with info.
func TestStats(t *testing.T) {
	h := newHarness(t)
	h.create()
	src := sourceTree(t)
	first := h.backup(src)
	if err := os.WriteFile(filepath.Join(src, "new.bin"), testutil.RandomBytes(11, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	second := h.backup(src)

	r := h.run("-json", "at", h.repo, "stats")
	if r.code != 0 {
		t.Fatalf("stats: exit %d: %s", r.code, r.stderr)
	}
	type snapStats struct {
		Type           string
		ID             string
		Files, Dirs    int64
		RestoreSize    int64 `json:"restore_size"`
		UniqueRawBytes int64 `json:"unique_raw_bytes"`
		Snapshots      int64
		LogicalBytes   int64 `json:"logical_bytes"`
	}
	byID := map[string]snapStats{}
	var repoLine snapStats
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var s snapStats
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch s.Type {
		case "snapshot_stats":
			byID[s.ID[:8]] = s
		case "repository_stats":
			repoLine = s
		}
	}
	s1, s2 := byID[first], byID[second]
	if s2.UniqueRawBytes < 3<<20 || s2.UniqueRawBytes > 3<<20+64<<10 {
		t.Errorf("the second snapshot keeps %d bytes of its own, want the new 3 MiB file's", s2.UniqueRawBytes)
	}
	if s1.UniqueRawBytes > 64<<10 {
		t.Errorf("the first snapshot keeps %d bytes of its own, want only trees", s1.UniqueRawBytes)
	}
	var ls struct {
		Summary struct{ Files, Dirs, Size int64 }
	}
	for _, line := range strings.Split(strings.TrimSpace(h.mustRun("-json", "at", h.repo, "ls", "-host", mustHostname(t))), "\n") {
		if strings.Contains(line, second) {
			json.Unmarshal([]byte(line), &ls)
		}
	}
	if s2.Files != ls.Summary.Files || s2.Dirs != ls.Summary.Dirs || s2.RestoreSize != ls.Summary.Size {
		t.Errorf("stats of %s: %d files, %d dirs, %d bytes; its backup counted %d, %d, %d",
			second, s2.Files, s2.Dirs, s2.RestoreSize, ls.Summary.Files, ls.Summary.Dirs, ls.Summary.Size)
	}
	if repoLine.Snapshots != 2 || repoLine.LogicalBytes != s1.RestoreSize+s2.RestoreSize {
		t.Errorf("repository stats: %+v", repoLine)
	}

	text := h.mustAt("stats", second)
	if !strings.Contains(text, second) || strings.Contains(text, first) || strings.Contains(text, "repository:") {
		t.Errorf("stats of one snapshot:\n%s", text)
	}
	if text := h.mustAt("stats"); !strings.Contains(text, "only its own") || !strings.Contains(text, "repository: 2 snapshots") {
		t.Errorf("stats:\n%s", text)
	}
	wantOneLineError(t, h.at("stats", "ffffffff"), ExitNoSnapshot)
}

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
