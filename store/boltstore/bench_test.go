package boltstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
)

// benchValue is a record value of about 100 bytes.
var benchValue = json.RawMessage(`{"name":"Widget, large","sku":"WX-000123","price":1299,"stock":42,"tags":["hardware","outdoor"]}`)

// BenchmarkApply measures durable commits (fsync on, one put of a ~100-byte
// value each) with 1, 16 and 64 concurrent writers. It reports commits per
// second, the 99th percentile latency of one Apply and the mean number of
// commits per transaction.
func BenchmarkApply(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run("writers="+strconv.Itoa(writers), func(b *testing.B) {
			benchmarkApply(b, writers, 1, nil, false)
		})
	}
}

// BenchmarkApplyNoSync measures the committer's own work, without the
// fsync that dominates BenchmarkApply: commits of 1 and 8 puts, each over
// an existing ~100-byte record, from 1 and 16 concurrent writers.
func BenchmarkApplyNoSync(b *testing.B) {
	for _, ops := range []int{1, 8} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("ops=%d/writers=%d", ops, writers), func(b *testing.B) {
				benchmarkApply(b, writers, ops, &boltstore.Options{NoSync: true}, true)
			})
		}
	}
}

// benchmarkApply runs b.N commits of opsPerCommit puts each from writers
// goroutines on a store opened with opts. With prefill, every record
// exists before the timer starts, so every put replaces a value.
func benchmarkApply(b *testing.B, writers, opsPerCommit int, opts *boltstore.Options, prefill bool) {
	ctx := context.Background()
	s, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	// Ids are prepared up front; 10,000 distinct ones make a mix of
	// inserts and updates once the benchmark runs long enough.
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("product-%05d", i)
	}
	if prefill {
		for chunk := range slices.Chunk(ids, 1000) {
			ops := make([]protocol.Op, len(chunk))
			for i, id := range chunk {
				ops[i] = protocol.Op{Op: protocol.OpPut, ID: id, Value: benchValue}
			}
			if _, err := s.Apply(ctx, "bench", ops, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	var (
		next      atomic.Int64
		wg        sync.WaitGroup
		latencies = make([][]time.Duration, writers)
		failed    atomic.Pointer[error]
	)
	before := s.Stats()
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, b.N/writers+1)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					break
				}
				ops := make([]protocol.Op, opsPerCommit)
				for k := range ops {
					id := ids[(i*int64(opsPerCommit)+int64(k))%int64(len(ids))]
					ops[k] = protocol.Op{Op: protocol.OpPut, ID: id, Value: benchValue}
				}
				t0 := time.Now()
				if _, err := s.Apply(ctx, "bench", ops, nil); err != nil {
					failed.CompareAndSwap(nil, &err)
					break
				}
				lat = append(lat, time.Since(t0))
			}
			latencies[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}

	all := slices.Concat(latencies...)
	slices.Sort(all)
	p99 := all[min(len(all)-1, len(all)*99/100)]
	after := s.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	if n := after.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(after.Commits-before.Commits)/float64(n), "commits/batch")
	}
}
