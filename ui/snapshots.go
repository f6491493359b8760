package ui

import (
	"net/http"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/snapshot"
)

type snapshotsData struct {
	Tag, Host, Path, Q string
	Tags, Hosts        []string
	Snapshots          []*snapshot.Snapshot
	Total              int
}

func sortSnapshots(sns []*snapshot.Snapshot) {
	slices.SortFunc(sns, func(a, b *snapshot.Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
}

// handleSnapshots lists snapshots, newest first, filtered by the query
// parameters tag, host, path (a backed-up path, or a prefix of one) and q
// (free text over id, host, user, paths and tags).
func (s *Server) handleSnapshots(w http.ResponseWriter, r *http.Request) {
	sns, err := s.cache.list(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	d := &snapshotsData{Tag: q.Get("tag"), Host: q.Get("host"), Path: q.Get("path"), Q: strings.TrimSpace(q.Get("q")), Total: len(sns)}
	tags, hosts := map[string]bool{}, map[string]bool{}
	for i := len(sns) - 1; i >= 0; i-- {
		sn := sns[i]
		for _, t := range sn.Tags {
			tags[t] = true
		}
		hosts[sn.Host] = true
		if matchSnapshot(sn, d) {
			d.Snapshots = append(d.Snapshots, sn)
		}
	}
	d.Tags, d.Hosts = sortedSet(tags), sortedSet(hosts)
	s.render(w, r, "snapshots.html", &page{Title: "Snapshots", Nav: "snapshots"}, d)
}

func matchSnapshot(sn *snapshot.Snapshot, d *snapshotsData) bool {
	if d.Tag != "" && !slices.Contains(sn.Tags, d.Tag) {
		return false
	}
	if d.Host != "" && sn.Host != d.Host {
		return false
	}
	if d.Path != "" && !slices.ContainsFunc(sn.Paths, func(p string) bool {
		return p == d.Path || strings.HasPrefix(p, strings.TrimSuffix(d.Path, "/")+"/")
	}) {
		return false
	}
	if d.Q != "" {
		hay := strings.ToLower(strings.Join(append([]string{sn.ID.String(), sn.Host, sn.User,
			sn.Time.UTC().Format("2006-01-02 15:04:05")}, append(sn.Paths, sn.Tags...)...), "\n"))
		for _, word := range strings.Fields(strings.ToLower(d.Q)) {
			if !strings.Contains(hay, word) {
				return false
			}
		}
	}
	return true
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
