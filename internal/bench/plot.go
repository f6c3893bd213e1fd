package bench

// --plot: an SVG chart of a fanout or idle run, written by hand. Its
// panels are stacked: for fanout the histogram of the commit → receipt
// latencies (log-scale buckets, each run's viewsync and baseline
// deliveries together) and the deliveries per second over the measured
// window, one line per run; for idle the connections established and the
// server's memory over the run. Each series is a <g class="series"> whose
// id names it (latency-viewsync, deliveries-baseline-run2, …).

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// plotPoint is a point of a line, or a bar from x to x2.
type plotPoint struct{ x, x2, y float64 }

// plotSeries is a line or a set of bars.
type plotSeries struct {
	id, label, color string
	bars             bool
	pts              []plotPoint
}

// plotPanel is one chart: its axes and series.
type plotPanel struct {
	id, title, xLabel, yLabel string
	logX                      bool
	series                    []plotSeries
}

// Layout of a chart, in SVG user units.
const (
	plotWidth       = 960
	plotHeader      = 70
	plotPanelHeight = 330
	plotLeft        = 80
	plotRight       = 210
	plotTop         = 36
	plotBottom      = 52
)

// esc escapes text for XML content or an attribute value.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writePlot writes the chart to the file path.
func writePlot(path, title, subtitle string, panels []plotPanel) error {
	var b bytes.Buffer
	renderSVG(&b, title, subtitle, panels)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	return nil
}

// renderSVG writes the chart as an SVG document.
func renderSVG(w io.Writer, title, subtitle string, panels []plotPanel) {
	height := plotHeader + len(panels)*plotPanelHeight
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	fmt.Fprintf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", plotWidth, height, plotWidth, height)
	fmt.Fprintf(w, "<title>%s</title>\n", esc(title))
	fmt.Fprintf(w, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", plotWidth, height)
	fmt.Fprintf(w, "<text id=\"title\" x=\"%d\" y=\"26\" font-size=\"17\" font-weight=\"bold\">%s</text>\n", plotLeft-60, esc(title))
	for i, line := range strings.Split(subtitle, "\n") {
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" fill=\"#444\">%s</text>\n", plotLeft-60, 46+16*i, esc(line))
	}
	for i, p := range panels {
		renderPanel(w, p, plotHeader+i*plotPanelHeight)
	}
	fmt.Fprintln(w, "</svg>")
}

