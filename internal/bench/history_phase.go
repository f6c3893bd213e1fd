package bench

// The phases of the history scenario: their readers at once, while the
// server's memory is sampled.

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// historyPhase is the result of one phase.
type historyPhase struct {
	Name       string `json:"name"`
	Collection string `json:"collection"`
	// How the readers read: "get" (pages of changes), "sse" or "ws".
	How     string `json:"how"`
	Readers int    `json:"readers"`
	// Head is the version each reader reads to, from 0.
	Head    uint64  `json:"head"`
	Seconds float64 `json:"seconds"`
	// Finished readers reached the head. InOrder ones got every commit
	// 1..Head exactly once, in order; CaughtUp ones reached it through a
	// catch-up or reset, without a commit missing or repeated besides.
	Finished int `json:"finished"`
	InOrder  int `json:"in_order"`
	CaughtUp int `json:"caught_up"`
	// Commits is how many commits the readers received, in all; Missing
	// and Duplicated the ones skipped without a catch-up and received
	// again.
	Commits    int64 `json:"commits"`
	Missing    int64 `json:"missing"`
	Duplicated int64 `json:"duplicated"`
	CatchUps   int64 `json:"catch_ups"`
	Resets     int64 `json:"resets"`
	// Busy counts the times a reader was sent away to come back later
	// (503 unavailable, an SSE "unavailable" error event, a WebSocket
	// close 1013) and retried from its cursor; Errors the other failed
	// requests and stream ends, retried after a second.
	Busy      int64  `json:"busy_retries"`
	Errors    int64  `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// Requests counts the GETs, or the connections of the subscribers;
	// Bytes what they read.
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
	// Memory is the server's memory during the phase; nil when it was not
	// read.
	Memory *phaseMemory `json:"memory,omitempty"`
}

// phaseMemory is the server's anonymous memory (RssAnon) during a phase.
type phaseMemory struct {
	PID int `json:"pid"`
	// BeforeBytes is read just before the phase, PeakBytes the highest
	// sample during it; AddedBytes is the difference.
	BeforeBytes uint64 `json:"before_bytes"`
	PeakBytes   uint64 `json:"peak_bytes"`
	AddedBytes  uint64 `json:"added_bytes"`
	Samples     int64  `json:"samples"`
}

// phaseSpec says what one phase does.
type phaseSpec struct {
	name string
	hist *historyWrite
	// how is "get", "sse" or "ws".
	how     string
	readers int
}

// runHistoryPhase runs one phase: its readers at once, each from version
// 0 to the head, while the server's memory is sampled.
func runHistoryPhase(ctx context.Context, t *benchTarget, c *historyConfig, spec phaseSpec, pid int, stderr io.Writer) *historyPhase {
	h := spec.hist
	ph := &historyPhase{Name: spec.name, Collection: h.Collection, How: spec.how, Readers: spec.readers, Head: h.Head}
	sleepFor(ctx, c.settle)
	fmt.Fprintf(stderr, "bench: phase %s: %d %s reading %s from version 0 to %d\n", ph.Name, ph.Readers, readersText(spec.how, spec.readers), h.Collection, h.Head)
	var mem *anonSampler
	if pid > 0 {
		var err error
		if mem, err = startAnonSampler(pid, historySampleEvery); err != nil {
			fmt.Fprintf(stderr, "bench: phase %s: memory not measured: %v\n", ph.Name, err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, c.phaseTimeout)
	defer cancel()
	readers := make([]*historyReader, spec.readers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range readers {
		r := &historyReader{target: t, coll: h.Collection, head: h.Head, epoch: h.Epoch}
		readers[i] = r
		wg.Go(func() {
			switch spec.how {
			case "get":
				hc := &http.Client{Transport: &http.Transport{DialContext: t.dialer.dial, DisableCompression: true}}
				defer hc.CloseIdleConnections()
				r.run(pctx, func(ctx context.Context) (time.Duration, bool, error) { return r.getPage(ctx, hc) })
			case "ws":
				r.run(pctx, r.readWS)
			default:
				r.run(pctx, r.readSSE)
			}
		})
	}
	prog := startTicker(stderr, t, func(_, _ time.Duration) string {
		lo, hi, done, busy := h.Head, uint64(0), 0, int64(0)
		for _, r := range readers {
			at := r.at.Load()
			lo, hi = min(lo, at), max(hi, at)
			if r.done.Load() {
				done++
			}
			busy += r.busy.Load()
		}
		line := fmt.Sprintf("%s: readers at versions %d to %d of %d, %d/%d done, busy retries %d", ph.Name, lo, hi, h.Head, done, len(readers), busy)
		if mem != nil {
			last, peak := mem.now()
			line += fmt.Sprintf("  server RssAnon %s (peak +%s)", mib(last), mib(peak-mem.before))
		}
		return line
	})
	wg.Wait()
	elapsed := time.Since(start)
	prog.stop()
	if mem != nil {
		ph.Memory = mem.stop()
	}
	// To the microsecond: a short phase does not round to nothing.
	ph.Seconds = math.Round(elapsed.Seconds()*1e6) / 1e6
	for _, r := range readers {
		if r.done.Load() {
			ph.Finished++
			switch {
			case r.missing > 0 || r.dups > 0:
			case r.catchUps > 0 || r.resets > 0:
				ph.CaughtUp++
			case r.commits == int64(h.Head):
				ph.InOrder++
			}
		}
		ph.Commits += r.commits
		ph.Missing += r.missing
		ph.Duplicated += r.dups
		ph.CatchUps += r.catchUps
		ph.Resets += r.resets
		ph.Busy += r.busy.Load()
		ph.Errors += r.errs
		ph.Requests += r.requests
		ph.Bytes += r.bytes
		if r.lastErr != nil {
			ph.LastError = r.lastErr.Error()
		}
	}
	added := "not measured"
	if ph.Memory != nil {
		added = "+" + mib(ph.Memory.AddedBytes) + " at its peak"
	}
	fmt.Fprintf(stderr, "bench: phase %s done in %.1fs: %d/%d readers at the head; server memory %s\n", ph.Name, elapsed.Seconds(), ph.Finished, ph.Readers, added)
	return ph
}

// readersText names count readers that read how.
func readersText(how string, count int) string {
	s := map[string]string{"get": "client paging GET /changes", "sse": "SSE subscriber", "ws": "WebSocket subscriber"}[how]
	if count == 1 {
		return s
	}
	if how == "get" {
		return "clients paging GET /changes"
	}
	return s + "s"
}

// anonSampler reads a process's RssAnon every so often, keeping the peak.
type anonSampler struct {
	pid    int
	before uint64
	// last and peak are written by the sampling goroutine only.
	last, peak atomic.Uint64
	samples    atomic.Int64
	done       chan struct{}
	wg         sync.WaitGroup
}

// startAnonSampler reads pid's memory now, as the figure before, and then
// every interval until stop.
func startAnonSampler(pid int, every time.Duration) (*anonSampler, error) {
	before, err := readAnon(pid)
	if err != nil {
		return nil, err
	}
	s := &anonSampler{pid: pid, before: before, done: make(chan struct{})}
	s.sample(before)
	s.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
			if v, err := readAnon(s.pid); err == nil {
				s.sample(v)
			}
		}
	})
	return s, nil
}

func (s *anonSampler) sample(v uint64) {
	s.last.Store(v)
	s.peak.Store(max(s.peak.Load(), v))
	s.samples.Add(1)
}

// now returns the last sample and the peak so far.
func (s *anonSampler) now() (last, peak uint64) { return s.last.Load(), s.peak.Load() }

// stop ends the sampling, takes a last sample and returns the figures.
func (s *anonSampler) stop() *phaseMemory {
	close(s.done)
	s.wg.Wait()
	if v, err := readAnon(s.pid); err == nil {
		s.sample(v)
	}
	m := &phaseMemory{PID: s.pid, BeforeBytes: s.before, PeakBytes: s.peak.Load(), Samples: s.samples.Load()}
	m.AddedBytes = m.PeakBytes - m.BeforeBytes
	return m
}
