// Package ui is coffer's read-only web interface: a local HTTP server whose
// pages (overview, snapshots, directory browser, file preview, diff,
// search) are rendered on the server with html/template. Every asset is
// embedded; nothing in it can change the repository.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configure a Server.
type Options struct {
	// Token is the secret a browser must present (once as ?token=, then
	// as a cookie). New generates a random one when it is empty.
	Token string
	// NoAuth serves every request without a token. Only for a user who
	// asked for it explicitly.
	NoAuth bool
	// ErrorLog receives errors that happen after a response has started;
	// nil discards them.
	ErrorLog *log.Logger
}

// Server serves the UI of one open repository. It is an http.Handler.
type Server struct {
	repo   *repo.Repository
	opts   Options
	mux    *http.ServeMux
	pages  map[string]*template.Template
	static http.Handler
	cache  *cache
	// walks bounds the archives and diffs running at once: they decode
	// every directory they pass outside the cache (one archive would
	// otherwise evict all it holds), each as large as it is.
	walks   chan struct{}
	descOne sync.Once
	desc    map[string]string

	namesMu sync.Mutex
	names   map[string]bool // host:port names Listen was given, lower case
}

// New returns a Server for r, whose index must be loaded.
func New(r *repo.Repository, opts Options) (*Server, error) {
	if r == nil {
		return nil, errors.New("ui: no repository")
	}
	if opts.Token == "" && !opts.NoAuth {
		tok, err := newToken()
		if err != nil {
			return nil, err
		}
		opts.Token = tok
	}
	s := &Server{repo: r, opts: opts, cache: newCache(r), walks: make(chan struct{}, maxWalks)}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	s.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	s.routes()
	return s, nil
}

// Token returns the access token ("" with NoAuth).
func (s *Server) Token() string {
	if s.opts.NoAuth {
		return ""
	}
	return s.opts.Token
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.handleOverview)
	m.HandleFunc("GET /snapshots", s.handleSnapshots)
	m.HandleFunc("GET /s/{id}/browse/{path...}", s.handleBrowse)
	m.HandleFunc("GET /s/{id}/file/{path...}", s.handleFile)
	m.HandleFunc("GET /s/{id}/raw/{path...}", s.handleRaw)
	m.HandleFunc("GET /s/{id}/archive/{path...}", s.handleArchive)
	m.HandleFunc("GET /diff", s.handleDiff)
	m.HandleFunc("GET /diff/file", s.handleDiffFile)
	m.HandleFunc("GET /search", s.handleSearch)
	m.Handle("GET /static/", s.static)
	s.mux = m
}

// maxWalks is how many archives and diffs run at once.
const maxWalks = 2

// startWalk waits for a turn to walk trees (see Server.walks); the
// returned function ends it.
func (s *Server) startWalk(ctx context.Context) (func(), error) {
	select {
	case s.walks <- struct{}{}:
		return func() { <-s.walks }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// csp forbids inline scripts and every origin but this server's own.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'"

// ServeHTTP applies the security headers, the Host check, the token check
// and the path rules, then routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Cache-Control", "no-store")
	if !s.hostOK(r) {
		http.Error(w, "403 forbidden: the Host of the request is not this server's address; use the URL coffer ui printed", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: only GET and HEAD are served", http.StatusMethodNotAllowed)
		return
	}
	if !s.authorize(w, r) {
		return
	}
	if hasDotDot(r.URL.Path) || hasDotDot(r.URL.RawPath) || hasDotDot(r.URL.Query().Get("path")) {
		http.Error(w, "paths with .. elements are not allowed", http.StatusBadRequest)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hasDotDot reports whether p has a ".." element (also percent-encoded).
func hasDotDot(p string) bool {
	p = strings.ReplaceAll(strings.ToLower(p), "%2e", ".")
	p = strings.ReplaceAll(p, "%2f", "/")
	p = strings.ReplaceAll(p, "\\", "/")
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// snapPath turns the {path...} of a URL into an absolute snapshot path.
func snapPath(p string) (string, error) {
	if hasDotDot(p) || strings.ContainsRune(p, 0) {
		return "", errors.New("invalid path")
	}
	var els []string
	for _, el := range strings.Split(p, "/") {
		if el != "" && el != "." {
			els = append(els, el)
		}
	}
	return "/" + strings.Join(els, "/"), nil
}

// resolve finds the snapshot and node a request names.
func (s *Server) resolve(r *http.Request) (*snapshot.Snapshot, *snapshot.Node, string, error) {
	sn, err := s.cache.snapshot(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, nil, "", err
	}
	p, err := snapPath(r.PathValue("path"))
	if err != nil {
		return nil, nil, "", err
	}
	n, err := s.lookup(r.Context(), sn, p)
	if err != nil {
		return nil, nil, "", err
	}
	return sn, n, p, nil
}

// lookup is snapshot.Resolve of an absolute path, with the directories on
// the way read from the cache: a file in a directory of 200,000 entries
// then costs a binary search, not a decoding of the directory.
func (s *Server) lookup(ctx context.Context, sn *snapshot.Snapshot, abs string) (*snapshot.Node, error) {
	node := snapshot.RootNode(sn)
	if abs == "/" {
		return node, nil
	}
	walked := ""
	for _, el := range strings.Split(strings.TrimPrefix(abs, "/"), "/") {
		if node.Type != snapshot.TypeDir {
			return nil, fmt.Errorf("%s in snapshot %s: %s is not a directory: %w", abs, sn.ID.Short(), walked, snapshot.ErrPathNotFound)
		}
		nodes, err := s.cache.tree(ctx, node.Subtree)
		if err != nil {
			return nil, err
		}
		walked += "/" + el
		i, ok := slices.BinarySearchFunc(nodes, el, func(n *snapshot.Node, name string) int { return strings.Compare(n.Name, name) })
		if !ok {
			return nil, fmt.Errorf("%s is not in snapshot %s (paths: %s): %w", abs, sn.ID.Short(), strings.Join(sn.Paths, " "), snapshot.ErrPathNotFound)
		}
		node = nodes[i]
	}
	return node, nil
}

// fail answers with an error page, its status chosen by the error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, snapshot.ErrSnapshotNotFound), errors.Is(err, snapshot.ErrPathNotFound), errors.Is(err, storage.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, snapshot.ErrAmbiguousSnapshot), errors.Is(err, errBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, context.Canceled):
		return
	}
	if err != nil && err.Error() == "invalid path" {
		code = http.StatusBadRequest
	}
	w.WriteHeader(code)
	s.render(w, r, "error.html", &page{Title: http.StatusText(code)}, map[string]any{"Code": code, "Message": err.Error()})
}

var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.ErrorLog != nil {
		s.opts.ErrorLog.Printf(format, args...)
	}
}

func (s *Server) describe(ctx context.Context) map[string]string {
	s.descOne.Do(func() {
		st := s.repo.Store()
		s.desc = map[string]string{}
		if d, ok := st.(storage.Describer); ok {
			for k, v := range d.Describe(ctx) {
				s.desc[k] = v
			}
		}
	})
	return s.desc
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
