package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

const idleUsage = `Usage: viewsync bench idle [flags]

Opens --connections idle subscriptions to --collection (each gets its reset,
then nothing more), waits until all are established, and reports the
server's resident memory (VmRSS) before and after, and per connection. The
memory figures need --spawn; with --url only the setup is measured.

--runs K measures K times, each against a fresh spawned server, and
reports the median of each figure. --baseline also measures, the same way,
a minimal raw broadcaster spawned as the machine's ceiling, and prints each
figure also as a ratio to it. Connections past what this process may hold
(or --loaders N) are spread over loader processes. --plot FILE.svg draws
the connections and the server's memory over the run.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_CONNECTIONS):
`

// idleConfig holds the flags of 'viewsync bench idle'.
type idleConfig struct {
	benchCommon
	meas        benchRunsFlags
	connections int
	settle      time.Duration
}

// register registers the flags of 'viewsync bench idle' besides the
// common ones.
func (c *idleConfig) register(fs *flag.FlagSet) {
	c.registerSubscribers(fs)
	c.meas.register(fs)
	fs.IntVar(&c.connections, "connections", 1000, "idle subscriptions, each on a connection of its own")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "wait before each memory reading, for the server to settle")
}

// check checks the flags once parsed.
func (c *idleConfig) check(*flag.FlagSet) error {
	return checkFlags(append(c.meas.checks(),
		check{c.connections <= 0, "--connections must be positive"},
		check{c.settle < 0, "--settle must not be negative"})...)
}

// idleReport is the result of an idle run.
type idleReport struct {
	reportHead
	Connections  int     `json:"connections"`
	Established  int     `json:"established"`
	SetupSeconds float64 `json:"setup_seconds"`
	// ConnectsPerSec is the rate of the setup.
	ConnectsPerSec float64 `json:"connects_per_second"`
	Errors         int64   `json:"errors" runs:"sum"`
	LastError      string  `json:"last_error,omitempty" runs:"last"`

	// The server's memory (--spawn only): resident before the
	// connections and once they are established, the difference per
	// connection, the peak; and its CPU time setting them up.
	RSSBeforeBytes        uint64  `json:"rss_before_bytes,omitempty"`
	RSSAfterBytes         uint64  `json:"rss_after_bytes,omitempty"`
	RSSPerConnectionBytes float64 `json:"rss_per_connection_bytes,omitempty"`
	PeakRSSBytes          uint64  `json:"peak_rss_bytes,omitempty"`
	SetupCPUSeconds       float64 `json:"setup_cpu_seconds,omitempty"`

	runsOf[idleReport, idleRatio] `runs:"-"`
}

// run runs the scenario.
func (c *idleConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	return runMeasured(ctx, &c.benchCommon, c.meas, c.connections, func(m measurement) (*idleReport, *runTrace, []string, error) {
		rep, tr, problem, err := idleOnce(ctx, c, m, stderr)
		if err != nil || problem == nil {
			return rep, tr, nil, err
		}
		return rep, tr, []string{problem.Error()}, nil
	}, func(rep *idleReport, traces []*runTrace) (string, string, []plotPanel) {
		return idlePlot(c, rep, traces)
	}, idleFigures, "\n", stdout, stderr)
}

