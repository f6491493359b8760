package ui

import (
	"context"
	"net/http"
	"path"
	"slices"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

const maxSearchPaths = 1000 // distinct paths listed

type searchData struct {
	Name, Path string
	Error      string
	Results    []searchResult
	More       bool
	Searched   int
}

// searchResult is one path and the snapshots that hold it.
type searchResult struct {
	Path     string
	Versions []version
}

type version struct {
	Snap *snapshot.Snapshot
	Node *snapshot.Node
	URL  string
}

type match struct {
	rel  string
	node *snapshot.Node
}

// handleSearch finds nodes whose base name matches the glob ?name= (as
// path.Match) in every snapshot, newest first, optionally only at ?path=.
// Trees shared by several snapshots are searched once.
func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := &searchData{Name: q.Get("name"), Path: q.Get("path")}
	if d.Name != "" {
		if _, err := path.Match(d.Name, ""); err != nil {
			d.Error = "bad pattern: " + err.Error()
		} else if err := s.search(r.Context(), d); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.render(w, r, "search.html", &page{Title: "Search", Nav: "search"}, d)
}

func (s *Server) search(ctx context.Context, d *searchData) error {
	sns, err := s.cache.list(ctx)
	if err != nil {
		return err
	}
	memo := map[repo.ID][]match{}
	var find func(tree repo.ID) ([]match, error)
	find = func(tree repo.ID) ([]match, error) {
		if m, ok := memo[tree]; ok {
			return m, nil
		}
		nodes, err := s.cache.tree(ctx, tree)
		if err != nil {
			return nil, err
		}
		var out []match
		for _, n := range nodes {
			if ok, _ := path.Match(d.Name, n.Name); ok {
				out = append(out, match{rel: n.Name, node: n})
			}
			if n.Type == snapshot.TypeDir {
				sub, err := find(n.Subtree)
				if err != nil {
					return nil, err
				}
				for _, m := range sub {
					out = append(out, match{rel: n.Name + "/" + m.rel, node: m.node})
				}
			}
		}
		memo[tree] = out
		return out, ctx.Err()
	}
	byPath := map[string]*searchResult{}
	var order []string
	for i := len(sns) - 1; i >= 0; i-- {
		sn := sns[i]
		d.Searched++
		ms, err := find(sn.Tree)
		if err != nil {
			return err
		}
		for _, m := range ms {
			p := "/" + m.rel
			if d.Path != "" && p != d.Path {
				continue
			}
			res := byPath[p]
			if res == nil {
				if len(byPath) >= maxSearchPaths {
					d.More = true
					continue
				}
				res = &searchResult{Path: p}
				byPath[p] = res
				order = append(order, p)
			}
			res.Versions = append(res.Versions, version{Snap: sn, Node: m.node, URL: nodeURL(sn.ID, p, m.node)})
		}
	}
	slices.Sort(order)
	for _, p := range order {
		d.Results = append(d.Results, *byPath[p])
	}
	return nil
}
