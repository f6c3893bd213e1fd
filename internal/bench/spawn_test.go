//go:build linux

package bench

import (
	"strings"
	"testing"
)

// TestBenchSpawn runs the scenarios on a server the bench starts itself,
// the built binary, and checks the figures read from /proc.
func TestBenchSpawn(t *testing.T) {
	useBuiltBinary(t)

	t.Run("idle", func(t *testing.T) {
		r, stderr := runJSON[idleReport](t, "idle", "--spawn", "--transport", "ws", "--connections", "50", "--settle", "200ms")
		if r.Established != 50 || !r.Spawned || r.RSSBeforeBytes == 0 || r.RSSAfterBytes <= r.RSSBeforeBytes ||
			r.PeakRSSBytes < r.RSSAfterBytes || r.RSSPerConnectionBytes <= 0 {
			t.Errorf("report %+v", r)
		}
		if !strings.Contains(stderr, "spawned server pid") {
			t.Errorf("stderr does not say where the server runs: %s", stderr)
		}
	})
	t.Run("fanout", func(t *testing.T) {
		r, _ := runJSON[fanoutReport](t, "fanout", "--spawn", "--subscribers", "10", "--rate", "20", "--duration", "1s")
		if r.Missing != 0 || r.Duplicated != 0 || r.Deliveries != 10*20 || r.Server == nil {
			t.Fatalf("report %+v", r)
		}
		if s := r.Server; s.PID == 0 || s.PeakRSSBytes == 0 || s.RSSBytes == 0 || s.CPUMicrosPerDelivery < 0 {
			t.Errorf("server figures %+v", s)
		}
	})
	t.Run("writes", func(t *testing.T) {
		r, _ := runJSON[writesReport](t, "writes", "--spawn", "--writers", "4", "--duration", "500ms")
		if s := r.Server; r.Commits <= 0 || r.Errors != 0 || s == nil || s.PID == 0 || s.PeakRSSBytes == 0 || s.CPUMicrosPerOp <= 0 {
			t.Errorf("report %+v, server %+v", r, s)
		}
	})
	t.Run("poll", func(t *testing.T) {
		r, _ := runJSON[pollReport](t, "poll", "--spawn", "--connections", "4", "--duration", "500ms")
		if s := r.Server; r.Requests <= 0 || r.NotModified != r.Requests || s == nil || s.PeakRSSBytes == 0 || s.CPUMicrosPerOp <= 0 {
			t.Errorf("report %+v, server %+v", r, s)
		}
	})
	t.Run("catchup-trimmed", func(t *testing.T) {
		// With a log of 100 commits, 2000 behind is past the trimming
		// bound: the client gets a compacted catch-up.
		r, _ := runJSON[catchupReport](t, "catchup", "--spawn", "--behind", "2000", "--retain-commits", "100",
			"--page-size", "50", "--records", "30")
		cu := r.Read.CatchUp
		if cu == nil || cu.Records != 30 || cu.Bytes <= 0 || r.Read.To != 2000 || r.Verified != 30 || r.ReadServer == nil || r.PrepareServer == nil {
			t.Errorf("report %+v, catch-up %+v", r, cu)
		}
	})
}
