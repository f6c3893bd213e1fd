package bench

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWriteCollections(t *testing.T) {
	if got := writeCollections("bench", 1); !reflect.DeepEqual(got, []string{"bench"}) {
		t.Errorf("writeCollections(bench, 1) = %v", got)
	}
	if got := writeCollections("w", 3); !reflect.DeepEqual(got, []string{"w-0", "w-1", "w-2"}) {
		t.Errorf("writeCollections(w, 3) = %v", got)
	}
}

func TestMergeWorkers(t *testing.T) {
	a, b := &workerStats{}, &workerStats{}
	a.ok.Store(3)
	a.lat = []time.Duration{3, 1, 2}
	b.ok.Store(2)
	b.errs.Store(1)
	b.lat = []time.Duration{5, 4}
	b.lastErr = errors.New("boom")
	ok, errs, lat, lastErr := mergeWorkers([]*workerStats{a, b})
	if ok != 5 || errs != 1 || len(lat) != 5 || lastErr == nil || lastErr.Error() != "boom" {
		t.Errorf("mergeWorkers = %d, %d, %v, %v", ok, errs, lat, lastErr)
	}
	if ok, errs := sumOK([]*workerStats{a, b}); ok != 5 || errs != 1 {
		t.Errorf("sumOK = %d, %d", ok, errs)
	}
}

func TestRateAndServerFigures(t *testing.T) {
	if r := rate(300, 2*time.Second); r != 150 {
		t.Errorf("rate = %v, want 150", r)
	}
	if r := rate(300, 0); r != 0 {
		t.Errorf("rate over nothing = %v, want 0", r)
	}
	s := serverFigures(7, 1500*time.Millisecond, procStats{rss: 10 << 20, hwm: 12 << 20}, 3000)
	want := &opsServer{PID: 7, CPUSeconds: 1.5, CPUMicrosPerOp: 500, RSSBytes: 10 << 20, PeakRSSBytes: 12 << 20}
	if *s != *want {
		t.Errorf("serverFigures = %+v, want %+v", s, want)
	}
	if s := serverFigures(7, time.Second, procStats{}, 0); s.CPUMicrosPerOp != 0 {
		t.Errorf("no ops: %v µs per op, want 0", s.CPUMicrosPerOp)
	}
	rows := want.rows("commit")
	if len(rows) != 2 || !strings.Contains(rows[0].value, "500.00 µs per commit") || !strings.Contains(rows[1].value, "peak 12.0 MiB") {
		t.Errorf("rows = %+v", rows)
	}
	if rows := (*opsServer)(nil).rows("x"); rows != nil {
		t.Errorf("no server: rows %+v", rows)
	}
}

// TestBenchWrites runs a short writes scenario against an in-process
// server, over two collections.
func TestBenchWrites(t *testing.T) {
	base := startBenchServer(t)
	r, stderr := runJSON[writesReport](t, "writes", "--url", base, "--writers", "4", "--duration", "1500ms",
		"--collections", "2", "--value-size", "80")
	if r.Commits <= 0 || r.Errors != 0 || r.CommitsPerSec <= 0 || r.Latency.Samples != int(r.Commits) || r.Spawned || r.Server != nil {
		t.Errorf("report %+v", r)
	}
	if len(r.Collections) != 2 || r.Writers != 4 || r.ValueBytes != 80 {
		t.Errorf("settings %+v", r)
	}
	l := r.Latency
	if !(l.P50ms > 0 && l.P50ms <= l.P90ms && l.P90ms <= l.P99ms && l.P99ms <= l.MaxMs) {
		t.Errorf("latency %+v not ordered", l)
	}
	// Every acknowledged PUT is a commit of one of the two collections.
	var total uint64
	for _, coll := range r.Collections {
		hd, err := getHead(t.Context(), testClient(), base, coll)
		if err != nil {
			t.Fatal(err)
		}
		total += hd.Version
	}
	if total != uint64(r.Commits) {
		t.Errorf("the collections' versions add up to %d, the report says %d commits", total, r.Commits)
	}
	if !strings.Contains(stderr, "commits ") {
		t.Errorf("no progress on stderr: %s", stderr)
	}
	code, stdout, _ := runBench(t, "writes", "--url", base, "--writers", "1", "--duration", "200ms")
	if code != 0 || !strings.Contains(stdout, "durable commits") || !strings.Contains(stdout, "errors           0") {
		t.Errorf("table report: exit %d\n%s", code, stdout)
	}
}
