package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestAggregate checks the median, least and greatest of reports, field
// by field: sums for the counts of problems, the last error, nested and
// missing pointers.
func TestBenchAggregate(t *testing.T) {
	reps := []*fanoutReport{
		{reportHead: reportHead{URL: "a"}, Deliveries: 100, DeliveriesPerSec: 10, Missing: 1, Latency: latencySummary{P50ms: 3}, LastError: "first",
			Server: &serverReport{PID: 7, CPUMicrosPerDelivery: 5, PeakRSSBytes: 300}},
		{reportHead: reportHead{URL: "b"}, Deliveries: 300, DeliveriesPerSec: 30, Missing: 0, Latency: latencySummary{P50ms: 1},
			Server: &serverReport{PID: 8, CPUMicrosPerDelivery: 1, PeakRSSBytes: 100}},
		{reportHead: reportHead{URL: "c"}, Deliveries: 200, DeliveriesPerSec: 20, Missing: 2, Latency: latencySummary{P50ms: 2}, LastError: "last",
			Server: &serverReport{PID: 9, CPUMicrosPerDelivery: 9, PeakRSSBytes: 200}, runsOf: runsOf[fanoutReport, fanoutRatio]{Runs: 99}},
	}
	med, lo, hi := aggregate(reps)
	if med.URL != "a" || med.Deliveries != 200 || med.DeliveriesPerSec != 20 || med.Latency.P50ms != 2 || med.Missing != 3 || med.LastError != "last" || med.Runs != 0 {
		t.Errorf("median %+v", med)
	}
	if s := med.Server; s == nil || s.PID != 7 || s.CPUMicrosPerDelivery != 5 || s.PeakRSSBytes != 200 {
		t.Errorf("median server %+v", s)
	}
	if lo.Deliveries != 100 || lo.Latency.P50ms != 1 || lo.Missing != 0 || lo.Server.PeakRSSBytes != 100 {
		t.Errorf("min %+v", lo)
	}
	if hi.Deliveries != 300 || hi.Latency.P50ms != 3 || hi.Missing != 2 || hi.Server.CPUMicrosPerDelivery != 9 {
		t.Errorf("max %+v", hi)
	}
	// Even counts take the mean of the middle two; a run without a
	// server does not count for the server's figures.
	med, _, _ = aggregate([]*fanoutReport{{Deliveries: 1, DeliveriesPerSec: 1}, {Deliveries: 4, DeliveriesPerSec: 2, Server: &serverReport{CPUSeconds: 3}}})
	if med.Deliveries != 3 || med.DeliveriesPerSec != 1.5 || med.Server == nil || med.Server.CPUSeconds != 3 {
		t.Errorf("median of two %+v, server %+v", med, med.Server)
	}
	// One run is itself.
	one := &idleReport{Connections: 5, Established: 5, RSSPerConnectionBytes: 1234.5, Errors: 2, LastError: "x"}
	med2, _, _ := aggregate([]*idleReport{one})
	if *med2 != *one {
		t.Errorf("aggregate of one = %+v, want %+v", med2, one)
	}
}

func TestBenchRatio(t *testing.T) {
	if r := ratio(3, 2); r != 1.5 {
		t.Errorf("ratio(3, 2) = %v", r)
	}
	if r := ratio(3, 0); r != 0 {
		t.Errorf("ratio(3, 0) = %v, want 0 (none)", r)
	}
	if s := ratioText(0); s != "n/a" {
		t.Errorf("ratioText(0) = %q", s)
	}
	base := &fanoutReport{DeliveriesPerSec: 100, Latency: latencySummary{P50ms: 0.5}, Server: &serverReport{CPUMicrosPerDelivery: 2}}
	r := &fanoutReport{DeliveriesPerSec: 90, Latency: latencySummary{P50ms: 1.5}, Server: &serverReport{CPUMicrosPerDelivery: 10}}
	q := ratios(fanoutFigures, r, base)
	if q.DeliveriesPerSec != 0.9 || q.LatencyP50 != 3 || q.CPUMicrosPerDelivery != 5 || q.LatencyP99 != 0 {
		t.Errorf("ratios %+v", q)
	}
}

