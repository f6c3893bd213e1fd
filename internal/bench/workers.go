package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// workerStats is what a worker making requests, one after the other, did.
type workerStats struct {
	ok, errs atomic.Int64
	// Owned by the worker until it has ended.
	lat     []time.Duration
	lastErr error
}

// loop calls op, which makes one request, until the deadline or ctx's
// end, each call after the one before, and times the successes. seq counts
// the calls; now is the time of the call.
func (w *workerStats) loop(ctx context.Context, deadline time.Time, op func(seq int, now time.Time) error) {
	for seq := 0; ctx.Err() == nil && time.Now().Before(deadline); seq++ {
		now := time.Now()
		if err := op(seq, now); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.errs.Add(1)
			w.lastErr = err
			continue
		}
		w.lat = append(w.lat, time.Since(now))
		w.ok.Add(1)
	}
}

// mergeWorkers adds up the workers' counts and gathers their latencies
// and last error.
func mergeWorkers(ws []*workerStats) (ok, errs int64, lat []time.Duration, lastErr error) {
	for _, w := range ws {
		lat = append(lat, w.lat...)
		if w.lastErr != nil {
			lastErr = w.lastErr
		}
	}
	ok, errs = sumOK(ws)
	return ok, errs, lat, lastErr
}

// sumOK adds up the workers' successes and errors so far.
func sumOK(ws []*workerStats) (ok, errs int64) {
	for _, w := range ws {
		ok += w.ok.Load()
		errs += w.errs.Load()
	}
	return ok, errs
}

// closedLoop is what workers, each in a closed loop for a while, did.
type closedLoop struct {
	ok, errs int64
	latency  latencySummary
	lastErr  string
	elapsed  time.Duration
	// window measures the spawned server since the start; the caller ends
	// it, naming the operations its CPU time is spread over.
	window *serverWindow
	// loaderCPU is this process's CPU time, in seconds.
	loaderCPU float64
}

// runClosedLoop runs n workers against t for d, each looping in work
// until the deadline, and prints their progress, each line headed by head
// (given their successes so far).
func runClosedLoop(ctx context.Context, t *benchTarget, n int, d time.Duration, head func(ok int64) string, stderr io.Writer,
	work func(i int, w *workerStats, deadline time.Time)) (*closedLoop, error) {
	workers := make([]*workerStats, n)
	for i := range workers {
		workers[i] = &workerStats{}
	}
	prog := startRateTicker(stderr, t, head, workers)
	defer prog.stop()
	res := &closedLoop{window: t.beginWindow()}
	selfBefore, _ := readProc("self")
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { work(i, w, deadline) })
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	selfAfter, _ := readProc("self")
	prog.stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lat []time.Duration
	var lastErr error
	res.ok, res.errs, lat, lastErr = mergeWorkers(workers)
	if lastErr != nil {
		res.lastErr = lastErr.Error()
	}
	res.latency = summarize(lat)
	res.loaderCPU = round3((selfAfter.cpu - selfBefore.cpu).Seconds())
	return res, nil
}

// loopError returns the error of a closed loop that did ok operations
// and failed errs (the last failing with lastErr): the failures, named by
// ops; else none, when nothing was done.
func loopError(ok, errs int64, lastErr, ops, none string) error {
	if errs > 0 {
		return fmt.Errorf("%d %s failed; the last: %s", errs, ops, lastErr)
	}
	if ok == 0 {
		return errors.New(none)
	}
	return nil
}

// makeCommits has writers, on keep-alive connections, make total
// commits, the n-th (from 1) a PUT of value(n) to record(n), the record's
// URL, and prints their progress, named by verb ("prepared", "written").
func makeCommits(ctx context.Context, t *benchTarget, writers, total int, verb string,
	record func(n int) string, value func(n int) []byte, stderr io.Writer) *workerStats {
	client := t.keepAliveClient(writers)
	defer client.CloseIdleConnections()
	var (
		next atomic.Int64
		res  workerStats
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	prog := startRateTicker(stderr, t, func(ok int64) string { return fmt.Sprintf("%s %d/%d commits", verb, ok, total) }, []*workerStats{&res})
	defer prog.stop()
	for range writers {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := int(next.Add(1))
				if n > total {
					return
				}
				if _, err := put(ctx, client, record(n), value(n)); err != nil {
					if ctx.Err() != nil {
						return
					}
					res.errs.Add(1)
					mu.Lock()
					res.lastErr = err
					mu.Unlock()
					continue
				}
				res.ok.Add(1)
			}
		})
	}
	wg.Wait()
	return &res
}
