package natskv_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/natskv"
)

// benchValue is a record value of about 100 bytes.
var benchValue = json.RawMessage(`{"name":"Widget, large","sku":"WX-000123","price":1299,"stock":42,"tags":["hardware","outdoor"]}`)

// BenchmarkApply measures durable commits (one put of a ~100-byte value
// each) against an in-process server with file storage and fsync on every
// write, with 1, 16 and 64 concurrent writers. It reports commits per
// second and the 99th percentile latency of one Apply.
func BenchmarkApply(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run("writers="+strconv.Itoa(writers), func(b *testing.B) {
			benchmarkApply(b, writers, natskv.Options{})
		})
	}
}

// BenchmarkApplyIndexed is BenchmarkApply with 16 writers and a record
// index of 1,000 records (Options.RecordIndex) for the 10,000 the
// writers cycle through: each commit replaces a record the store no
// longer knows, which the committer reads from the stream first, one
// request a batch.
//
//	go test -run '^$' -bench BenchmarkApplyIndexed -benchtime 20000x ./store/natskv/
func BenchmarkApplyIndexed(b *testing.B) {
	benchmarkApply(b, 16, natskv.Options{RecordIndex: 1000})
}

func benchmarkApply(b *testing.B, writers int, opts natskv.Options) {
	srv := startServer(b, serverOptions(b.TempDir()))
	s := openStore(b, srv.ClientURL(), opts)
	ctx := b.Context()
	if _, err := s.Head(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("product-%05d", i)
	}
	var (
		next      atomic.Int64
		wg        sync.WaitGroup
		latencies = make([][]time.Duration, writers)
		failed    atomic.Pointer[error]
	)
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
				ops := []protocol.Op{{Op: protocol.OpPut, ID: ids[i%int64(len(ids))], Value: benchValue}}
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}
