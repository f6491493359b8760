package ui

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/sergi/go-diff/diffmatchpatch"

	"github.com/cofferhq/coffer/snapshot"
)

const (
	maxDiffChanges = 5000    // changes listed on the diff page
	diffFileMax    = 1 << 20 // bytes of each side compared by the file diff
	diffContext    = 3       // unchanged lines kept around each change
)

type diffData struct {
	Snapshots []*snapshot.Snapshot
	A, B      *snapshot.Snapshot
	AID, BID  string
	Changes   []change
	Counts    map[string]int
	More      bool
}

type change struct {
	snapshot.Change
	Class   string
	URL     string // the file in B (or in A when removed)
	DiffURL string // the text diff, for modified files
}

// handleDiff compares two snapshots, ?a= (older) and ?b= (newer).
// Without them it offers the two latest.
func (s *Server) handleDiff(w http.ResponseWriter, r *http.Request) {
	sns, err := s.cache.list(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	d := &diffData{AID: q.Get("a"), BID: q.Get("b"), Counts: map[string]int{}}
	for i := len(sns) - 1; i >= 0; i-- {
		d.Snapshots = append(d.Snapshots, sns[i])
	}
	if d.AID == "" && d.BID == "" && len(sns) >= 2 {
		d.AID, d.BID = sns[len(sns)-2].ID.String(), sns[len(sns)-1].ID.String()
	}
	if d.AID != "" && d.BID != "" {
		if d.A, err = s.cache.snapshot(r.Context(), d.AID); err == nil {
			d.B, err = s.cache.snapshot(r.Context(), d.BID)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		d.AID, d.BID = d.A.ID.String(), d.B.ID.String()
		done, err := s.startWalk(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		err = snapshot.Diff(r.Context(), s.cache, d.A, d.B, func(c snapshot.Change) error {
			d.Counts[string(c.Kind)]++
			if len(d.Changes) >= maxDiffChanges {
				d.More = true
				return nil
			}
			ch := change{Change: c}
			switch c.Kind {
			case snapshot.Added:
				ch.Class, ch.URL = "chg-add", snapURL(d.B.ID, "file", c.Path)
			case snapshot.Removed:
				ch.Class, ch.URL = "chg-del", snapURL(d.A.ID, "file", c.Path)
			default:
				ch.Class, ch.URL = "chg-mod", snapURL(d.B.ID, "file", c.Path)
			}
			if c.Type == snapshot.TypeDir {
				ch.URL = snapURL(d.B.ID, "browse", c.Path)
				if c.Kind == snapshot.Removed {
					ch.URL = snapURL(d.A.ID, "browse", c.Path)
				}
			}
			if c.Kind == snapshot.Modified && c.Type == snapshot.TypeFile {
				ch.DiffURL = "/diff/file" + queryString("a", d.AID, "b", d.BID, "path", c.Path)
			}
			d.Changes = append(d.Changes, ch)
			return nil
		})
		done()
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.render(w, r, "diff.html", &page{Title: "Diff", Nav: "diff"}, d)
}

type fileDiffData struct {
	A, B      *snapshot.Snapshot
	Path      string
	Lines     []diffLine
	Binary    bool
	Same      bool
	Truncated bool
	Back      string
}

type diffLine struct {
	Class    string // add, del, ctx, skip
	Old, New int    // line numbers, 0 when absent
	Sign     string
	Text     string
}

// handleDiffFile shows a line diff of one file, ?path=, between ?a= and ?b=.
func (s *Server) handleDiffFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := snapPath(q.Get("path"))
	if err != nil {
		s.fail(w, r, badRequest("invalid path"))
		return
	}
	d := &fileDiffData{Path: p, Back: "/diff" + queryString("a", q.Get("a"), "b", q.Get("b"))}
	if d.A, err = s.cache.snapshot(r.Context(), q.Get("a")); err == nil {
		d.B, err = s.cache.snapshot(r.Context(), q.Get("b"))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var texts [2][]byte
	for i, sn := range []*snapshot.Snapshot{d.A, d.B} {
		n, err := s.lookup(r.Context(), sn, p)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if n.Type != snapshot.TypeFile {
			s.fail(w, r, badRequest("%s is a %s in %s, not a file", p, n.Type, sn.ID.Short()))
			return
		}
		b, full, err := s.head(r.Context(), n, diffFileMax)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		d.Truncated = d.Truncated || !full
		texts[i] = b
		if k := sniffKind(n.Name, b); k != "text" && k != "empty" {
			d.Binary = true
		}
	}
	d.Same = bytes.Equal(texts[0], texts[1])
	if !d.Binary && !d.Same {
		d.Lines = lineDiff(string(texts[0]), string(texts[1]))
	}
	s.render(w, r, "difffile.html", &page{Title: "Diff of " + p, Nav: "diff"}, d)
}

// lineDiff compares two texts line by line (diff-match-patch on lines)
// and keeps diffContext unchanged lines around each change.
func lineDiff(a, b string) []diffLine {
	dmp := diffmatchpatch.New()
	ca, cb, lines := dmp.DiffLinesToChars(a, b)
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(ca, cb, false), lines)
	var all []diffLine
	oldN, newN := 1, 1
	for _, df := range diffs {
		text := strings.TrimSuffix(df.Text, "\n")
		for _, l := range strings.Split(text, "\n") {
			switch df.Type {
			case diffmatchpatch.DiffEqual:
				all = append(all, diffLine{Class: "ctx", Old: oldN, New: newN, Sign: " ", Text: l})
				oldN++
				newN++
			case diffmatchpatch.DiffDelete:
				all = append(all, diffLine{Class: "del", Old: oldN, Sign: "-", Text: l})
				oldN++
			case diffmatchpatch.DiffInsert:
				all = append(all, diffLine{Class: "add", New: newN, Sign: "+", Text: l})
				newN++
			}
		}
	}
	keep := make([]bool, len(all))
	for i, l := range all {
		if l.Class != "ctx" {
			for j := max(0, i-diffContext); j <= min(len(all)-1, i+diffContext); j++ {
				keep[j] = true
			}
		}
	}
	var out []diffLine
	for i := 0; i < len(all); i++ {
		if keep[i] || (i+1 < len(all) && keep[i+1] && (i == 0 || keep[i-1])) {
			out = append(out, all[i]) // a lone unchanged line is shown, not folded
			continue
		}
		j := i
		for j < len(all) && !keep[j] {
			j++
		}
		out = append(out, diffLine{Class: "skip", Text: "⋯ " + itoa(j-i) + " unchanged lines"})
		i = j - 1
	}
	return out
}
