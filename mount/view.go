package mount

import (
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/snapshot"
)

// timeLayout names snapshot directories as restic does, by the snapshot's
// time (in UTC here, so that a name does not depend on the machine that
// mounts), followed by the short id that makes it unique.
const timeLayout = "2006-01-02T15:04:05Z"

// snapEntry is a snapshot and the name of its directory.
type snapEntry struct {
	name string
	sn   *snapshot.Snapshot
}

// group is one directory of snapshot directories: snapshots/, or one
// host's or tag's directory. Entries are oldest first.
type group struct {
	entries []snapEntry
}

// latest returns the name of the newest snapshot, which the group's
// latest symlink points to, or "" for an empty group.
func (g *group) latest() string {
	if len(g.entries) == 0 {
		return ""
	}
	return g.entries[len(g.entries)-1].name
}

// layout is what the top of the file system shows.
type layout struct {
	all   group
	hosts map[string]*group
	tags  map[string]*group
}

// newLayout names and groups snapshots; their order is by time, then id.
func newLayout(sns []*snapshot.Snapshot) *layout {
	sns = slices.Clone(sns)
	slices.SortStableFunc(sns, func(a, b *snapshot.Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	l := &layout{hosts: map[string]*group{}, tags: map[string]*group{}}
	used := map[string]bool{}
	for _, sn := range sns {
		name := sn.Time.UTC().Format(timeLayout) + "-" + sn.ID.Short()
		if used[name] { // two snapshots of one second with one short id
			name = sn.Time.UTC().Format(timeLayout) + "-" + sn.ID.String()
		}
		used[name] = true
		e := snapEntry{name: name, sn: sn}
		l.all.entries = append(l.all.entries, e)
		add(l.hosts, sn.Host, e)
		for _, tag := range sn.Tags {
			add(l.tags, tag, e)
		}
	}
	return l
}

func add(groups map[string]*group, key string, e snapEntry) {
	key = safeName(key)
	g := groups[key]
	if g == nil {
		g = &group{}
		groups[key] = g
	}
	g.entries = append(g.entries, e)
}

// safeName makes a host or tag a usable file name: a slash would make
// it a path, and "", "." and ".." cannot be names.
func safeName(s string) string {
	s = strings.ReplaceAll(s, "/", "_")
	switch s {
	case "", ".", "..":
		return "_" + s
	}
	return s
}

// newest returns the time of the newest snapshot, the time the top
// directories show, or the zero time when there is none.
func (l *layout) newest() time.Time {
	if n := len(l.all.entries); n > 0 {
		return l.all.entries[n-1].sn.Time
	}
	return time.Time{}
}