func renderPanel(w io.Writer, p plotPanel, top int) {
	x0, x1 := float64(plotLeft), float64(plotWidth-plotRight)
	y0, y1 := float64(top+plotTop), float64(top+plotPanelHeight-plotBottom)
	fmt.Fprintf(w, "<g id=\"%s\" class=\"panel\">\n", esc(p.id))
	fmt.Fprintf(w, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", x0, y0-12, esc(p.title))

	// The ranges: x over every point (bars: both ends), y from 0.
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range p.series {
		for _, pt := range s.pts {
			for _, x := range []float64{pt.x, pt.x2} {
				if (x == pt.x2 && !s.bars) || (p.logX && x <= 0) || math.IsNaN(x) {
					continue
				}
				xmin, xmax = min(xmin, x), max(xmax, x)
			}
			ymax = max(ymax, pt.y)
		}
	}
	empty := math.IsInf(xmin, 1)
	if empty {
		xmin, xmax = 0, 1
		if p.logX {
			xmin, xmax = 0.1, 10
		}
	}
	fx := func(x float64) float64 { return x }
	if p.logX {
		fx = math.Log10
		xmin = math.Pow(10, math.Floor(math.Log10(xmin)))
		xmax = math.Pow(10, math.Ceil(math.Log10(xmax)))
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	yticks := niceTicks(0, max(ymax, 1e-9)*1.05, 5)
	ytop := yticks[len(yticks)-1]
	sx := func(x float64) float64 { return x0 + (fx(x)-fx(xmin))/(fx(xmax)-fx(xmin))*(x1-x0) }
	sy := func(y float64) float64 { return y1 - y/ytop*(y1-y0) }

	// Axes, grid and ticks.
	fmt.Fprintf(w, "<g class=\"axes\" stroke=\"#888\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\"/>\n", x0, y0, x1-x0, y1-y0)
	for _, y := range yticks {
		fmt.Fprintf(w, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x0, sy(y), x1, sy(y))
	}
	var xticks []float64
	if p.logX {
		for e := math.Log10(xmin); e <= math.Log10(xmax)+1e-9; e++ {
			xticks = append(xticks, math.Pow(10, math.Round(e)))
		}
	} else {
		xticks = niceTicks(xmin, xmax, 8)
	}
	for _, x := range xticks {
		if x < xmin-1e-9 || x > xmax+1e-9 {
			continue
		}
		fmt.Fprintf(w, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", sx(x), y0, sx(x), y1)
	}
	fmt.Fprintln(w, "</g>")
	fmt.Fprintln(w, "<g class=\"tick-labels\" fill=\"#333\">")
	for _, y := range yticks {
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", x0-6, sy(y)+4, esc(tickLabel(y)))
	}
	for _, x := range xticks {
		if x < xmin-1e-9 || x > xmax+1e-9 {
			continue
		}
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", sx(x), y1+16, esc(tickLabel(x)))
	}
	fmt.Fprintln(w, "</g>")
	fmt.Fprintf(w, "<text class=\"x-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", (x0+x1)/2, y1+38, esc(p.xLabel))
	fmt.Fprintf(w, "<text class=\"y-label\" transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", x0-58, (y0+y1)/2, esc(p.yLabel))
	if empty {
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#999\">no data</text>\n", (x0+x1)/2, (y0+y1)/2)
	}

	// The series, then their legend.
	for _, s := range p.series {
		fmt.Fprintf(w, "<g id=\"%s\" class=\"series\" data-label=\"%s\">\n", esc(s.id), esc(s.label))
		if s.bars {
			for _, pt := range s.pts {
				if p.logX && pt.x <= 0 {
					continue
				}
				fmt.Fprintf(w, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" fill-opacity=\"0.45\" stroke=\"%s\" stroke-width=\"0.6\"/>\n",
					sx(pt.x), sy(pt.y), max(sx(pt.x2)-sx(pt.x), 0.5), sy(0)-sy(pt.y), esc(s.color), esc(s.color))
			}
		} else if len(s.pts) > 0 {
			var pts []string
			for _, pt := range s.pts {
				if p.logX && pt.x <= 0 {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.2f,%.2f", sx(pt.x), sy(pt.y)))
			}
			fmt.Fprintf(w, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" stroke-linejoin=\"round\"/>\n", strings.Join(pts, " "), esc(s.color))
		}
		fmt.Fprintln(w, "</g>")
	}
	for i, s := range p.series {
		ly := y0 + 8 + float64(i)*18
		fmt.Fprintf(w, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\" fill-opacity=\"0.7\"/>\n", x1+14, ly-9, esc(s.color))
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x1+34, ly, esc(s.label))
	}
	fmt.Fprintln(w, "</g>")
}

// niceTicks returns about n round values from lo to at least hi, in steps
// of 1, 2 or 5 times a power of ten, whichever is nearest (hi-lo)/n.
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(max(n, 1))
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{2, 5, 10} {
		if math.Abs(math.Log(m*mag/raw)) < math.Abs(math.Log(step/raw)) {
			step = m * mag
		}
	}
	var ticks []float64
	for v := math.Floor(lo/step) * step; ; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
		if v >= hi-step*1e-9 {
			break
		}
	}
	return ticks
}

// tickLabel formats an axis value shortly.
func tickLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%gM", math.Round(v/1e5)/10)
	case a >= 1e4:
		return fmt.Sprintf("%gk", math.Round(v/100)/10)
	}
	return fmt.Sprintf("%g", math.Round(v*1000)/1000)
}

// plotColor is the color of a series: blues for viewsync, oranges for
// the baseline, darker for later runs.
func plotColor(baseline bool, run int) string {
	blues := []string{"#1f77b4", "#17486f", "#6baed6", "#08306b", "#9ecae1"}
	oranges := []string{"#ff7f0e", "#a84d00", "#fdae6b", "#7f2704", "#fdd0a2"}
	if baseline {
		return oranges[(run-1)%len(oranges)]
	}
	return blues[(run-1)%len(blues)]
}

// traceName names a trace's series: "viewsync" or "baseline", with the
// run when there are several.
func traceName(m measurement) (id, label string) {
	id, label = "viewsync", "viewsync"
	if m.baseline {
		id, label = "baseline", "baseline (raw)"
	}
	if m.runs > 1 {
		id += fmt.Sprintf("-run%d", m.run)
		label += fmt.Sprintf(", run %d", m.run)
	}
	return id, label
}

