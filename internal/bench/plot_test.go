package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// svgDoc is what the tests look at in a chart.
type svgDoc struct {
	title string
	// series maps each series' id to its points (polyline points or
	// bars).
	series map[string]int
	panels []string
}

// parseSVG parses a chart as XML, whole, and gathers its title and
// series.
func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	doc := svgDoc{series: map[string]int{}}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var stack []xml.StartElement
	var cur string
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the chart is not valid XML: %v\n%s", err, b)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = e.Name.Local
				if e.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root element in namespace %q", e.Name.Space)
				}
			}
			attr := map[string]string{}
			for _, a := range e.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch {
			case e.Name.Local == "g" && attr["class"] == "series":
				cur = attr["id"]
				doc.series[cur] += 0
			case e.Name.Local == "g" && attr["class"] == "panel":
				doc.panels = append(doc.panels, attr["id"])
			case e.Name.Local == "polyline" && cur != "":
				doc.series[cur] += len(strings.Fields(attr["points"]))
			case e.Name.Local == "rect" && cur != "":
				doc.series[cur]++
			}
			stack = append(stack, e)
		case xml.EndElement:
			if top := stack[len(stack)-1]; top.Name.Local == "g" {
				cur = ""
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 2 && stack[1].Name.Local == "title" {
				doc.title += string(e)
			}
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	return doc
}

// fakeTrace makes a run's trace: rate deliveries a second over secs, and
// latencies spread from 0.1 to 20 ms.
func fakeTrace(m measurement, start time.Time, secs int, rate float64, scale time.Duration) *runTrace {
	tr := &runTrace{measurement: m, start: start, end: start.Add(time.Duration(secs) * time.Second), hist: &latHist{}}
	var d float64
	for s := slotOf(start) - 2; s <= slotOf(tr.end)+2; s++ {
		tr.ticks = append(tr.ticks, groupTick{Slot: s, Deliveries: int64(d), Connected: 10})
		tr.server = append(tr.server, serverSample{slot: s, rss: 20 << 20})
		d += rate * tickEvery.Seconds()
	}
	for i := 1; i <= 2000; i++ {
		tr.hist.add(int64(time.Duration(i) * scale))
	}
	return tr
}

// TestFanoutPlot renders the chart of two runs with a baseline and checks
// it is valid XML with the expected title and series.
func TestBenchFanoutPlot(t *testing.T) {
	c := &fanoutConfig{benchCommon: benchCommon{transport: "sse"}, subscribers: 1000, rate: 100, duration: 10 * time.Second, valueSize: 100}
	rep := &fanoutReport{reportHead: reportHead{URL: "http://127.0.0.1:1/?a=1&b=<2>"}, DeliveriesPerSec: 1e5, Latency: latencySummary{P50ms: 1, P99ms: 9},
		runsOf: runsOf[fanoutReport, fanoutRatio]{Runs: 2, Loaders: 1, Baseline: &fanoutReport{DeliveriesPerSec: 1e5}}}
	start := time.Now()
	var traces []*runTrace
	for run := 1; run <= 2; run++ {
		for _, baseline := range []bool{false, true} {
			scale := 10 * time.Microsecond
			if baseline {
				scale = time.Microsecond
			}
			traces = append(traces, fakeTrace(measurement{baseline: baseline, run: run, runs: 2}, start, 10, 1e5, scale))
		}
	}
	title, subtitle, panels := fanoutPlot(c, rep, traces)
	path := filepath.Join(t.TempDir(), "fanout.svg")
	if err := writePlot(path, title, subtitle, panels); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b)
	for _, want := range []string{"fanout", "sse", "1000 subscribers", "100 commits/s", "10s"} {
		if !strings.Contains(doc.title, want) {
			t.Errorf("title %q does not name %q", doc.title, want)
		}
	}
	if strings.Join(doc.panels, ",") != "latency-histogram,deliveries-over-time" {
		t.Errorf("panels %v", doc.panels)
	}
	for _, id := range []string{"latency-viewsync", "latency-baseline"} {
		if doc.series[id] < 5 {
			t.Errorf("series %s: %d bars, want a histogram (all series: %v)", id, doc.series[id], doc.series)
		}
	}
	for _, id := range []string{"deliveries-viewsync-run1", "deliveries-baseline-run1", "deliveries-viewsync-run2", "deliveries-baseline-run2"} {
		// 10 s at 4 slots a second: about 40 points.
		if n := doc.series[id]; n < 35 {
			t.Errorf("series %s: %d points, want about 40 (all series: %v)", id, n, doc.series)
		}
	}
	if !bytes.Contains(b, []byte("a=1&amp;b=&lt;2&gt;")) {
		t.Errorf("the URL in the subtitle is not escaped")
	}
}

// TestIdlePlot renders the chart of an idle run.
func TestBenchIdlePlot(t *testing.T) {
	c := &idleConfig{benchCommon: benchCommon{transport: "ws"}, connections: 18000}
	rep := &idleReport{reportHead: reportHead{URL: "http://127.0.0.1:1"}, runsOf: runsOf[idleReport, idleRatio]{Runs: 1, Loaders: 2}}
	tr := fakeTrace(measurement{run: 1, runs: 1}, time.Now(), 3, 0, time.Microsecond)
	title, subtitle, panels := idlePlot(c, rep, []*runTrace{tr})
	var b bytes.Buffer
	renderSVG(&b, title, subtitle, panels)
	doc := parseSVG(t, b.Bytes())
	if !strings.Contains(doc.title, "idle") || !strings.Contains(doc.title, "18000 connections") {
		t.Errorf("title %q", doc.title)
	}
	if doc.series["connections-viewsync"] < 10 || doc.series["rss-viewsync"] < 10 {
		t.Errorf("series %v", doc.series)
	}
}

// TestPlotEmpty renders panels with no data: still valid XML.
func TestBenchPlotEmpty(t *testing.T) {
	var b bytes.Buffer
	renderSVG(&b, "empty <chart>", "", []plotPanel{{id: "a", logX: true, series: []plotSeries{{id: "s", bars: true}}}, {id: "b"}})
	doc := parseSVG(t, b.Bytes())
	if doc.title != "empty <chart>" || len(doc.panels) != 2 {
		t.Errorf("%+v", doc)
	}
}

func TestBenchNiceTicks(t *testing.T) {
	got := niceTicks(0, 1050, 5)
	want := []float64{0, 200, 400, 600, 800, 1000, 1200}
	if len(got) != len(want) {
		t.Fatalf("niceTicks(0, 1050, 5) = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("niceTicks(0, 1050, 5) = %v, want %v", got, want)
		}
	}
}
