//go:build linux

package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestBenchSpawn runs both scenarios on a server the bench starts itself,
// the built binary, and checks the figures read from /proc.
func TestBenchSpawn(t *testing.T) {
	clearEnv(t)
	bin := serverBinary(t)
	serveExecutable = func() (string, error) { return bin, nil }
	t.Cleanup(func() { serveExecutable = os.Executable })

	t.Run("idle", func(t *testing.T) {
		code, stdout, stderr := runCmd(t, "bench", "idle", "--spawn", "--transport", "ws", "--connections", "50", "--settle", "200ms", "--json")
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		var r idleReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("report: %v\n%s", err, stdout)
		}
		if r.Established != 50 || !r.Spawned || r.RSSBeforeBytes == 0 || r.RSSAfterBytes <= r.RSSBeforeBytes ||
			r.PeakRSSBytes < r.RSSAfterBytes || r.RSSPerConnectionBytes <= 0 {
			t.Errorf("report %+v", r)
		}
		if !strings.Contains(stderr, "spawned server pid") {
			t.Errorf("stderr does not say where the server runs: %s", stderr)
		}
	})
	t.Run("fanout", func(t *testing.T) {
		code, stdout, stderr := runCmd(t, "bench", "fanout", "--spawn", "--subscribers", "10", "--rate", "20", "--duration", "1s", "--json")
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		var r fanoutReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("report: %v\n%s", err, stdout)
		}
		if r.Missing != 0 || r.Duplicated != 0 || r.Deliveries != 10*20 || r.Server == nil {
			t.Fatalf("report %+v", r)
		}
		if s := r.Server; s.PID == 0 || s.PeakRSSBytes == 0 || s.RSSBytes == 0 || s.CPUMicrosPerDelivery < 0 {
			t.Errorf("server figures %+v", s)
		}
	})
}