// latencyBars returns the histogram as bars ten to a decade of ms, each
// the percentage of the latencies.
func latencyBars(h *latHist) []plotPoint {
	if h == nil || h.Count == 0 {
		return nil
	}
	bins := map[int]int64{}
	for i, n := range h.Buckets {
		ms := histMid(i) / 1e6
		bins[int(math.Floor(math.Log10(ms)*10))] += n
	}
	keys := make([]int, 0, len(bins))
	for k := range bins {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	pts := make([]plotPoint, 0, len(keys))
	for _, k := range keys {
		pts = append(pts, plotPoint{x: math.Pow(10, float64(k)/10), x2: math.Pow(10, float64(k+1)/10), y: 100 * float64(bins[k]) / float64(h.Count)})
	}
	return pts
}

// tickSeries returns a value of the ticks over the trace's window, at
// each slot's end, in seconds since the trace's start. rate makes it the
// value's rate of change per second.
func tickSeries(tr *runTrace, value func(groupTick) float64, rate bool) []plotPoint {
	var pts []plotPoint
	from, to := slotOf(tr.start), slotOf(tr.end)+1
	for i, tk := range tr.ticks {
		if tk.Slot < from || tk.Slot > to {
			continue
		}
		at := time.Unix(0, tk.Slot*int64(tickEvery)).Sub(tr.start).Seconds()
		if !rate {
			pts = append(pts, plotPoint{x: at, y: value(tk)})
			continue
		}
		if i == 0 || tr.ticks[i-1].Slot != tk.Slot-1 {
			continue
		}
		pts = append(pts, plotPoint{x: at - tickEvery.Seconds()/2, y: (value(tk) - value(tr.ticks[i-1])) / tickEvery.Seconds()})
	}
	return pts
}

// fanoutPlot makes the chart of a fanout's runs.
func fanoutPlot(c *fanoutConfig, rep *fanoutReport, traces []*runTrace) (title, subtitle string, panels []plotPanel) {
	title = fmt.Sprintf("viewsync bench fanout: %s, %d subscribers, %g commits/s for %v", c.transport, c.subscribers, c.rate, c.duration)
	subtitle = fmt.Sprintf("%s; %d-byte values; %d run(s), %d loader process(es)", rep.URL, int(c.valueSize), rep.Runs, rep.Loaders)
	subtitle += fmt.Sprintf("\nmedian: %.0f deliveries/s, commit → receipt p50 %.2fms p99 %.2fms", rep.DeliveriesPerSec, rep.Latency.P50ms, rep.Latency.P99ms)
	if b := rep.Baseline; b != nil {
		subtitle += fmt.Sprintf("; baseline (raw broadcaster): %.0f/s, p50 %.2fms p99 %.2fms", b.DeliveriesPerSec, b.Latency.P50ms, b.Latency.P99ms)
	}
	hist := plotPanel{id: "latency-histogram", title: "commit → receipt latency", xLabel: "latency (ms, log scale)", yLabel: "% of deliveries", logX: true}
	for _, baseline := range []bool{false, true} {
		h := &latHist{}
		for _, tr := range traces {
			if tr.baseline == baseline {
				h.merge(tr.hist)
			}
		}
		if h.Count == 0 {
			continue
		}
		id, label := traceName(measurement{baseline: baseline, runs: 1})
		if rep.Runs > 1 {
			label += fmt.Sprintf(" (%d runs)", rep.Runs)
		}
		hist.series = append(hist.series, plotSeries{id: "latency-" + id, label: label, color: plotColor(baseline, 1), bars: true, pts: latencyBars(h)})
	}
	lines := plotPanel{id: "deliveries-over-time", title: "deliveries per second", xLabel: "seconds since the writer's start", yLabel: "deliveries/s"}
	for _, tr := range traces {
		id, label := traceName(tr.measurement)
		lines.series = append(lines.series, plotSeries{id: "deliveries-" + id, label: label, color: plotColor(tr.baseline, tr.run),
			pts: tickSeries(tr, func(t groupTick) float64 { return float64(t.Deliveries) }, true)})
	}
	return title, subtitle, []plotPanel{hist, lines}
}

// idlePlot makes the chart of an idle's runs.
func idlePlot(c *idleConfig, rep *idleReport, traces []*runTrace) (title, subtitle string, panels []plotPanel) {
	title = fmt.Sprintf("viewsync bench idle: %s, %d connections", c.transport, c.connections)
	subtitle = fmt.Sprintf("%s; %d run(s), %d loader process(es)", rep.URL, rep.Runs, rep.Loaders)
	subtitle += fmt.Sprintf("\nmedian: %.1f KiB RSS per connection", rep.RSSPerConnectionBytes/1024)
	if b := rep.Baseline; b != nil {
		subtitle += fmt.Sprintf("; baseline (raw broadcaster): %.1f KiB", b.RSSPerConnectionBytes/1024)
	}
	conns := plotPanel{id: "connections-over-time", title: "connections established", xLabel: "seconds since the first connection", yLabel: "connections"}
	mem := plotPanel{id: "rss-over-time", title: "server memory (VmRSS)", xLabel: "seconds since the first connection", yLabel: "MiB"}
	for _, tr := range traces {
		id, label := traceName(tr.measurement)
		color := plotColor(tr.baseline, tr.run)
		// None is connected at the start.
		cpts := append([]plotPoint{{x: 0, y: 0}}, tickSeries(tr, func(t groupTick) float64 { return float64(t.Connected) }, false)...)
		conns.series = append(conns.series, plotSeries{id: "connections-" + id, label: label, color: color, pts: cpts})
		var pts []plotPoint
		for _, s := range tr.server {
			at := time.Unix(0, s.slot*int64(tickEvery)).Sub(tr.start).Seconds()
			if at >= -tickEvery.Seconds() && !time.Unix(0, s.slot*int64(tickEvery)).After(tr.end.Add(tickEvery)) {
				pts = append(pts, plotPoint{x: at, y: float64(s.rss) / (1 << 20)})
			}
		}
		mem.series = append(mem.series, plotSeries{id: "rss-" + id, label: label, color: color, pts: pts})
	}
	return title, subtitle, []plotPanel{conns, mem}
}
