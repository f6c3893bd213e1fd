//go:build linux

package bench

import (
	"strings"
	"testing"
)

// TestBenchCluster runs the scenarios of the NATS engine on a spawned
// three-node cluster (the built binary as the NATS servers and the
// viewsync nodes), with few commits.
func TestBenchCluster(t *testing.T) {
	useBuiltBinary(t)
	// Every subscriber of every node gets every commit, in order.
	t.Run("visibility", func(t *testing.T) {
		r, _ := runJSON[visibilityReport](t, "visibility", "--spawn", "--rates", "10,20", "--duration", "1s", "--subscribers", "2")
		if len(r.Phases) != 2 {
			t.Fatalf("%d phases, want 2", len(r.Phases))
		}
		for _, ph := range r.Phases {
			if ph.Errors != 0 || ph.Commits != int(ph.Rate) || len(ph.Nodes) != 3 || len(ph.NATSCPUms) != 3 {
				t.Fatalf("at %v/s: %d commits, %d failed, %d nodes; want %v, 0, 3", ph.Rate, ph.Commits, ph.Errors, len(ph.Nodes), ph.Rate)
			}
			for i, n := range ph.Nodes {
				if n.Missing != 0 || n.Duplicated != 0 || n.Resets != 0 || n.Latency.Samples != 2*ph.Commits {
					t.Errorf("at %v/s node %d: %+v; want %d samples, none missing, duplicated or reset", ph.Rate, i, n, 2*ph.Commits)
				}
			}
		}
	})
	// Written through node 0, followed on node 1; the NATS servers'
	// memory and storage are measured.
	t.Run("collections", func(t *testing.T) {
		r, _ := runJSON[collectionsReport](t, "collections", "--spawn", "--nats-cluster", "--collections", "3",
			"--rate", "10", "--duration", "1s", "--settle", "0s")
		if r.Established != 3 || r.Commits != 10 || r.Deliveries != 10 || r.Missing != 0 || r.Duplicated != 0 {
			t.Errorf("established %d, commits %d, deliveries %d, missing %d, duplicated %d; want 3, 10, 10, 0, 0",
				r.Established, r.Commits, r.Deliveries, r.Missing, r.Duplicated)
		}
		cc := r.Cluster
		if cc == nil || len(cc.NATSData[phaseWritten]) != 3 || cc.NATSDataPerWritten <= 0 || len(cc.IdleNATSCPU) != 3 {
			t.Fatalf("cluster figures %+v: want the NATS servers' storage and CPU", cc)
		}
		for i, a := range cc.NATSAnon[phaseLive] {
			if a == 0 || cc.NodeAnon[phaseLive][i] == 0 {
				t.Errorf("NATS server %d or node %d: no memory reading (%+v)", i, i, cc)
			}
		}
	})
	if code, _, stderr := runBench(t, "visibility", "--url", "http://x"); code != 2 || !strings.Contains(stderr, "--spawn") {
		t.Errorf("visibility --url: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runBench(t, "collections", "--url", "http://x", "--nats-cluster"); code != 2 || !strings.Contains(stderr, "--nats-cluster needs --spawn") {
		t.Errorf("collections --url --nats-cluster: exit %d, %q", code, stderr)
	}
}
