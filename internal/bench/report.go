package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"text/tabwriter"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method; 0 when sorted is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// latencySummary is the distribution of commit → receipt latencies.
type latencySummary struct {
	Samples int     `json:"samples"`
	P50ms   float64 `json:"p50_ms"`
	P90ms   float64 `json:"p90_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// summarize sorts samples and summarises them.
func summarize(samples []time.Duration) latencySummary {
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	s := latencySummary{Samples: len(samples)}
	if len(samples) > 0 {
		s.P50ms, s.P90ms, s.P99ms = ms(percentile(samples, 50)), ms(percentile(samples, 90)), ms(percentile(samples, 99))
		s.MaxMs = ms(samples[len(samples)-1])
	}
	return s
}

// latencyRow formats a latency summary for a report.
func latencyRow(l latencySummary) string {
	return fmt.Sprintf("p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  (%d samples)", l.P50ms, l.P90ms, l.P99ms, l.MaxMs, l.Samples)
}

// reportHead starts every report.
type reportHead struct {
	Scenario string `json:"scenario"`
	// Transport is how the subscribers connect; none in the scenarios of
	// plain requests.
	Transport string `json:"transport,omitempty"`
	// URL is the server's; Spawned says the bench started it.
	URL     string `json:"url"`
	Spawned bool   `json:"spawned"`
}

// reportRow is one line of a report table.
type reportRow struct{ name, value string }

// printReport writes v as indented JSON, or rows as a table.
func printReport(w io.Writer, asJSON bool, v any, rows []reportRow) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r.name, r.value)
	}
	return tw.Flush()
}

// mib formats bytes as MiB.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// sizeText formats a size in bytes, in KiB or MiB from 1 KiB.
func sizeText(b int) string {
	switch {
	case b >= 1<<20:
		return mib(uint64(b))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", b)
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// rate returns n per second over d, rounded; 0 for an empty d.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round3(float64(n) / d.Seconds())
}

// opsServer is a spawned server's figures over a measured window of
// requests.
type opsServer struct {
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUMicrosPerOp is CPUSeconds over the window's operations, in µs.
	CPUMicrosPerOp float64 `json:"cpu_us_per_op"`
	RSSBytes       uint64  `json:"rss_bytes"`
	PeakRSSBytes   uint64  `json:"peak_rss_bytes"`
}

// serverFigures makes the report of a window that cost cpu and ended at
// after.
func serverFigures(pid int, cpu time.Duration, after procStats, ops int64) *opsServer {
	s := &opsServer{PID: pid, CPUSeconds: round3(cpu.Seconds()), RSSBytes: after.rss, PeakRSSBytes: after.hwm}
	if ops > 0 {
		s.CPUMicrosPerOp = round3(float64(cpu.Microseconds()) / float64(ops))
	}
	return s
}

// rows returns the server's lines of a report; per names the operation
// the CPU time is spread over.
func (s *opsServer) rows(per string) []reportRow {
	if s == nil {
		return nil
	}
	return []reportRow{
		{"server CPU", fmt.Sprintf("%.2fs (pid %d): %.2f µs per %s", s.CPUSeconds, s.PID, s.CPUMicrosPerOp, per)},
		{"server memory", fmt.Sprintf("RSS %s, peak %s", mib(s.RSSBytes), mib(s.PeakRSSBytes))},
	}
}

// periodic is a goroutine doing something at intervals until stopped.
type periodic struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// startPeriodic calls do every interval from now until stop.
func startPeriodic(every time.Duration, do func()) *periodic {
	at := time.Now()
	return startLoop(func() time.Time { at = at.Add(every); return at }, func(time.Time) { do() })
}

// startEverySlot calls do at the end of each tick slot until stop, with
// the slot's end.
func startEverySlot(do func(end time.Time)) *periodic {
	return startLoop(func() time.Time { return time.Now().Truncate(tickEvery).Add(tickEvery) }, do)
}

// startLoop calls do at each time next returns, until stop; do's next
// call waits for the one before.
func startLoop(next func() time.Time, do func(at time.Time)) *periodic {
	p := &periodic{done: make(chan struct{})}
	p.wg.Go(func() {
		for {
			at := next()
			timer := time.NewTimer(time.Until(at))
			select {
			case <-p.done:
				timer.Stop()
				return
			case <-timer.C:
			}
			do(at)
		}
	})
	return p
}

// stop ends the calls and waits for the last; it may be called more than
// once.
func (p *periodic) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

// startTicker prints line's text to w every second, followed by the
// spawned server's CPU use and memory, until stop.
func startTicker(w io.Writer, t *benchTarget, line func(elapsed, since time.Duration) string) *periodic {
	start := time.Now()
	prevCPU, cpuErr := t.serverStats()
	prevAt := start
	return startPeriodic(time.Second, func() {
		now := time.Now()
		s := "bench: " + fmt.Sprintf("%4.0fs  ", now.Sub(start).Seconds()) + line(now.Sub(start), now.Sub(prevAt))
		if cpuErr == nil {
			if st, err := t.serverStats(); err == nil {
				s += fmt.Sprintf("  server CPU %.0f%% RSS %s", 100*(st.cpu-prevCPU.cpu).Seconds()/now.Sub(prevAt).Seconds(), mib(st.rss))
				prevCPU = st
			}
		}
		fmt.Fprintln(w, s)
		prevAt = now
	})
}

// startRateTicker prints, each second, what the workers did (head, given
// their successes so far), their rate since the last line, and their
// errors.
func startRateTicker(w io.Writer, t *benchTarget, head func(ok int64) string, ws []*workerStats) *periodic {
	var prev int64
	return startTicker(w, t, func(_, since time.Duration) string {
		ok, errs := sumOK(ws)
		line := fmt.Sprintf("%s (%.0f/s)  errors %d", head(ok), rate(ok-prev, since), errs)
		prev = ok
		return line
	})
}

// reportTail appends the last lines of a report of requests: the last
// error, if any; the spawned server's figures, its CPU time per the
// operation per names; this process's CPU time.
func reportTail(rows []reportRow, lastErr string, s *opsServer, per string, loaderCPU float64) []reportRow {
	if lastErr != "" {
		rows = append(rows, reportRow{"last error", lastErr})
	}
	rows = append(rows, s.rows(per)...)
	return append(rows, reportRow{"loader CPU", fmt.Sprintf("%.2fs", loaderCPU)})
}

// sleepFor sleeps for d or until ctx ends.
func sleepFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
