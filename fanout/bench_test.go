package fanout_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// benchChunk is how many commits a benchmark applies to the store, with
// the timer stopped, before publishing them.
const benchChunk = 1024

// benchEncoder encodes a commit as a Server-Sent Event does, for the
// benchmarks' subscribers.
type benchEncoder struct{}

func (benchEncoder) EncodeFrame(f *fanout.Frame) []byte {
	b := make([]byte, 0, len(f.JSON())+len(f.Epoch)+48)
	b = fmt.Appendf(b, "id: %s:%d\nevent: commit\ndata: ", f.Epoch, f.Version())
	b = append(b, f.JSON()...)
	return append(b, "\n\n"...)
}

// applyChunk applies k small commits, each writing one of 100 records.
func applyChunk(b *testing.B, st store.Store, aps []store.Applied, k int) []store.Applied {
	aps = aps[:0]
	for i := range k {
		aps = append(aps, apply(b, st, put(fmt.Sprintf("r%d", i%100), `{"price":1234,"name":"a product"}`)))
	}
	return aps
}

// BenchmarkPublish publishes commits to a collection followed by 1, 100 or
// 1000 subscribers, each taking commits on its own goroutine and writing
// them out (it asks for a wire format's encoding, as a transport would).
//
// Metrics: ns/op and allocs/op are per commit, until every subscriber has
// it (the subscribers' allocations included); publish-ns/op is the
// publisher's own cost; deliveries/s counts commits handed to subscribers;
// sse-B/delivery is what each delivery writes.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { benchPublish(b, n) })
	}
}

func benchPublish(b *testing.B, n int) {
	st := memstore.New(nil)
	defer st.Close()
	br := fanout.New(st, nil)
	defer br.Close()
	first := apply(b, st, put("r0", `0`))

	// Each chunk sets target, the version every subscriber must reach, and
	// remaining; the last subscriber to reach it signals reached.
	var target atomic.Uint64
	var remaining atomic.Int64
	reached := make(chan struct{}, 1)
	var delivered, others, encoded atomic.Int64
	var wg sync.WaitGroup
	for range n {
		s, err := br.Subscribe(coll, &protocol.Cursor{Epoch: first.Epoch, Version: 1})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer s.Close()
			var reported uint64
			written := 0
			for {
				ev, err := s.Next(context.Background())
				if err != nil {
					break
				}
				if ev.Kind == fanout.EventCommits {
					for _, f := range ev.Frames {
						written += len(f.Encoding(benchEncoder{}))
					}
					delivered.Add(int64(len(ev.Frames)))
				} else {
					others.Add(1)
				}
				if tv := target.Load(); s.Cursor().Version >= tv && reported < tv {
					reported = tv
					if remaining.Add(-1) == 0 {
						reached <- struct{}{}
					}
				}
			}
			encoded.Add(int64(written))
		})
	}
	for {
		if _, _, ok := br.BufferRange(coll); ok {
			break
		}
		time.Sleep(time.Millisecond)
	}

	aps := make([]store.Applied, 0, benchChunk)
	var publishing time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(benchChunk, b.N-done)
		b.StopTimer()
		aps = applyChunk(b, st, aps, k)
		target.Store(aps[k-1].Commit.Version)
		remaining.Store(int64(n))
		b.StartTimer()
		start := time.Now()
		for _, ap := range aps {
			publish(br, ap)
		}
		publishing += time.Since(start)
		<-reached
		done += k
	}
	b.StopTimer()
	br.Close()
	wg.Wait()
	b.ReportMetric(float64(publishing.Nanoseconds())/float64(b.N), "publish-ns/op")
	b.ReportMetric(float64(delivered.Load())/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(encoded.Load())/float64(max(1, delivered.Load())), "sse-B/delivery")
	if others.Load() != 0 {
		b.Errorf("%d catch-ups or resets: a subscriber fell behind the buffer", others.Load())
	}
	if want := int64(b.N) * int64(n); delivered.Load() != want {
		b.Errorf("delivered %d commits, want %d", delivered.Load(), want)
	}
}

// BenchmarkNextCoalesced measures taking commits in batches: each op
// publishes batch commits, then one Next returns them all. Metrics:
// ns/commit is the whole cost per commit; next-ns/commit is Next's share,
// which coalescing divides among the batch.
func BenchmarkNextCoalesced(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st := memstore.New(nil)
			defer st.Close()
			br := fanout.New(st, nil)
			defer br.Close()
			first := apply(b, st, put("r0", `0`))
			s, err := br.Subscribe(coll, &protocol.Cursor{Epoch: first.Epoch})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			next(b, s)

			ctx := context.Background()
			per := max(1, benchChunk/batch) // ops per chunk of applied commits
			aps := make([]store.Applied, 0, per*batch)
			var nexting time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				k := min(per, b.N-done)
				b.StopTimer()
				aps = applyChunk(b, st, aps, k*batch)
				b.StartTimer()
				for op := range k {
					for _, ap := range aps[op*batch : (op+1)*batch] {
						publish(br, ap)
					}
					start := time.Now()
					ev, err := s.Next(ctx)
					nexting += time.Since(start)
					if err != nil || len(ev.Frames) != batch {
						b.Fatalf("Next = %s, %v; want %d commits", describe(ev), err, batch)
					}
				}
				done += k
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/commit")
			b.ReportMetric(float64(nexting.Nanoseconds())/float64(b.N*batch), "next-ns/commit")
		})
	}
}