// TestLatHist checks the percentiles read from the histogram are within
// 1% of the exact ones, and that merged halves make the whole.
func TestBenchLatHist(t *testing.T) {
	var all, a, b []time.Duration
	for i := 1; i <= 10000; i++ {
		d := time.Duration(i) * 7 * time.Microsecond
		all = append(all, d)
		if i%2 == 0 {
			a = append(a, d)
		} else {
			b = append(b, d)
		}
	}
	h := histOf(a)
	h.merge(histOf(b))
	whole := histOf(all)
	if h.Count != whole.Count || h.MinNS != whole.MinNS || h.MaxNS != whole.MaxNS || len(h.Buckets) != len(whole.Buckets) {
		t.Fatalf("merged halves %+v differ from the whole %+v", h, whole)
	}
	// Through JSON, as a loader sends it.
	b2, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back latHist
	if err := json.Unmarshal(b2, &back); err != nil {
		t.Fatal(err)
	}
	exact := summarize(append([]time.Duration(nil), all...))
	got := back.summary()
	for _, c := range []struct {
		name        string
		got, exactV float64
	}{{"p50", got.P50ms, exact.P50ms}, {"p90", got.P90ms, exact.P90ms}, {"p99", got.P99ms, exact.P99ms}, {"max", got.MaxMs, exact.MaxMs}} {
		if math.Abs(c.got-c.exactV) > 0.01*c.exactV {
			t.Errorf("%s = %v, exact %v: more than 1%% off", c.name, c.got, c.exactV)
		}
	}
	if got.Samples != 10000 {
		t.Errorf("samples %d", got.Samples)
	}
	if s := (&latHist{}).summary(); s != (latencySummary{}) {
		t.Errorf("empty histogram: %+v", s)
	}
}

func TestBenchChooseLoaders(t *testing.T) {
	if n := chooseLoaders(2, 100); n != 2 {
		t.Errorf("--loaders 2: %d", n)
	}
	if n := chooseLoaders(5, 3); n != 3 {
		t.Errorf("--loaders 5 for 3 connections: %d, want 3", n)
	}
	if n := chooseLoaders(0, 100); n != 1 {
		t.Errorf("100 connections: %d loaders, want 1", n)
	}
	for _, conns := range []int{18000, 40000} {
		n := chooseLoaders(0, conns)
		if n < 2 || (conns+n-1)/n > maxConnsPerLoader {
			t.Errorf("%d connections: %d loaders", conns, n)
		}
	}
}

func TestBenchMergeTicks(t *testing.T) {
	a := &localGroup{tk: []groupTick{{Slot: 10, Deliveries: 1}, {Slot: 11, Deliveries: 2}, {Slot: 13, Deliveries: 5}}}
	b := &localGroup{tk: []groupTick{{Slot: 11, Deliveries: 10, Connected: 3}, {Slot: 12, Deliveries: 20, Connected: 3}}}
	got := mergeTicks([]subGroup{a, b})
	want := []groupTick{{Slot: 10, Deliveries: 1}, {Slot: 11, Deliveries: 12, Connected: 3}, {Slot: 12, Deliveries: 22, Connected: 3}, {Slot: 13, Deliveries: 25, Connected: 3}}
	if len(got) != len(want) {
		t.Fatalf("merged %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("slot %d: %+v, want %+v", want[i].Slot, got[i], want[i])
		}
	}
}

func TestBenchRejectsRunFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"fanout", "--url", "http://x", "--runs", "0"}, "--runs"},
		{[]string{"idle", "--url", "http://x", "--runs", "-1"}, "--runs"},
		{[]string{"fanout", "--url", "http://x", "--loaders", "-1"}, "--loaders"},
		{[]string{"idle", "--url", "http://x", "--loaders", "-2"}, "--loaders"},
		{[]string{"loader", "--url", "http://x", "--subscribers", "0"}, "--subscribers"},
		{[]string{"baseline-server", "surplus"}, "unexpected argument"},
	} {
		code, stdout, stderr := runBench(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("bench %s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	for _, sc := range []string{"fanout", "idle"} {
		_, _, stderr := runBench(t, sc, "--help")
		for _, f := range []string{"-runs", "-loaders", "-baseline", "-plot"} {
			if !strings.Contains(stderr, f) {
				t.Errorf("bench %s --help does not list %s", sc, f)
			}
		}
	}
}
