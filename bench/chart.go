package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette gives each tool a fixed color, in toolNames order.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, // coffer
	color.RGBA{0x8c, 0xc5, 0xe3, 0xff}, // coffer-oci
	color.RGBA{0x17, 0x3f, 0x5f, 0xff}, // coffer-uncompressed
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, // restic
	color.RGBA{0xff, 0x98, 0x96, 0xff}, // restic-matched
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, // kopia
}

// chart draws the median wall time of every scenario as grouped bars,
// one bar per tool, and saves it to path (the extension picks the format).
func (r *Report) chart(res *Result, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: median wall time per scenario (%d run(s))", res.Dataset.Name, r.Runs)
	if r.Quick {
		p.Title.Text += ", -quick"
	}
	p.Y.Label.Text = "seconds"
	p.Legend.Top = true
	var top float64
	width := vg.Points(60 / float64(len(r.Tools)))
	for i, t := range r.Tools {
		vals := make(plotter.Values, len(scenarios))
		for j, sc := range scenarios {
			vals[j] = medianSample(res.Samples[t][sc]).Wall.Seconds()
			top = max(top, vals[j])
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return fmt.Errorf("charting %s: %w", t, err)
		}
		bars.LineStyle.Width = 0
		bars.Color = palette[toolIndex(t)%len(palette)]
		bars.Offset = width * vg.Length(float64(i)-float64(len(r.Tools)-1)/2)
		p.Add(bars)
		p.Legend.Add(t, bars)
	}
	p.NominalX(scenarios...)
	p.X.Tick.Label.Rotation = 0.4 // radians
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	// Room above the bars for the legend, and on both sides for the
	// outermost bars.
	p.Y.Min, p.Y.Max = 0, top*(1.1+0.08*float64(len(r.Tools)))
	p.X.Min, p.X.Max = -0.5, float64(len(scenarios))-0.5
	p.Add(plotter.NewGrid())
	if err := p.Save(9*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("saving the chart %s: %w", path, err)
	}
	return nil
}

func toolIndex(name string) int {
	for i, t := range toolNames {
		if t == name {
			return i
		}
	}
	return 0
}
