package bench

import (
	"errors"
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WritePlot draws, for every measured path that has a crypto/tls baseline,
// its throughput (or operations per second) ratio and its sender CPU ratio
// to crypto/tls as horizontal bars, and saves the chart to file; the format
// follows the extension (.png, .svg, .pdf...). The servers scenarios get a
// chart of their own (see writeServersPlot): into file if they are all
// the results have, else into file with "-servers" before the extension.
func WritePlot(file, title string, results []Result) error {
	var rs, srv []Result
	for _, r := range results {
		switch {
		case !r.Available:
		case r.Server == ServerKTLS && (r.VsNetHTTP != nil || r.VsNginxKTLS != nil):
			srv = append(srv, r)
		case r.Server == "" && r.Baseline != "" && r.Memory == nil:
			rs = append(rs, r)
		}
	}
	if len(srv) > 0 {
		sfile := file
		if len(rs) > 0 {
			ext := filepath.Ext(file)
			sfile = strings.TrimSuffix(file, ext) + "-servers" + ext
		}
		if err := writeServersPlot(sfile, title, srv); err != nil {
			return err
		}
		if len(rs) == 0 {
			return nil
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

// rateRange is the rate ratio with the rounds' range, zeros for a row that
// was not compared to that server (v nil).
func (v *ServerRatio) rateRange() (med, lo, hi float64) {
	if v == nil {
		return 0, 0, 0
	}
	return v.Rate, v.RateMin, v.RateMax
}

// cpuRange is the server CPU ratio with the rounds' range, zeros for a row
// that was not compared to that server (v nil).
func (v *ServerRatio) cpuRange() (med, lo, hi float64) {
	if v == nil {
		return 0, 0, 0
	}
	return v.CPU, v.CPUMin, v.CPUMax
}

// writeServersPlot draws, for every ktls-serve row of the servers
// scenarios, its rate and server CPU ratios to nginx-ktls and to net/http as
// horizontal bars, with the rounds' range as error bars.
func writeServersPlot(file, title string, rs []Result) error {
	rs = slices.Clone(rs)
	slices.Reverse(rs) // the first result at the top
	n := len(rs)
	names := make([]string, n)
	for i, r := range rs {
		names[i] = strings.Join([]string{r.Scenario, r.Protocol, r.Version}, " ")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "ktls serve / other server in the same rounds (1 = the other server)"
	p.X.Min = 0
	p.NominalY(names...)
	bars := []struct {
		label string
		color color.RGBA
		value func(r Result) (v, lo, hi float64)
	}{
		{"rate vs nginx-ktls, higher is better", color.RGBA{R: 31, G: 119, B: 180, A: 255}, func(r Result) (float64, float64, float64) {
			return r.VsNginxKTLS.rateRange()
		}},
		{"server CPU vs nginx-ktls, lower is better", color.RGBA{R: 255, G: 127, B: 14, A: 255}, func(r Result) (float64, float64, float64) {
			return r.VsNginxKTLS.cpuRange()
		}},
		{"rate vs net/http, higher is better", color.RGBA{R: 44, G: 160, B: 44, A: 255}, func(r Result) (float64, float64, float64) {
			return r.VsNetHTTP.rateRange()
		}},
		{"server CPU vs net/http, lower is better", color.RGBA{R: 214, G: 39, B: 40, A: 255}, func(r Result) (float64, float64, float64) {
			return r.VsNetHTTP.cpuRange()
		}},
	}
	// Each bar is a thick line from 0 to the ratio, and the rounds' range
	// an error bar at its end, both placed in data coordinates.
	xmax := 1.25
	p.Add(plotter.NewGrid())
	for k, b := range bars {
		pts, errs := make(plotter.XYs, n), make(plotter.XErrors, n)
		for i, r := range rs {
			v, lo, hi := b.value(r)
			v, lo, hi = min(v, maxRatio), min(lo, maxRatio), min(hi, maxRatio)
			y := float64(i) + (1.5-float64(k))*0.2
			pts[i] = plotter.XY{X: v, Y: y}
			errs[i].Low, errs[i].High = v-lo, hi-v
			xmax = max(xmax, hi*1.05)
			bar, err := plotter.NewLine(plotter.XYs{{X: 0, Y: y}, {X: v, Y: y}})
			if err != nil {
				return err
			}
			bar.Color, bar.Width = b.color, vg.Points(6)
			p.Add(bar)
			if i == 0 {
				p.Legend.Add(b.label, bar)
			}
		}
		eb, err := plotter.NewXErrorBars(struct {
			plotter.XYer
			plotter.XErrorer
		}{pts, errs})
		if err != nil {
			return err
		}
		p.Add(eb)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -1}, {X: 1, Y: float64(n)}})
	if err != nil {
		return err
	}
	one.LineStyle.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(one)
	p.Legend.Top = true
	p.Y.Min, p.Y.Max = -1, float64(n)+2.5
	p.X.Max = xmax
	p.X.Tick.Marker = ratioTicks{}
	if err := p.Save(9*vg.Inch, vg.Length(n)*0.4*vg.Inch+2*vg.Inch, file); err != nil {
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
