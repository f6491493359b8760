package mount

import (
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

// Snapshot directories are named <UTC time>-<short id>, oldest first;
// hosts and tags group them (unsafe names made safe), and each group's
// latest is its newest.
func TestLayout(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	sn := func(b byte, when, host string, tags ...string) *snapshot.Snapshot {
		var id repo.ID
		id[0], id[5] = b, b
		return &snapshot.Snapshot{ID: id, Time: at(when), Host: host, Tags: tags}
	}
	l := newLayout([]*snapshot.Snapshot{
		sn(0xbb, "2026-12-03T10:15:02+01:00", "alpha", "daily", "a/b"),
		sn(0xaa, "2026-12-01T08:00:00Z", "beta", "daily"),
		sn(0xcc, "2026-12-02T08:00:00Z", "", ".."),
	})
	var names []string
	for _, e := range l.all.entries {
		names = append(names, e.name)
	}
	want := []string{"2026-12-01T08:00:00Z-aa000000", "2026-12-02T08:00:00Z-cc000000", "2026-12-03T09:15:02Z-bb000000"}
	if !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if got := l.all.latest(); got != want[2] {
		t.Errorf("latest %q, want %q", got, want[2])
	}
	for key, latest := range map[string]string{"alpha": want[2], "beta": want[0], "_": want[1]} {
		if g := l.hosts[key]; g == nil || g.latest() != latest {
			t.Errorf("hosts/%s: %v, want latest %s", key, g, latest)
		}
	}
	for key, n := range map[string]int{"daily": 2, "a_b": 1, "_..": 1} {
		if g := l.tags[key]; g == nil || len(g.entries) != n {
			t.Errorf("tags/%s: %v, want %d snapshots", key, g, n)
		}
	}
	if !l.newest().Equal(at("2026-12-03T09:15:02Z")) {
		t.Errorf("newest %v", l.newest())
	}
}
