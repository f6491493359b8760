package snapshot

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/cofferhq/coffer/repo"
)

// FindQuery says which nodes FindNodes lists: those whose path matches
// any of the patterns and whose modification time is within the bounds.
//
// A glob pattern (path.Match syntax) without "/" matches the base name. A
// glob with "/" matches the whole path, element by element, where an
// element "**" stands for any number of directories (none included); one
// that does not begin with "/" matches at any depth, as if it began with
// "**/". With Regex the patterns are Go regular expressions searched for
// in the whole path (unanchored: use ^ and $).
type FindQuery struct {
	Patterns []string
	Regex    bool
	// Newer, if not zero, keeps nodes modified at or after it; Older, if
	// not zero, those modified before it.
	Newer, Older time.Time
}

// Matcher is a compiled FindQuery.
type Matcher struct {
	names   []string   // globs on the base name
	paths   [][]string // globs on the path, split into elements
	regexps []*regexp.Regexp
	newer   time.Time
	older   time.Time
}

// NewMatcher checks and compiles q.
func NewMatcher(q FindQuery) (*Matcher, error) {
	m := &Matcher{newer: q.Newer, older: q.Older}
	for _, p := range q.Patterns {
		if q.Regex {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("bad regular expression %q: %w", p, err)
			}
			m.regexps = append(m.regexps, re)
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w (see path.Match: *, ?, [...], \\ escapes)", p, err)
		}
		if !strings.Contains(p, "/") {
			m.names = append(m.names, p)
			continue
		}
		if !strings.HasPrefix(p, "/") {
			p = "**/" + p
		}
		m.paths = append(m.paths, strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/"))
	}
	return m, nil
}

// Match reports whether the node n at absolute snapshot path p matches.
func (m *Matcher) Match(p string, n *Node) bool {
	if !m.newer.IsZero() && n.ModTime.Before(m.newer) {
		return false
	}
	if !m.older.IsZero() && !n.ModTime.Before(m.older) {
		return false
	}
	for _, re := range m.regexps {
		if re.MatchString(p) {
			return true
		}
	}
	for _, g := range m.names {
		if ok, _ := path.Match(g, path.Base(p)); ok {
			return true
		}
	}
	if len(m.paths) > 0 {
		elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
		for _, g := range m.paths {
			if matchElems(g, elems) {
				return true
			}
		}
	}
	return false
}

// matchElems matches path elements against glob elements, "**" taking
// any number of them.
func matchElems(glob, elems []string) bool {
	for len(glob) > 0 {
		if glob[0] == "**" {
			for i := len(elems); i >= 0; i-- {
				if matchElems(glob[1:], elems[i:]) {
					return true
				}
			}
			return false
		}
		if len(elems) == 0 {
			return false
		}
		if ok, _ := path.Match(glob[0], elems[0]); !ok {
			return false
		}
		glob, elems = glob[1:], elems[1:]
	}
	return len(elems) == 0
}

// Finder lists the matching nodes of snapshots. It loads trees only,
// never file contents, and remembers the directories below which nothing
// matched, so that a directory unchanged since an earlier snapshot is
// not searched again. Matches are listed for every snapshot that holds
// them.
type Finder struct {
	r BlobLoader
	m *Matcher
	// empty holds directories with no match below them. A match can
	// depend on the path, so the key is the path and the tree.
	empty map[findKey]bool
}

type findKey struct {
	dir  string
	tree repo.ID
}

// NewFinder returns a Finder reading trees from r.
func NewFinder(r BlobLoader, m *Matcher) *Finder {
	return &Finder{r: r, m: m, empty: map[findKey]bool{}}
}

// Find calls fn for every matching node of sn, depth first in name order,
// with its absolute path.
func (f *Finder) Find(ctx context.Context, sn *Snapshot, fn func(p string, n *Node) error) error {
	_, err := f.find(ctx, "/", sn.Tree, fn)
	return err
}

// find searches the directory dir with tree id and reports whether
// anything below it matched.
func (f *Finder) find(ctx context.Context, dir string, id repo.ID, fn func(p string, n *Node) error) (bool, error) {
	key := findKey{dir, id}
	if f.empty[key] {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	nodes, err := LoadTree(ctx, f.r, id)
	if err != nil {
		return false, err
	}
	found := false
	for _, n := range nodes {
		p := path.Join(dir, n.Name)
		if f.m.Match(p, n) {
			found = true
			if err := fn(p, n); err != nil {
				return found, err
			}
		}
		if n.Type == TypeDir {
			below, err := f.find(ctx, p, n.Subtree, fn)
			if err != nil {
				return found, err
			}
			found = found || below
		}
	}
	if !found {
		f.empty[key] = true
	}
	return found, nil
}
