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

const (
	// maxTreeMatches is the most matches below one tree that a search
	// remembers, so that a tree shared by several snapshots is searched
	// once; a tree with more is searched again for each snapshot, which
	// costs time where remembering every match of "*" in a directory of
	// 200,000 entries would cost each search request tens of megabytes.
	maxTreeMatches = 1000
	// maxMemoMatches bounds the matches a search remembers in all.
	maxMemoMatches = 20000
)

// searcher finds the nodes whose name matches a pattern.
type searcher struct {
	s       *Server
	pattern string
	memo    map[repo.ID][]match // every match below a tree, for trees with few
	held    int                 // matches in memo
}

// find calls emit for every match below tree, in tree order, with paths
// relative to it.
func (sr *searcher) find(ctx context.Context, tree repo.ID, emit func(match)) error {
	if ms, ok := sr.memo[tree]; ok {
		for _, m := range ms {
			emit(m)
		}
		return nil
	}
	nodes, err := sr.s.cache.tree(ctx, tree)
	if err != nil {
		return err
	}
	var kept []match
	remember := true
	add := func(m match) {
		emit(m)
		if !remember {
			return
		}
		if len(kept) == maxTreeMatches {
			remember, kept = false, nil
			return
		}
		kept = append(kept, m)
	}
	for _, n := range nodes {
		if ok, _ := path.Match(sr.pattern, n.Name); ok {
			add(match{rel: n.Name, node: n})
		}
		if n.Type == snapshot.TypeDir {
			err := sr.find(ctx, n.Subtree, func(m match) { add(match{rel: n.Name + "/" + m.rel, node: m.node}) })
			if err != nil {
				return err
			}
		}
	}
	if remember && sr.held+len(kept) <= maxMemoMatches {
		sr.memo[tree] = kept
		sr.held += len(kept)
	}
	return ctx.Err()
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
	sr := &searcher{s: s, pattern: d.Name, memo: map[repo.ID][]match{}}
	byPath := map[string]*searchResult{}
	var order []string
	for i := len(sns) - 1; i >= 0; i-- {
		sn := sns[i]
		d.Searched++
		err := sr.find(ctx, sn.Tree, func(m match) {
			p := "/" + m.rel
			if d.Path != "" && p != d.Path {
				return
			}
			res := byPath[p]
			if res == nil {
				if len(byPath) >= maxSearchPaths {
					d.More = true
					return
				}
				res = &searchResult{Path: p}
				byPath[p] = res
				order = append(order, p)
			}
			res.Versions = append(res.Versions, version{Snap: sn, Node: m.node, URL: nodeURL(sn.ID, p, m.node)})
		})
		if err != nil {
			return err
		}
	}
	slices.Sort(order)
	for _, p := range order {
		d.Results = append(d.Results, *byPath[p])
	}
	return nil
}
