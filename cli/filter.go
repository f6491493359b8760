package cli

import (
	"flag"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/snapshot"
)

// snapshotFilter is the -host, -tag and -path flags that choose the
// snapshots a command considers (forget, find).
type snapshotFilter struct {
	hosts, tags, paths stringList
}

func (f *snapshotFilter) register(fs *flag.FlagSet) {
	fs.Var(&f.hosts, "host", "only consider snapshots of this `host` (repeatable)")
	fs.Var(&f.tags, "tag", "only consider snapshots that have all of these comma-separated `tags` (repeatable: any list)")
	fs.Var(&f.paths, "path", "only consider snapshots that include this `path` (repeatable: all)")
}

// String describes the filter as given on the command line.
func (f *snapshotFilter) String() string {
	var parts []string
	for _, h := range f.hosts {
		parts = append(parts, "-host "+h)
	}
	for _, t := range f.tags {
		parts = append(parts, "-tag "+t)
	}
	for _, p := range f.paths {
		parts = append(parts, "-path "+p)
	}
	return strings.Join(parts, " ")
}

// set reports whether any of the flags was given.
func (f *snapshotFilter) set() bool {
	return len(f.hosts) > 0 || len(f.tags) > 0 || len(f.paths) > 0
}

// matches applies the -host, -tag and -path filters.
func (f *snapshotFilter) matches(sn *snapshot.Snapshot) bool {
	if len(f.hosts) > 0 && !slices.Contains(f.hosts, sn.Host) {
		return false
	}
	if len(f.tags) > 0 && !slices.ContainsFunc(f.tags, func(list string) bool {
		for _, t := range splitTags(list) {
			if !slices.Contains(sn.Tags, t) {
				return false
			}
		}
		return true
	}) {
		return false
	}
	for _, p := range f.paths {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if !slices.Contains(sn.Paths, filepath.Clean(p)) {
			return false
		}
	}
	return true
}
