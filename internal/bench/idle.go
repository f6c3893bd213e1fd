package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
)

// idleConfig holds the flags of 'viewsync bench idle'.
type idleConfig struct {
	benchCommon
	meas        benchRunsFlags
	connections int
	settle      time.Duration
}

func benchIdle(ctx context.Context, cmd *Command, args []string, stdout, stderr io.Writer) error {
	c := &idleConfig{benchCommon: newBenchCommon(cmd)}
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs)
	c.meas.register(fs)
	fs.IntVar(&c.connections, "connections", 1000, "idle subscriptions, each on a connection of its own")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "wait before each memory reading, for the server to settle")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: viewsync bench idle [flags]

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
`)
		fs.PrintDefaults()
	}
	if err := parseBenchFlags(fs, &c.benchCommon, args); err != nil {
		return err
	}
	if err := c.meas.validate(); err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	if c.connections <= 0 {
		return fmt.Errorf("%w: --connections must be positive", cliflag.ErrBadFlag)
	}
	if c.settle < 0 {
		return fmt.Errorf("%w: --settle must not be negative", cliflag.ErrBadFlag)
	}
	return runIdle(ctx, c, stdout, stderr)
}

// idleReport is the result of an idle run.
type idleReport struct {
	Scenario     string  `json:"scenario"`
	Transport    string  `json:"transport"`
	URL          string  `json:"url"`
	Spawned      bool    `json:"spawned"`
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

	// Runs is how many times it was measured: the figures above are the
	// medians of the runs' (the errors their sum), Min and Max (with more
	// than one run) the least and the greatest.
	Runs int         `json:"runs" runs:"-"`
	Min  *idleReport `json:"min,omitempty" runs:"-"`
	Max  *idleReport `json:"max,omitempty" runs:"-"`
	// Loaders is how many processes held the connections.
	Loaders int `json:"loaders" runs:"-"`
	// Baseline is the same measurement of the raw broadcaster (--baseline)
	// and Ratio each figure over the baseline's.
	Baseline *idleReport `json:"baseline,omitempty" runs:"-"`
	Ratio    *idleRatio  `json:"ratio_to_baseline,omitempty" runs:"-"`
}

func runIdle(ctx context.Context, c *idleConfig, stdout, stderr io.Writer) error {
	loaders := chooseLoaders(c.meas.loaders, c.connections)
	reps, bases, traces, problems, err := measureRuns(ctx, c.meas, loaders, func(m measurement) (*idleReport, *runTrace, []string, error) {
		rep, tr, problem, err := idleOnce(ctx, c, m, stderr)
		if err != nil || problem == nil {
			return rep, tr, nil, err
		}
		return rep, tr, []string{problem.Error()}, nil
	})
	if err != nil {
		return err
	}
	rep := aggregateIdle(reps, c.meas.runs, loaders)
	if c.meas.baseline {
		rep.Baseline = aggregateIdle(bases, c.meas.runs, loaders)
		rep.Ratio = idleRatios(rep, rep.Baseline)
	}
	if err := writeChart(c.meas.plot, stderr, func() (string, string, []plotPanel) { return idlePlot(c, rep, traces) }); err != nil {
		return err
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// aggregateIdle returns the median of the runs' reports, with their least
// and greatest figures when there is more than one.
func aggregateIdle(reps []*idleReport, runs, loaders int) *idleReport {
	med, lo, hi := aggregate(reps)
	med.Runs, med.Loaders = runs, loaders
	if len(reps) > 1 {
		med.Min, med.Max = lo, hi
	}
	return med
}

// idleOnce measures the idle connections once: against a fresh spawned
// server (or the one at --url), or with m.baseline against a fresh raw
// broadcaster. problem is what went wrong in a run that was measured.
func idleOnce(ctx context.Context, c *idleConfig, m measurement, stderr io.Writer) (rep *idleReport, tr *runTrace, problem, err error) {
	var t *benchTarget
	if m.baseline {
		t, err = openBaseline(ctx, &c.benchCommon, c.connections, stderr)
	} else {
		t, err = openTarget(ctx, &c.benchCommon, c.connections, stderr)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	defer t.close()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	if _, err := getHead(ctx, client, t.base, c.collection); err != nil {
		return nil, nil, nil, err
	}
	client.CloseIdleConnections()

	rep = &idleReport{Scenario: "idle", Transport: c.transport, URL: t.base, Spawned: t.server != nil, Connections: c.connections}
	sleepFor(ctx, c.settle)
	before, srvErr := t.serverStats()

	start := time.Now()
	groups, err := startGroups(ctx, t, &c.benchCommon, c.connections, m.loaders, false, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		for _, g := range groups {
			g.kill()
		}
	}()
	var sent atomic.Int64
	mon := startMonitor(stderr, m.label(c.meas.baseline), t, groups, c.connections, &sent)
	defer mon.stop()
	rep.Established, rep.SetupSeconds = waitGroups(ctx, groups, c.setupTimeout, start)
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
	mon.stop()
	res, ferr := finishGroups(groups)
	if ferr != nil {
		return nil, nil, nil, ferr
	}
	rep.Errors, rep.LastError = res.Errors, res.LastError
	tr = &runTrace{measurement: m, start: start, end: end, ticks: mergeTicks(groups), server: mon.samples()}
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

// idleFigure is one line of the comparison with the baseline.
type idleFigure struct {
	name string
	get  func(*idleReport) float64
	unit func(float64) string
	set  func(*idleRatio, float64)
}

var idleFigures = func() []idleFigure {
	mibf := func(f float64) string { return mib(uint64(f)) }
	return []idleFigure{
		{"RSS per connection", func(r *idleReport) float64 { return r.RSSPerConnectionBytes }, func(f float64) string { return fmt.Sprintf("%.1f KiB", f/1024) }, func(q *idleRatio, v float64) { q.RSSPerConnection = v }},
		{"server RSS after", func(r *idleReport) float64 { return float64(r.RSSAfterBytes) }, mibf, func(q *idleRatio, v float64) { q.RSSAfter = v }},
		{"server peak RSS", func(r *idleReport) float64 { return float64(r.PeakRSSBytes) }, mibf, func(q *idleRatio, v float64) { q.PeakRSS = v }},
		{"connects/s", func(r *idleReport) float64 { return r.ConnectsPerSec }, func(f float64) string { return fmt.Sprintf("%.0f", f) }, func(q *idleRatio, v float64) { q.ConnectsPerSec = v }},
		{"server CPU, setup", func(r *idleReport) float64 { return r.SetupCPUSeconds }, func(f float64) string { return fmt.Sprintf("%.2fs", f) }, func(q *idleRatio, v float64) { q.SetupCPUSeconds = v }},
	}
}()

// idleRatios returns r's figures over the baseline's.
func idleRatios(r, base *idleReport) *idleRatio {
	q := &idleRatio{}
	for _, f := range idleFigures {
		f.set(q, ratio(f.get(r), f.get(base)))
	}
	return q
}

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
		var cmp [][4]string
		for _, f := range idleFigures {
			v, bv := f.get(r), f.get(b)
			cmp = append(cmp, [4]string{f.name, f.unit(v), f.unit(bv), ratioText(ratio(v, bv))})
		}
		rows = append(rows, compareRows("vs baseline", cmp)...)
	}
	return rows
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
