package bench

import (
	"errors"
	"fmt"
	"image/color"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WritePlot draws, for every measured path that has a crypto/tls baseline,
// its throughput (or operations per second) ratio and its sender CPU ratio
// to crypto/tls as horizontal bars, and saves the chart to file; the format
// follows the extension (.png, .svg, .pdf...).
func WritePlot(file, title string, results []Result) error {
	var rs []Result
	for _, r := range results {
		if r.Available && r.Baseline != "" && r.Memory == nil {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return errors.New("plot: no path measured against crypto/tls")
	}
	slices.Reverse(rs) // the first result at the top
	n := len(rs)
	rate, cpu := make(plotter.Values, n), make(plotter.Values, n)
	names := make([]string, n)
	for i, r := range rs {
		rate[i], cpu[i], names[i] = r.RatioVsCryptoTLS, r.SenderCPURatio, r.Name()
		if r.RatioVsCryptoTLS > maxRatio {
			names[i] += fmt.Sprintf(" (%.1fx, off scale)", r.RatioVsCryptoTLS)
		}
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "ratio to crypto/tls in the same run (1 = crypto/tls)"
	p.X.Min = 0
	p.NominalY(names...)

	w := vg.Points(7)
	rateBars, err := plotter.NewBarChart(rate, w)
	if err != nil {
		return err
	}
	rateBars.Horizontal = true
	rateBars.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	rateBars.LineStyle.Width = 0
	rateBars.Offset = w / 2
	cpuBars, err := plotter.NewBarChart(cpu, w)
	if err != nil {
		return err
	}
	cpuBars.Horizontal = true
	cpuBars.Color = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	cpuBars.LineStyle.Width = 0
	cpuBars.Offset = -w / 2
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -1}, {X: 1, Y: float64(n)}})
	if err != nil {
		return err
	}
	one.LineStyle.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(plotter.NewGrid(), rateBars, cpuBars, one)
	p.Legend.Add("throughput (ops/s) ratio, higher is better", rateBars)
	p.Legend.Add("sender CPU per byte (per op) ratio, lower is better", cpuBars)
	p.Legend.Top = true
	// Room above the bars for the legend, and right of the longest bar.
	p.Y.Min, p.Y.Max = -1, float64(n)+1.5
	xmax := 1.25
	for i := range rate {
		xmax = max(xmax, min(rate[i], maxRatio)*1.05, min(cpu[i], maxRatio)*1.05)
	}
	p.X.Max = xmax
	p.X.Tick.Marker = ratioTicks{}
	if err := p.Save(9*vg.Inch, vg.Length(n)*0.28*vg.Inch+1.6*vg.Inch, file); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// maxRatio is the end of the ratio axis: longer bars (plain TCP under
// emulation) are cut there, their ratio written next to their name.
const maxRatio = 3.0

// ratioTicks marks the ratio axis every 0.25, labelled every 0.5.
type ratioTicks struct{}

// Ticks returns the ticks between min and max.
func (ratioTicks) Ticks(min, max float64) []plot.Tick {
	step := 0.25
	if max > 5 {
		step = 1
	}
	var ts []plot.Tick
	for i := 0; float64(i)*step <= max; i++ {
		v := float64(i) * step
		t := plot.Tick{Value: v}
		if v == float64(int(v*2))/2 {
			t.Label = strconv.FormatFloat(v, 'f', -1, 64)
		}
		ts = append(ts, t)
	}
	return ts
}
