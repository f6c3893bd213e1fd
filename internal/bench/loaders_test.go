//go:build linux

package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchLoadersAndBaseline runs fanout and idle with their subscribers
// in loader processes, and with the baseline, on servers the bench
// spawns: the built binary, which is also the loaders' and the baseline's.
func TestBenchLoadersAndBaseline(t *testing.T) {
	useBuiltBinary(t)

	t.Run("fanout-loaders", func(t *testing.T) {
		for _, transport := range []string{"sse", "ws"} {
			r, stderr := runJSON[fanoutReport](t, "fanout", "--spawn", "--loaders", "2", "--transport", transport,
				"--subscribers", "11", "--rate", "20", "--duration", "1s")
			if r.Loaders != 2 || r.Established != 11 || r.Commits != 20 {
				t.Errorf("%s: loaders %d, established %d, commits %d; want 2, 11, 20", transport, r.Loaders, r.Established, r.Commits)
			}
			if r.Missing != 0 || r.Duplicated != 0 || r.Deliveries != 11*20 || r.ExpectedDeliveries != 11*20 || r.Latency.Samples != 11*20 {
				t.Errorf("%s: deliveries %d of %d, %d latencies, missing %d, duplicated %d; want 220, 220, 220, 0, 0",
					transport, r.Deliveries, r.ExpectedDeliveries, r.Latency.Samples, r.Missing, r.Duplicated)
			}
			if l := r.Latency; !(l.P50ms > 0 && l.P50ms <= l.P90ms && l.P90ms <= l.P99ms && l.P99ms <= l.MaxMs) {
				t.Errorf("%s: latency %+v", transport, l)
			}
			if r.Server == nil || r.LoaderCPUSeconds < 0 {
				t.Errorf("%s: report %+v", transport, r)
			}
			// The progress line comes once a second: a short run may end
			// before the first, so only the loaders' start is required.
			if !strings.Contains(stderr, "over 2 loader processes") {
				t.Errorf("%s: stderr does not show the loaders:\n%s", transport, stderr)
			}
		}
	})
	// Two loaders hold subscribers 0-2 and 3-5 of 4 views: views 0 and 1
	// have two subscribers each, 2 and 3 one. Of 19 commits views 0-2 get 5
	// each and view 3 four: 29 deliveries (30 had each loader numbered
	// its subscribers from 0).
	t.Run("fanout-loaders-views", func(t *testing.T) {
		r, _ := runJSON[fanoutReport](t, "fanout", "--spawn", "--loaders", "2", "--views", "4",
			"--subscribers", "6", "--rate", "19", "--duration", "1s")
		if r.Loaders != 2 || r.Established != 6 || r.Commits != 19 || r.Missing != 0 || r.Duplicated != 0 {
			t.Errorf("loaders %d, established %d, commits %d, missing %d, duplicated %d; want 2, 6, 19, 0, 0",
				r.Loaders, r.Established, r.Commits, r.Missing, r.Duplicated)
		}
		if r.Deliveries != 29 || r.ExpectedDeliveries != 29 {
			t.Errorf("deliveries %d of %d expected; want 29 of 29", r.Deliveries, r.ExpectedDeliveries)
		}
		if s := r.Server; s == nil || s.CPUMicrosPerCommit <= 0 || s.IdleCPUPercent < 0 {
			t.Errorf("server %+v: want CPU per commit", s)
		}
	})
	// Two loaders hold the subscribers of 7 collections, numbered across
	// both; the spawned server's memory, data and /metrics are measured.
	t.Run("collections-loaders", func(t *testing.T) {
		r, _ := runJSON[collectionsReport](t, "collections", "--spawn", "--loaders", "2", "--collections", "7",
			"--rate", "30", "--duration", "1s", "--settle", "0s")
		if r.Established != 7 || r.Commits != 30 || r.Deliveries != 30 || r.Missing != 0 || r.Duplicated != 0 {
			t.Errorf("established %d, commits %d, deliveries %d, missing %d, duplicated %d; want 7, 30, 30, 0, 0",
				r.Established, r.Commits, r.Deliveries, r.Missing, r.Duplicated)
		}
		if r.AnonWrittenBytes == 0 || r.AnonLiveBytes == 0 || r.DataPerCollectionBytes <= 0 || r.MetricsBytes <= 0 {
			t.Errorf("memory %d/%d, data per collection %v, /metrics %d: want them measured", r.AnonWrittenBytes, r.AnonLiveBytes, r.DataPerCollectionBytes, r.MetricsBytes)
		}
	})
	t.Run("idle-loaders", func(t *testing.T) {
		r, _ := runJSON[idleReport](t, "idle", "--spawn", "--loaders", "2", "--connections", "40", "--settle", "200ms")
		if r.Loaders != 2 || r.Established != 40 || r.Errors != 0 || r.RSSPerConnectionBytes <= 0 {
			t.Errorf("report %+v", r)
		}
	})
	t.Run("fanout-baseline", func(t *testing.T) {
		plot := filepath.Join(t.TempDir(), "fanout.svg")
		code, stdout, stderr := runBench(t, "fanout", "--spawn", "--baseline", "--subscribers", "10", "--rate", "20", "--duration", "1s", "--plot", plot)
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "vs baseline") || !strings.Contains(stderr, "spawned baseline broadcaster pid") {
			t.Fatalf("no comparison with the baseline:\nstdout: %s\nstderr: %s", stdout, stderr)
		}
		for _, name := range []string{"deliveries/s", "commit → receipt p50", "commit → receipt p90", "commit → receipt p99",
			"commit → receipt max", "server peak RSS"} {
			if r := parseRatio(stdout, name); r <= 0 {
				t.Errorf("%s: ratio %v, want positive\n%s", name, r, stdout)
			}
		}
		b, err := os.ReadFile(plot)
		if err != nil {
			t.Fatal(err)
		}
		doc := parseSVG(t, b)
		if doc.series["latency-viewsync"] == 0 || doc.series["latency-baseline"] == 0 ||
			doc.series["deliveries-viewsync"] == 0 || doc.series["deliveries-baseline"] == 0 {
			t.Errorf("chart series %v", doc.series)
		}
	})
	t.Run("fanout-baseline-runs", func(t *testing.T) {
		r, _ := runJSON[fanoutReport](t, "fanout", "--spawn", "--baseline", "--runs", "2", "--transport", "ws",
			"--subscribers", "10", "--rate", "20", "--duration", "1s")
		b, q := r.Baseline, r.Ratio
		if r.Runs != 2 || r.Min == nil || r.Max == nil || b == nil || q == nil {
			t.Fatalf("report %+v", r)
		}
		if r.Deliveries != 200 || r.Missing != 0 || b.Deliveries != 200 || b.Missing != 0 || b.Duplicated != 0 || b.Server == nil {
			t.Errorf("deliveries %d (missing %d), baseline %d (missing %d, duplicated %d)", r.Deliveries, r.Missing, b.Deliveries, b.Missing, b.Duplicated)
		}
		if r.Min.Latency.P50ms > r.Latency.P50ms || r.Max.Latency.P50ms < r.Latency.P50ms {
			t.Errorf("median p50 %v not within min %v and max %v", r.Latency.P50ms, r.Min.Latency.P50ms, r.Max.Latency.P50ms)
		}
		if q.DeliveriesPerSec <= 0 || q.LatencyP50 <= 0 || q.LatencyP90 <= 0 || q.LatencyP99 <= 0 || q.LatencyMax <= 0 || q.ServerPeakRSS <= 0 {
			t.Errorf("ratios %+v, want positive", q)
		}
		if b.Server.CPUSeconds > 0 && q.CPUMicrosPerDelivery <= 0 {
			t.Errorf("CPU per delivery ratio %v, baseline CPU %vs", q.CPUMicrosPerDelivery, b.Server.CPUSeconds)
		}
	})
	t.Run("idle-baseline", func(t *testing.T) {
		r, _ := runJSON[idleReport](t, "idle", "--spawn", "--baseline", "--connections", "200", "--settle", "200ms")
		b, q := r.Baseline, r.Ratio
		if b == nil || q == nil || b.Established != 200 || b.RSSPerConnectionBytes <= 0 {
			t.Fatalf("report %+v, baseline %+v", r, b)
		}
		if q.RSSPerConnection <= 0 || q.RSSAfter <= 0 || q.ConnectsPerSec <= 0 {
			t.Errorf("ratios %+v, want positive", q)
		}
	})
}
