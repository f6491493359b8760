package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

// page is what the layout needs from every page.
type page struct {
	Title string
	Nav   string // the highlighted navigation entry
	Crumb []crumb
	// Highlight loads highlight.js, which colours a text preview in the
	// browser: the server never loads syntax definitions, since a Go
	// highlighter's are parsed when any coffer command starts and would
	// cost every command time and memory (docs/ui.md, "Security").
	Highlight bool
}

type crumb struct {
	Name, URL string
}

// view is the data of a template: the layout's part and the page's own.
type view struct {
	Page *page
	Data any
}

var funcs = template.FuncMap{
	"size":      bytesize.Format,
	"time":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"short":     func(id repo.ID) string { return id.Short() },
	"mode":      modeString,
	"duration":  func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"join":      strings.Join,
	"browseURL": func(id repo.ID, p string) string { return snapURL(id, "browse", p) },
	"fileURL":   func(id repo.ID, p string) string { return snapURL(id, "file", p) },
	"rawURL":    func(id repo.ID, p string) string { return snapURL(id, "raw", p) },
	"nodeURL":   nodeURL,
	"query":     func(kv ...string) string { return queryString(kv...) },
	"add":       func(a, b int) int { return a + b },
}

func (s *Server) parseTemplates() error {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	s.pages = map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("ui: template %s: %w", base, err)
		}
		s.pages[base] = t
	}
	return nil
}

// render executes a page template into a buffer first, so that a template
// error becomes a 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, p *page, data any) {
	t := s.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", view{Page: p, Data: data}); err != nil {
		s.logf("ui: rendering %s: %v", name, err)
		http.Error(w, "template error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// escapePath percent-encodes each element of an absolute snapshot path.
func escapePath(p string) string {
	els := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, el := range els {
		els[i] = url.PathEscape(el)
	}
	return strings.Join(els, "/")
}

func snapURL(id repo.ID, kind, p string) string {
	return "/s/" + id.String() + "/" + kind + "/" + escapePath(p)
}

// nodeURL links to a directory's listing, or another node's file page.
func nodeURL(id repo.ID, p string, n *snapshot.Node) string {
	if n.Type == snapshot.TypeDir {
		return snapURL(id, "browse", p)
	}
	return snapURL(id, "file", p)
}

func queryString(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// modeString is the ls -l form of a node's mode, as `coffer ls -l`
// prints it.
func modeString(n *snapshot.Node) string { return n.ModeString() }

// crumbs returns breadcrumbs from "/" to p in snapshot id.
func crumbs(id repo.ID, p string) []crumb {
	c := []crumb{{Name: "/", URL: snapURL(id, "browse", "/")}}
	if p == "/" {
		return c
	}
	acc := ""
	for _, el := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		acc += "/" + el
		c = append(c, crumb{Name: el, URL: snapURL(id, "browse", acc)})
	}
	return c
}

func itoa(i int) string { return fmt.Sprint(i) }
