package bench

import (
	"context"
	"sync"
	"time"
)

// openLoop calls send(i) for i = 0, 1, … at rate calls a second for
// duration, in open loop: each call runs in a goroutine of its own at its
// planned time, so that a slow answer delays no later call, with at most
// inflight calls running at once (a call waits for a free slot, not
// skipped). It returns once every call it started has returned, and the
// time from the first planned call until then. A done ctx stops it early.
func openLoop(ctx context.Context, rate float64, duration time.Duration, inflight int, send func(i int)) time.Duration {
	var wg sync.WaitGroup
	slots := make(chan struct{}, max(inflight, 1))
	n := int(rate * duration.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			sleepFor(ctx, d)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			send(i)
		})
	}
	wg.Wait()
	return time.Since(start)
}