// idleOnce measures the idle connections once: against a fresh spawned
// server (or the one at --url), or with m.baseline against a fresh raw
// broadcaster. problem is what went wrong in a run that was measured.
func idleOnce(ctx context.Context, c *idleConfig, m measurement, stderr io.Writer) (rep *idleReport, tr *runTrace, problem, err error) {
	t, err := openRun(ctx, &c.benchCommon, m, c.connections, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer t.close()
	client := t.keepAliveClient(1)
	if _, err := getHead(ctx, client, t.base, c.collection); err != nil {
		return nil, nil, nil, err
	}
	client.CloseIdleConnections()

	rep = &idleReport{reportHead: t.head("idle", c.transport), Connections: c.connections}
	sleepFor(ctx, c.settle)
	before, srvErr := t.serverStats()

	start := time.Now()
	load, established, setup, err := startLoad(ctx, t, &c.benchCommon, c.meas, m, c.connections, false, start, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer load.stop()
	rep.Established, rep.SetupSeconds = established, setup
	if rep.SetupSeconds > 0 {
		rep.ConnectsPerSec = round3(float64(rep.Established) / rep.SetupSeconds)
	}
	setupCPU, _ := t.serverStats()
	sleepFor(ctx, c.settle)
	if ctx.Err() != nil {
		return nil, nil, nil, ctx.Err()
	}
	after, err := t.serverStats()
	end := time.Now()
	if srvErr == nil && err == nil {
		rep.RSSBeforeBytes, rep.RSSAfterBytes, rep.PeakRSSBytes = before.rss, after.rss, after.hwm
		rep.SetupCPUSeconds = round3((setupCPU.cpu - before.cpu).Seconds())
		if rep.Established > 0 {
			rep.RSSPerConnectionBytes = round3((float64(after.rss) - float64(before.rss)) / float64(rep.Established))
		}
	}
	res, tr, ferr := load.finish(m, start, end)
	if ferr != nil {
		return nil, nil, nil, ferr
	}
	rep.Errors, rep.LastError = res.Errors, res.LastError
	switch {
	case rep.Established < rep.Connections:
		problem = fmt.Errorf("%d of %d connections established", rep.Established, rep.Connections)
	case rep.Spawned && (srvErr != nil || err != nil):
		problem = errors.Join(srvErr, err)
	}
	return rep, tr, problem, nil
}

// idleRatio is each figure of viewsync's idle connections over the
// baseline's (medians over the runs); 0 where the baseline's is 0 or
// unknown.
type idleRatio struct {
	RSSPerConnection float64 `json:"rss_per_connection"`
	RSSAfter         float64 `json:"rss_after"`
	PeakRSS          float64 `json:"peak_rss"`
	ConnectsPerSec   float64 `json:"connects_per_second"`
	SetupCPUSeconds  float64 `json:"setup_cpu_seconds"`
}

// idleFigures are the figures compared with the baseline's.
var idleFigures = func() []figure[idleReport, idleRatio] {
	mibf := func(f float64) string { return mib(uint64(f)) }
	return []figure[idleReport, idleRatio]{
		{"RSS per connection", func(r *idleReport) float64 { return r.RSSPerConnectionBytes }, func(f float64) string { return fmt.Sprintf("%.1f KiB", f/1024) }, func(q *idleRatio, v float64) { q.RSSPerConnection = v }},
		{"server RSS after", func(r *idleReport) float64 { return float64(r.RSSAfterBytes) }, mibf, func(q *idleRatio, v float64) { q.RSSAfter = v }},
		{"server peak RSS", func(r *idleReport) float64 { return float64(r.PeakRSSBytes) }, mibf, func(q *idleRatio, v float64) { q.PeakRSS = v }},
		{"connects/s", func(r *idleReport) float64 { return r.ConnectsPerSec }, func(f float64) string { return fmt.Sprintf("%.0f", f) }, func(q *idleRatio, v float64) { q.ConnectsPerSec = v }},
		{"server CPU, setup", func(r *idleReport) float64 { return r.SetupCPUSeconds }, func(f float64) string { return fmt.Sprintf("%.2fs", f) }, func(q *idleRatio, v float64) { q.SetupCPUSeconds = v }},
	}
}()

func (r *idleReport) rows() []reportRow {
	rows := []reportRow{
		{"scenario", fmt.Sprintf("idle over %s, %s", r.Transport, r.URL)},
		{"connections", fmt.Sprintf("%d of %d established in %.1fs (%.0f/s); errors %d", r.Established, r.Connections, r.SetupSeconds, r.ConnectsPerSec, r.Errors)},
	}
	if r.LastError != "" {
		rows = append(rows, reportRow{"last error", r.LastError})
	}
	if r.Spawned {
		rows = append(rows,
			reportRow{"server RSS before", mib(r.RSSBeforeBytes)},
			reportRow{"server RSS after", mib(r.RSSAfterBytes)},
			reportRow{"RSS per connection", fmt.Sprintf("%.1f KiB", r.RSSPerConnectionBytes/1024)},
			reportRow{"server peak RSS", mib(r.PeakRSSBytes)},
			reportRow{"server CPU, setup", fmt.Sprintf("%.2fs", r.SetupCPUSeconds)})
	}
	if r.Loaders > 1 {
		rows = append(rows, reportRow{"loaders", fmt.Sprintf("%d processes held the connections", r.Loaders)})
	}
	if r.Runs > 1 {
		rows = append(rows, reportRow{"runs", fmt.Sprintf("%d, each on a fresh server: the figures are medians (errors: totals; min and max in --json)", r.Runs)})
	}
	if b := r.Baseline; b != nil {
		rows = append(rows, reportRow{"baseline", fmt.Sprintf("raw broadcaster (no store) at %s: %d of %d established; errors %d", b.URL, b.Established, b.Connections, b.Errors)})
		rows = append(rows, compareRows(idleFigures, r, b)...)
	}
	return rows
}
