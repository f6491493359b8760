package ui

import (
	"cmp"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/cofferhq/coffer/snapshot"
)

// pageSize is the number of entries a directory page shows.
const pageSize = 500

type browseData struct {
	Snap     *snapshot.Snapshot
	Path     string
	Entries  []entry
	Total    int
	Sort     string
	Order    string
	Page     int
	Pages    int
	First    int // 1-based index of the first entry shown
	Last     int
	Prev     string
	Next     string
	FirstURL string
	LastURL  string
	SortURLs map[string]string
	TarURL   string
	ZipURL   string
	Parent   string
}

type entry struct {
	Node *snapshot.Node
	Path string
	URL  string
}

var sortKeys = map[string]func(a, b *snapshot.Node) int{
	"name":  func(a, b *snapshot.Node) int { return strings.Compare(a.Name, b.Name) },
	"size":  func(a, b *snapshot.Node) int { return cmp.Compare(a.Size, b.Size) },
	"mtime": func(a, b *snapshot.Node) int { return a.ModTime.Compare(b.ModTime) },
	"mode":  func(a, b *snapshot.Node) int { return strings.Compare(modeString(a), modeString(b)) },
}

// handleBrowse lists a directory of a snapshot, sorted by the column
// ?sort= (name, size, mtime, mode) in ?order= (asc, desc), ?page= by
// page of 500.
func (s *Server) handleBrowse(w http.ResponseWriter, r *http.Request) {
	sn, n, abs, err := s.resolve(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n.Type != snapshot.TypeDir {
		http.Redirect(w, r, snapURL(sn.ID, "file", abs), http.StatusSeeOther)
		return
	}
	nodes, err := s.cache.tree(r.Context(), n.Subtree)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	d := &browseData{Snap: sn, Path: abs, Total: len(nodes), Sort: q.Get("sort"), Order: q.Get("order")}
	less, ok := sortKeys[d.Sort]
	if !ok {
		d.Sort, less = "name", sortKeys["name"]
	}
	if d.Order != "desc" {
		d.Order = "asc"
	}
	sorted := nodes // sorted by name already
	if d.Sort != "name" || d.Order == "desc" {
		// A view shared by the requests for this order, so that paging
		// through a large directory sorts it once, not once a page.
		sorted, err = s.cache.view(r.Context(), n.Subtree, d.Sort+" "+d.Order, func(nodes []*snapshot.Node) []*snapshot.Node {
			sorted := slices.Clone(nodes)
			slices.SortStableFunc(sorted, func(a, b *snapshot.Node) int {
				c := less(a, b)
				if d.Order == "desc" {
					c = -c
				}
				if c == 0 { // ties: by name, ascending either way
					c = strings.Compare(a.Name, b.Name)
				}
				return c
			})
			return sorted
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	d.Pages = max(1, (len(sorted)+pageSize-1)/pageSize)
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = min(max(d.Page, 1), d.Pages)
	lo, hi := (d.Page-1)*pageSize, min(d.Page*pageSize, len(sorted))
	d.First, d.Last = lo+1, hi
	for _, c := range sorted[lo:hi] {
		p := path.Join(abs, c.Name)
		d.Entries = append(d.Entries, entry{Node: c, Path: p, URL: nodeURL(sn.ID, p, c)})
	}
	base := snapURL(sn.ID, "browse", abs)
	link := func(sortBy, order string, page int) string {
		if sortBy == "name" {
			sortBy = ""
		}
		if order == "asc" {
			order = ""
		}
		pg := ""
		if page > 1 {
			pg = strconv.Itoa(page)
		}
		return base + queryString("sort", sortBy, "order", order, "page", pg)
	}
	if d.Page > 1 {
		d.Prev, d.FirstURL = link(d.Sort, d.Order, d.Page-1), link(d.Sort, d.Order, 1)
	}
	if d.Page < d.Pages {
		d.Next, d.LastURL = link(d.Sort, d.Order, d.Page+1), link(d.Sort, d.Order, d.Pages)
	}
	d.SortURLs = map[string]string{}
	for k := range sortKeys {
		order := "asc"
		if k == d.Sort && d.Order == "asc" {
			order = "desc"
		}
		d.SortURLs[k] = link(k, order, 1)
	}
	d.TarURL = snapURL(sn.ID, "archive", abs) + "?format=tar.gz"
	d.ZipURL = snapURL(sn.ID, "archive", abs) + "?format=zip"
	if abs != "/" {
		d.Parent = snapURL(sn.ID, "browse", path.Dir(abs))
	}
	title := abs + " in " + sn.ID.Short()
	s.render(w, r, "browse.html", &page{Title: title, Nav: "snapshots", Crumb: crumbs(sn.ID, abs)}, d)
}
