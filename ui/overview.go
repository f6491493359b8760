package ui

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

type overviewData struct {
	Location  string
	StoreType string
	Store     [][2]string // what the store's Describe reported, sorted by key
	ID        string
	Created   string
	Snapshots int
	Logical   int64
	Unique    int64
	Stored    int64
	Packs     int
	Dedup     string
	Latest    *snapshot.Snapshot
	Chart     *chart
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request) {
	sns, err := s.cache.list(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := &overviewData{Location: s.repo.Store().Location(), ID: s.repo.Config().ID,
		Created: s.repo.Config().Created.UTC().Format("2006-01-02 15:04:05Z"), Snapshots: len(sns)}
	stats := snapshot.RepositoryStats(s.repo, sns)
	d.Logical, d.Unique, d.Stored, d.Packs = stats.LogicalBytes, stats.UniqueBytes, stats.StoredBytes, stats.Packs
	d.Dedup = "–"
	if stats.UniqueBytes > 0 {
		d.Dedup = fmt.Sprintf("%.2f×", stats.DedupRatio())
	}
	desc := s.describe(r.Context())
	d.StoreType = desc["type"]
	if d.StoreType == "" {
		// The location came from the store, so it parses; a store that
		// does not describe itself is named by its scheme.
		d.StoreType, _ = storage.Scheme(d.Location)
	}
	for _, k := range sortedKeys(desc) {
		if k != "type" {
			d.Store = append(d.Store, [2]string{k, desc[k]})
		}
	}
	if len(sns) > 0 {
		d.Latest = sns[len(sns)-1]
	}
	d.Chart = newChart(sns)
	s.render(w, r, "overview.html", &page{Title: "Overview", Nav: "overview"}, d)
}

// chart is an SVG chart of snapshots over time, laid out on the server:
// a line of each snapshot's logical size and bars of the new data it added.
type chart struct {
	W, H       int
	Line       string // polyline points
	Bars       []bar
	Dots       []dot
	YTicks     []tick
	XTicks     []tick
	PlotLeft   int
	PlotBottom int
	PlotRight  int
	PlotTop    int
}

type bar struct {
	X, Y, W, H int
	Title      string
}

type dot struct {
	X, Y  int
	Title string
	URL   string
}

type tick struct {
	Pos   int
	Label string
}

func newChart(sns []*snapshot.Snapshot) *chart {
	if len(sns) == 0 {
		return nil
	}
	c := &chart{W: 900, H: 260, PlotLeft: 70, PlotRight: 880, PlotTop: 14, PlotBottom: 226}
	var maxY int64 = 1
	for _, sn := range sns {
		maxY = max(maxY, sn.Summary.Size, sn.Summary.NewBytes)
	}
	t0, t1 := sns[0].Time, sns[len(sns)-1].Time
	span := t1.Sub(t0)
	pw, ph := c.PlotRight-c.PlotLeft, c.PlotBottom-c.PlotTop
	xOf := func(i int) int {
		if len(sns) == 1 {
			return c.PlotLeft + pw/2
		}
		if span <= 0 {
			return c.PlotLeft + i*pw/(len(sns)-1)
		}
		// By time, but spread evenly when times cluster: half and half.
		byTime := float64(sns[i].Time.Sub(t0)) / float64(span)
		byIndex := float64(i) / float64(len(sns)-1)
		return c.PlotLeft + int(float64(pw)*(byTime+byIndex)/2)
	}
	yOf := func(v int64) int { return c.PlotBottom - int(float64(ph)*float64(v)/float64(maxY)) }
	bw := max(2, min(24, pw/(2*len(sns))))
	var pts []string
	for i, sn := range sns {
		x := xOf(i)
		y := yOf(sn.Summary.Size)
		pts = append(pts, fmt.Sprintf("%d,%d", x, y))
		title := fmt.Sprintf("%s %s: %s, %s new", sn.ID.Short(), sn.Time.UTC().Format("2006-01-02 15:04"), bytesize.Format(sn.Summary.Size), bytesize.Format(sn.Summary.NewBytes))
		c.Dots = append(c.Dots, dot{X: x, Y: y, Title: title, URL: snapURL(sn.ID, "browse", sn.Base)})
		by := yOf(sn.Summary.NewBytes)
		c.Bars = append(c.Bars, bar{X: x - bw/2, Y: by, W: bw, H: c.PlotBottom - by, Title: title})
	}
	c.Line = strings.Join(pts, " ")
	for i := 0; i <= 4; i++ {
		v := maxY * int64(i) / 4
		c.YTicks = append(c.YTicks, tick{Pos: yOf(v), Label: bytesize.Format(v)})
	}
	step := max(1, len(sns)/6)
	for i := 0; i < len(sns); i += step {
		c.XTicks = append(c.XTicks, tick{Pos: xOf(i), Label: sns[i].Time.UTC().Format("2006-01-02")})
	}
	return c
}
