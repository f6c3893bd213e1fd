package viewsync_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/store/boltstore"
)

// BenchmarkCommit measures durable single-record commits through the Go
// API (Collection.Put) on a bbolt store that fsyncs every transaction, with
// 1, 16 and 64 concurrent writers. Besides ns/op (wall time per commit, the
// inverse of throughput) it reports commits/s, the median and 99th
// percentile latency of one Put as a writer sees it, and how many commits
// shared each fsync.
func BenchmarkCommit(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			benchCommit(b, writers)
		})
	}
}

func benchCommit(b *testing.B, writers int) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), &boltstore.Options{NoSync: false})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	coll, err := hub.Collection("products")
	if err != nil {
		b.Fatal(err)
	}
	const records = 1000
	ids := make([]string, records)
	for i := range ids {
		ids[i] = fmt.Sprintf("product-%04d", i)
	}
	value := json.RawMessage(`{"name":"Widget","price":12.5,"stock":42,"tags":["blue","large"]}`)
	ctx := b.Context()
	// One warm-up commit creates the collection's buckets.
	if _, err := coll.Put(ctx, ids[0], value); err != nil {
		b.Fatal(err)
	}
	before := st.Stats()

	lat := make([][]time.Duration, writers)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			mine := make([]time.Duration, 0, b.N/writers+1)
			defer func() { lat[w] = mine }()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				_, err := coll.Put(ctx, ids[i%records], value)
				mine = append(mine, time.Since(t0))
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	all := slices.Concat(lat...)
	slices.Sort(all)
	after := st.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	b.ReportMetric(micros(percentile(all, 0.50)), "p50-µs")
	b.ReportMetric(micros(percentile(all, 0.99)), "p99-µs")
	if n := after.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(after.Commits-before.Commits)/float64(n), "commits/fsync")
	}
}

// percentile returns the p-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
