package fanout_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// BenchmarkPublishViews publishes commits to a collection with 10, 1,000
// or 10,000 views of one subscriber each. Commit i puts the record of
// owner u(i mod views), so each commit concerns one view. With
// "equality" filters ({"owner":"uK"}) the index finds that view; with
// "range" filters ({"n":{"$gte":K,"$lt":K+1}}, the same rows) every view
// is matched against the commit: the cost the index saves.
//
// Metrics: ns/op is per commit, until its view's subscriber has it;
// publish-ns/op is the publisher's own cost (routing and restricting).
func BenchmarkPublishViews(b *testing.B) {
	for _, kind := range []string{"equality", "range"} {
		for _, n := range []int{10, 1000, 10000} {
			if kind == "range" && n > 1000 {
				continue // linear in the views: the trend shows by 1,000
			}
			b.Run(fmt.Sprintf("filter=%s/views=%d", kind, n), func(b *testing.B) { benchPublishViews(b, kind, n) })
		}
	}
}

// viewFilter returns view k's filter of the given kind.
func viewFilter(kind string, k int) *filter.Filter {
	if kind == "range" {
		return filter.MustParse(fmt.Sprintf(`{"n":{"$gte":%d,"$lt":%d}}`, k, k+1))
	}
	return filter.MustParse(fmt.Sprintf(`{"owner":"u%d"}`, k))
}

func benchPublishViews(b *testing.B, kind string, n int) {
	st := memstore.New(nil)
	defer st.Close()
	br := fanout.New(st, nil)
	defer br.Close()
	first := apply(b, st, put("seed", `0`))

	var delivered, others atomic.Int64
	var wg sync.WaitGroup
	for k := range n {
		s, err := br.SubscribeView(coll, viewFilter(kind, k), &protocol.Cursor{Epoch: first.Epoch, Version: 1})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer s.Close()
			for {
				ev, err := s.Next(context.Background())
				if err != nil {
					return
				}
				if ev.Kind == fanout.EventCommits {
					for _, f := range ev.Frames {
						_ = f.Encoding(benchEncoder{})
					}
					delivered.Add(int64(len(ev.Frames)))
				} else {
					others.Add(1)
				}
			}
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
	seq := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(benchChunk, b.N-done)
		b.StopTimer()
		aps = aps[:0]
		for range k {
			owner := seq % n
			aps = append(aps, apply(b, st, put(fmt.Sprintf("o%d", owner), fmt.Sprintf(`{"owner":"u%d","n":%d,"price":1234}`, owner, owner))))
			seq++
		}
		b.StartTimer()
		start := time.Now()
		for _, ap := range aps {
			publish(br, ap)
		}
		publishing += time.Since(start)
		done += k
		for delivered.Load() < int64(done) && others.Load() == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	br.Close()
	wg.Wait()
	b.ReportMetric(float64(publishing.Nanoseconds())/float64(b.N), "publish-ns/op")
	if others.Load() != 0 {
		b.Errorf("%d catch-ups or resets: a view's subscriber fell behind", others.Load())
	}
	if delivered.Load() != int64(b.N) {
		b.Errorf("delivered %d commits, want %d (one view each)", delivered.Load(), b.N)
	}
}
