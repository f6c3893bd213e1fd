package natskv_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/natskv"
)

// contention is three stores, each connected to another node of a
// three-node cluster first, writing to one collection of Replicas 3.
type contention struct {
	cl     *cluster
	stores []*natskv.Store
}

// newContention starts the cluster and the stores, and opens coll on each.
func newContention(tb testing.TB, coll string) *contention {
	tb.Helper()
	cl := newCluster(tb)
	urls := cl.nodeURLs()
	ct := &contention{cl: cl}
	for i := range 3 {
		order := append([]string{urls[i]}, append(append([]string(nil), urls[:i]...), urls[i+1:]...)...)
		s := openStore(tb, joinURLs(order), natskv.Options{
			Replicas:    3,
			NATSOptions: []nats.Option{nats.MaxReconnects(-1), nats.DontRandomize()},
			Logger:      testLogger(tb),
		})
		waitPlaced(tb, s, coll)
		ct.stores = append(ct.stores, s)
	}
	return ct
}

// nodeShare is what one store's writers did in a contention run.
type nodeShare struct {
	commits int
	lat     []time.Duration
}

// p99 returns the 99th percentile of the latencies.
func (n *nodeShare) p99() time.Duration {
	if len(n.lat) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(n.lat))
	return s[min(len(s)-1, len(s)*99/100)]
}

// run has writers goroutines on each store commit one put each until
// total commits were made in all, and returns what each store made and
// how long it took. Which store makes a commit is up to the stores: a
// store whose writers are starved makes few.
func (ct *contention) run(tb testing.TB, coll string, writers, total int) ([]*nodeShare, time.Duration) {
	tb.Helper()
	ctx := tb.Context()
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		shares = make([]*nodeShare, len(ct.stores))
		failed atomic.Pointer[error]
	)
	for i := range shares {
		shares[i] = &nodeShare{}
	}
	start := time.Now()
	for i, s := range ct.stores {
		for w := range writers {
			wg.Go(func() {
				var lat []time.Duration
				for k := 0; next.Add(1) <= int64(total); k++ {
					ops := []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprintf("n%d-w%d-%d", i, w, k), Value: benchValue}}
					t0 := time.Now()
					if _, err := s.Apply(ctx, coll, ops, nil); err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					lat = append(lat, time.Since(t0))
				}
				mu.Lock()
				shares[i].commits += len(lat)
				shares[i].lat = append(shares[i].lat, lat...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
	return shares, elapsed
}

// TestClusterWritersFair: 3 × 8 writers on three stores, each connected
// to another node, commit to one collection; every store's writers make
// progress — each store makes at least 0.4 of the commits of any other
// (counts, not times). Taking turns measured 0.56-0.87 here under the race
// detector; without, 0.26-0.54. (BenchmarkClusterWriters gives the
// figures.)
func TestClusterWritersFair(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	const coll, writers, total = "fair", 8, 2400
	ct := newContention(t, coll)
	shares, elapsed := ct.run(t, coll, writers, total)
	most := 0
	for _, s := range shares {
		most = max(most, s.commits)
	}
	for i, s := range shares {
		t.Logf("store %d: %d commits, p99 %v", i, s.commits, s.p99().Round(time.Millisecond))
		if s.commits == 0 || 10*s.commits < 4*most {
			t.Errorf("store %d made %d of %d commits, another made %d: starved", i, s.commits, total, most)
		}
	}
	t.Logf("%d commits in %v", total, elapsed.Round(time.Millisecond))
}

// BenchmarkClusterWriters measures writers on three stores, each
// connected to another node of a three-node cluster (Replicas 3), all
// committing one put of ~100 bytes at a time to one collection:
// VS_BENCH_WRITERS per store (default 16), b.N commits in all (use
// -benchtime 3000x or so). It reports each store's commits per second
// and p99 latency, and the smallest store's share of the largest's.
func BenchmarkClusterWriters(b *testing.B) {
	writers := 16
	if s := os.Getenv("VS_BENCH_WRITERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("VS_BENCH_WRITERS=%q", s)
		}
		writers = n
	}
	const coll = "bench"
	ct := newContention(b, coll)
	// Warm up: every store has its collection followed and written.
	for _, s := range ct.stores {
		ops := []protocol.Op{{Op: protocol.OpPut, ID: "warm", Value: benchValue}}
		if _, err := s.Apply(context.Background(), coll, ops, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	shares, elapsed := ct.run(b, coll, writers, b.N)
	b.StopTimer()
	least, most := b.N, 0
	for i, s := range shares {
		least, most = min(least, s.commits), max(most, s.commits)
		b.ReportMetric(float64(s.commits)/elapsed.Seconds(), fmt.Sprintf("n%d-commits/s", i))
		b.ReportMetric(float64(s.p99().Microseconds())/1000, fmt.Sprintf("n%d-p99-ms", i))
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	if most > 0 {
		b.ReportMetric(float64(least)/float64(most), "min/max")
	}
}
