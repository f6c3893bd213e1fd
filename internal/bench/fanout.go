package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
)

const fanoutUsage = `Usage: viewsync bench fanout [flags]

Connects --subscribers subscribers to --collection (each first gets a
reset), then one writer commits --rate times a second for --duration, each
commit a PUT of a value carrying its send time. Reports deliveries/s, the
commit to receipt latency (receipt time minus the send time in the value:
it includes the commit itself), missing and duplicated commits per
subscriber (both must be 0; catch-ups are counted apart), and with --spawn
the server's CPU time per delivery and its peak memory. A progress line goes
to stderr every second, the report to stdout. Exits 1 when a commit went
missing or twice, a write failed or a subscriber could not connect.

--runs K measures K times, each against a fresh spawned server, and
reports the median of each figure. --baseline also measures, the same way
and after each of viewsync's runs, a minimal raw broadcaster spawned as the
machine's ceiling (pre-encoded frames, no store), and prints each figure
also as a ratio to it. Subscribers past what this process may hold
(or --loaders N) are spread over loader processes; the writer stays here.
--plot FILE.svg draws the latency histogram and the deliveries per second.

--views N measures filtered views: subscriber i subscribes to the view
{"owner":"u<i mod N>"} (so --subscribers must be at least N), and commit j
PUTs the record "o<j mod N>" with owner u<j mod N>, which reaches only that
view's subscribers. Expected deliveries count each subscriber's own view's
commits; a gap in a view (a commit whose "after" is past the subscriber's
cursor) counts as one missing commit. The server CPU per commit is the
figure to compare across N; with --spawn, the server's CPU while idle is
measured for 2 s before the writer starts, and the CPU per commit net of it
is reported too.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_SUBSCRIBERS):
`

// fanoutConfig holds the flags of 'viewsync bench fanout'.
type fanoutConfig struct {
	benchCommon
	meas        benchRunsFlags
	subscribers int
	rate        float64
	duration    time.Duration
	valueSize   cliflag.Size
	drain       time.Duration
	maxInflight int
}

// idleWindow is how long a spawned server's idle CPU is measured before
// the writer starts.
const idleWindow = 2 * time.Second

// writerIDs is how many records the writer cycles through: the collection
// stays small, so that the subscribers' resets are cheap.
const writerIDs = 16

// register registers the flags of 'viewsync bench fanout' besides the
// common ones.
func (c *fanoutConfig) register(fs *flag.FlagSet) {
	c.registerSubscribers(fs)
	c.meas.register(fs)
	fs.IntVar(&c.subscribers, "subscribers", 100, "subscribers, each on a connection of its own")
	fs.Float64Var(&c.rate, "rate", 10, "commits per second of the one writer (each a PUT of one record)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the writer writes")
	registerValueSize(fs, &c.valueSize)
	fs.IntVar(&c.maxInflight, "max-inflight", 32, "most writes awaiting their answer at once; the writer sends each at its scheduled time (open loop) unless this many are pending")
	fs.DurationVar(&c.drain, "drain", 15*time.Second, "time the subscribers have, once the writer stops, to receive its last commit")
	fs.IntVar(&c.views, "views", 0, `filtered views the subscribers are spread over, each {"owner":"uK"} with commits spread over them (0: every subscriber gets the whole collection)`)
}

// check checks the flags once parsed.
func (c *fanoutConfig) check(*flag.FlagSet) error {
	return checkFlags(append(c.meas.checks(),
		check{c.subscribers <= 0, "--subscribers must be positive"},
		check{c.rate <= 0 || math.IsInf(c.rate, 0) || math.IsNaN(c.rate), "--rate must be positive"},
		check{c.duration <= 0 || c.drain <= 0, "--duration and --drain must be positive"},
		check{c.maxInflight <= 0, "--max-inflight must be positive"},
		check{c.views < 0, "--views must not be negative"},
		check{c.views > c.subscribers, "--views must not exceed --subscribers: every view needs a subscriber"},
		check{c.views > 0 && c.meas.baseline, "--baseline measures whole collections only; leave it out with --views"},
		valueSizeCheck(c.valueSize),
		check{int(c.rate*c.duration.Seconds()) < 1, "--rate times --duration must make at least one commit"})...)
}

// fanoutReport is the result of a fanout run.
type fanoutReport struct {
	reportHead
	Collection   string  `json:"collection"`
	Subscribers  int     `json:"subscribers"`
	Established  int     `json:"established"`
	SetupSeconds float64 `json:"setup_seconds"`
	Views        int     `json:"views,omitempty"`
	Rate         float64 `json:"rate"`
	Seconds      float64 `json:"duration_seconds"`
	ValueBytes   int     `json:"value_bytes"`

	// Commits is how many writes were acknowledged; CommitRate their rate.
	Commits      int     `json:"commits"`
	CommitErrors int     `json:"commit_errors" runs:"sum"`
	CommitRate   float64 `json:"commit_rate"`
	// CommitLatency is the PUT's round trip.
	CommitLatency latencySummary `json:"commit_latency"`

	Deliveries         int64          `json:"deliveries"`
	ExpectedDeliveries int64          `json:"expected_deliveries"`
	DeliveriesPerSec   float64        `json:"deliveries_per_second"`
	Latency            latencySummary `json:"latency"`
	Missing            int64          `json:"missing" runs:"sum"`
	Duplicated         int64          `json:"duplicated" runs:"sum"`
	SubscribersMissing int            `json:"subscribers_missing" runs:"sum"`
	CatchUps           int64          `json:"catch_ups" runs:"sum"`
	CompactedCommits   int64          `json:"compacted_commits" runs:"sum"`
	ExtraResets        int64          `json:"extra_resets" runs:"sum"`
	Reconnects         int64          `json:"reconnects" runs:"sum"`
	Errors             int64          `json:"errors" runs:"sum"`
	LastError          string         `json:"last_error,omitempty" runs:"last"`

	Server           *serverReport `json:"server,omitempty"`
	LoaderCPUSeconds float64       `json:"loader_cpu_seconds"`

	runsOf[fanoutReport, fanoutRatio] `runs:"-"`
}

// serverReport is a spawned server's figures over the measured window.
type serverReport struct {
	PID        int     `json:"pid" runs:"first"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUMicrosPerDelivery is CPUSeconds over the deliveries, in µs.
	CPUMicrosPerDelivery float64 `json:"cpu_us_per_delivery"`
	// CPUMicrosPerCommit is CPUSeconds over the commits, in µs.
	CPUMicrosPerCommit float64 `json:"cpu_us_per_commit"`
	// IdleCPUPercent is the server's CPU use while its subscribers were
	// connected and nothing was written (fanout only), in percent of a
	// core; NetCPUMicrosPerCommit is CPUMicrosPerCommit less that use over
	// the measured window.
	IdleCPUPercent        float64 `json:"idle_cpu_percent,omitempty"`
	NetCPUMicrosPerCommit float64 `json:"net_cpu_us_per_commit,omitempty"`
	RSSBytes              uint64  `json:"rss_bytes"`
	PeakRSSBytes          uint64  `json:"peak_rss_bytes"`
}

// run runs the scenario.
func (c *fanoutConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	return runMeasured(ctx, &c.benchCommon, c.meas, c.subscribers, func(m measurement) (*fanoutReport, *runTrace, []string, error) {
		rep, tr, err := fanoutOnce(ctx, c, m, stderr)
		if err != nil {
			return nil, nil, nil, err
		}
		return rep, tr, rep.problems(), nil
	}, func(rep *fanoutReport, traces []*runTrace) (string, string, []plotPanel) {
		return fanoutPlot(c, rep, traces)
	}, fanoutFigures, "; ", stdout, stderr)
}

// problems lists what went wrong in a run: commits missing or delivered
// twice, failed writes, subscribers that did not connect.
func (r *fanoutReport) problems() []string {
	var problems []string
	if r.Missing > 0 || r.Duplicated > 0 {
		problems = append(problems, fmt.Sprintf("%d commits missing (at %d subscribers), %d duplicated", r.Missing, r.SubscribersMissing, r.Duplicated))
	}
	if r.CommitErrors > 0 {
		problems = append(problems, fmt.Sprintf("%d writes failed", r.CommitErrors))
	}
	if r.Established < r.Subscribers {
		problems = append(problems, fmt.Sprintf("%d of %d subscribers connected", r.Established, r.Subscribers))
	}
	return problems
}

// fanoutOnce measures one fanout: against a fresh spawned server (or the
// one at --url), or with m.baseline against a fresh raw broadcaster.
func fanoutOnce(ctx context.Context, c *fanoutConfig, m measurement, stderr io.Writer) (*fanoutReport, *runTrace, error) {
	t, err := openRun(ctx, &c.benchCommon, m, c.subscribers+1, stderr)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	wclient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.maxInflight}, Timeout: 30 * time.Second}
	defer wclient.CloseIdleConnections()
	if _, err := getHead(ctx, wclient, t.base, c.collection); err != nil {
		return nil, nil, err
	}

	rep := &fanoutReport{reportHead: t.head("fanout", c.transport),
		Collection: c.collection, Subscribers: c.subscribers, Views: c.views, Rate: c.rate, Seconds: c.duration.Seconds(), ValueBytes: int(c.valueSize)}
	load, established, setup, err := startLoad(ctx, t, &c.benchCommon, c.meas, m, c.subscribers, true, time.Now(), stderr)
	if err != nil {
		return nil, nil, err
	}
	defer load.stop()
	rep.Established, rep.SetupSeconds = established, setup
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	if rep.Established < c.subscribers {
		fmt.Fprintf(stderr, "bench: only %d of %d subscribers connected within %v; going on with them\n", rep.Established, c.subscribers, c.setupTimeout)
	}

	// The server's idle CPU, with every subscriber connected.
	idleCPU := time.Duration(-1)
	if t.server != nil {
		idle0, err0 := t.serverStats()
		sleepFor(ctx, idleWindow)
		if idle1, err1 := t.serverStats(); err0 == nil && err1 == nil {
			idleCPU = idle1.cpu - idle0.cpu
		}
	}

	// The measured window: from the writer's start to the last delivery.
	srvBefore, _ := t.serverStats()
	loadBefore := loadersCPU(load.groups)
	start := time.Now()
	w := runWriter(ctx, wclient, t.base, c, &load.sent)
	rep.Commits, rep.CommitErrors, rep.CommitLatency = w.acked, w.errors, summarize(w.putLat)
	rep.CommitRate = round3(float64(w.acked) / w.elapsed.Seconds())
	if w.lastErr != nil {
		fmt.Fprintf(stderr, "bench: %d writes failed; the last: %v\n", w.errors, w.lastErr)
	}
	if err := drainGroups(ctx, load.groups, w.last, w.lasts, c.drain); err != nil {
		return nil, nil, err
	}
	window := time.Since(start)
	srvAfter, srvErr := t.serverStats()
	loadAfter := loadersCPU(load.groups)
	res, tr, err := load.finish(m, start, start.Add(window))
	if err != nil {
		return nil, nil, err
	}

	rep.Deliveries, rep.CatchUps, rep.Errors = res.Deliveries, res.CatchUps, res.Errors
	rep.Duplicated, rep.CompactedCommits, rep.ExtraResets, rep.Reconnects = res.Duplicated, res.Compacted, res.ExtraResets, res.Reconnects
	rep.Missing, rep.SubscribersMissing, rep.LastError = res.Missing, res.SubscribersMissing, res.LastError
	rep.ExpectedDeliveries = int64(rep.Established) * int64(w.acked)
	if c.views > 0 {
		// Each view's subscribers expect its commits.
		var all int64
		for k, n := range w.ackedPer {
			all += int64(c.subscribers/c.views+btoi(k < c.subscribers%c.views)) * int64(n)
		}
		rep.ExpectedDeliveries = all * int64(rep.Established) / int64(c.subscribers)
	}
	rep.DeliveriesPerSec = round3(float64(rep.Deliveries) / window.Seconds())
	rep.Latency = res.latencyOf()
	rep.LoaderCPUSeconds = round3((loadAfter - loadBefore).Seconds())
	if t.server != nil && srvErr == nil {
		cpu := srvAfter.cpu - srvBefore.cpu
		rep.Server = &serverReport{PID: t.server.pid(), CPUSeconds: round3(cpu.Seconds()), RSSBytes: srvAfter.rss, PeakRSSBytes: srvAfter.hwm}
		if rep.Deliveries > 0 {
			rep.Server.CPUMicrosPerDelivery = round3(float64(cpu.Microseconds()) / float64(rep.Deliveries))
		}
		if w.acked > 0 {
			rep.Server.CPUMicrosPerCommit = round3(float64(cpu.Microseconds()) / float64(w.acked))
		}
		if idleCPU >= 0 {
			rate := idleCPU.Seconds() / idleWindow.Seconds()
			rep.Server.IdleCPUPercent = round3(100 * rate)
			if w.acked > 0 {
				net := max(0, cpu.Seconds()-rate*window.Seconds())
				rep.Server.NetCPUMicrosPerCommit = round3(net * 1e6 / float64(w.acked))
			}
		}
	}
	return rep, tr, nil
}

// fanoutRatio is each figure of viewsync's fanout over the baseline's
// (medians over the runs); 0 where the baseline's is 0 or unknown.
type fanoutRatio struct {
	DeliveriesPerSec     float64 `json:"deliveries_per_second"`
	LatencyP50           float64 `json:"latency_p50"`
	LatencyP90           float64 `json:"latency_p90"`
	LatencyP99           float64 `json:"latency_p99"`
	LatencyMax           float64 `json:"latency_max"`
	CommitLatencyP50     float64 `json:"commit_latency_p50"`
	CommitLatencyP99     float64 `json:"commit_latency_p99"`
	ServerCPUSeconds     float64 `json:"server_cpu_seconds"`
	CPUMicrosPerDelivery float64 `json:"cpu_us_per_delivery"`
	CPUMicrosPerCommit   float64 `json:"cpu_us_per_commit"`
	ServerRSS            float64 `json:"server_rss"`
	ServerPeakRSS        float64 `json:"server_peak_rss"`
	LoaderCPUSeconds     float64 `json:"loader_cpu_seconds"`
}

// fanoutFigures are the figures compared with the baseline's.
var fanoutFigures = func() []figure[fanoutReport, fanoutRatio] {
	ms := func(f float64) string { return fmt.Sprintf("%.2fms", f) }
	srv := func(get func(*serverReport) float64) func(*fanoutReport) float64 {
		return func(r *fanoutReport) float64 {
			if r.Server == nil {
				return 0
			}
			return get(r.Server)
		}
	}
	mibf := func(f float64) string { return mib(uint64(f)) }
	return []figure[fanoutReport, fanoutRatio]{
		{"deliveries/s", func(r *fanoutReport) float64 { return r.DeliveriesPerSec }, func(f float64) string { return fmt.Sprintf("%.0f", f) }, func(q *fanoutRatio, v float64) { q.DeliveriesPerSec = v }},
		{"commit → receipt p50", func(r *fanoutReport) float64 { return r.Latency.P50ms }, ms, func(q *fanoutRatio, v float64) { q.LatencyP50 = v }},
		{"commit → receipt p90", func(r *fanoutReport) float64 { return r.Latency.P90ms }, ms, func(q *fanoutRatio, v float64) { q.LatencyP90 = v }},
		{"commit → receipt p99", func(r *fanoutReport) float64 { return r.Latency.P99ms }, ms, func(q *fanoutRatio, v float64) { q.LatencyP99 = v }},
		{"commit → receipt max", func(r *fanoutReport) float64 { return r.Latency.MaxMs }, ms, func(q *fanoutRatio, v float64) { q.LatencyMax = v }},
		{"commit round trip p50", func(r *fanoutReport) float64 { return r.CommitLatency.P50ms }, ms, func(q *fanoutRatio, v float64) { q.CommitLatencyP50 = v }},
		{"commit round trip p99", func(r *fanoutReport) float64 { return r.CommitLatency.P99ms }, ms, func(q *fanoutRatio, v float64) { q.CommitLatencyP99 = v }},
		{"server CPU", srv(func(s *serverReport) float64 { return s.CPUSeconds }), func(f float64) string { return fmt.Sprintf("%.2fs", f) }, func(q *fanoutRatio, v float64) { q.ServerCPUSeconds = v }},
		{"server CPU per delivery", srv(func(s *serverReport) float64 { return s.CPUMicrosPerDelivery }), func(f float64) string { return fmt.Sprintf("%.2f µs", f) }, func(q *fanoutRatio, v float64) { q.CPUMicrosPerDelivery = v }},
		{"server CPU per commit", srv(func(s *serverReport) float64 { return s.CPUMicrosPerCommit }), func(f float64) string { return fmt.Sprintf("%.1f µs", f) }, func(q *fanoutRatio, v float64) { q.CPUMicrosPerCommit = v }},
		{"server RSS", srv(func(s *serverReport) float64 { return float64(s.RSSBytes) }), mibf, func(q *fanoutRatio, v float64) { q.ServerRSS = v }},
		{"server peak RSS", srv(func(s *serverReport) float64 { return float64(s.PeakRSSBytes) }), mibf, func(q *fanoutRatio, v float64) { q.ServerPeakRSS = v }},
		{"loader CPU", func(r *fanoutReport) float64 { return r.LoaderCPUSeconds }, func(f float64) string { return fmt.Sprintf("%.2fs", f) }, func(q *fanoutRatio, v float64) { q.LoaderCPUSeconds = v }},
	}
}()

func (r *fanoutReport) rows() []reportRow {
	rows := []reportRow{
		{"scenario", fmt.Sprintf("fanout over %s, %s", r.Transport, r.URL)},
		{"subscribers", fmt.Sprintf("%d of %d connected in %.1fs", r.Established, r.Subscribers, r.SetupSeconds)},
	}
	if r.Views > 0 {
		rows = append(rows, reportRow{"views", fmt.Sprintf(`%d, {"owner":"uK"} each; commits spread over them`, r.Views)})
	}
	rows = append(rows, []reportRow{
		{"writer", fmt.Sprintf("%d commits in %.0fs (%.1f/s, asked %.1f/s), %d failed; %d-byte values", r.Commits, r.Seconds, r.CommitRate, r.Rate, r.CommitErrors, r.ValueBytes)},
		{"commit round trip", fmt.Sprintf("p50 %.2fms  p99 %.2fms  max %.2fms", r.CommitLatency.P50ms, r.CommitLatency.P99ms, r.CommitLatency.MaxMs)},
		{"deliveries", fmt.Sprintf("%d of %d expected, %.0f/s", r.Deliveries, r.ExpectedDeliveries, r.DeliveriesPerSec)},
		{"commit → receipt", latencyRow(r.Latency)},
		{"missing", fmt.Sprintf("%d (at %d subscribers)", r.Missing, r.SubscribersMissing)},
		{"duplicated", strconv.FormatInt(r.Duplicated, 10)},
		{"catch-ups", fmt.Sprintf("%d, standing for %d commits; extra resets %d", r.CatchUps, r.CompactedCommits, r.ExtraResets)},
		{"reconnects", fmt.Sprintf("%d; connection errors %d", r.Reconnects, r.Errors)},
	}...)
	if r.LastError != "" {
		rows = append(rows, reportRow{"last error", r.LastError})
	}
	if s := r.Server; s != nil {
		rows = append(rows,
			reportRow{"server CPU", fmt.Sprintf("%.2fs (pid %d): %.2f µs per delivery, %.1f µs per commit", s.CPUSeconds, s.PID, s.CPUMicrosPerDelivery, s.CPUMicrosPerCommit)})
		if s.NetCPUMicrosPerCommit > 0 {
			rows = append(rows, reportRow{"server idle CPU", fmt.Sprintf("%.1f%% of a core with the subscribers connected; %.1f µs per commit net of it", s.IdleCPUPercent, s.NetCPUMicrosPerCommit)})
		}
		rows = append(rows,
			reportRow{"server memory", fmt.Sprintf("RSS %s, peak %s", mib(s.RSSBytes), mib(s.PeakRSSBytes))})
	}
	rows = append(rows, reportRow{"loader CPU", fmt.Sprintf("%.2fs", r.LoaderCPUSeconds)})
	if r.Loaders > 1 {
		rows = append(rows, reportRow{"loaders", fmt.Sprintf("%d processes held the subscribers", r.Loaders)})
	}
	if r.Runs > 1 {
		rows = append(rows, reportRow{"runs", fmt.Sprintf("%d, each on a fresh server: the figures are medians (counts of problems: totals; min and max in --json)", r.Runs)})
	}
	if b := r.Baseline; b != nil {
		rows = append(rows, reportRow{"baseline", fmt.Sprintf("raw broadcaster (pre-encoded frames, no store) at %s, same load: deliveries %d of %d expected, missing %d, duplicated %d",
			b.URL, b.Deliveries, b.ExpectedDeliveries, b.Missing, b.Duplicated)})
		rows = append(rows, compareRows(fanoutFigures, r, b)...)
	}
	return rows
}

// writerResult is what the writer did.
type writerResult struct {
	acked, errors int
	// last is the highest version acknowledged.
	last uint64
	// With --views: ackedPer and lasts are each view's count of
	// acknowledged commits and its highest version.
	ackedPer []int
	lasts    []uint64
	lastErr  error
	putLat   []time.Duration
	elapsed  time.Duration
}

// runWriter PUTs rate values a second for the duration, in open loop:
// each at its scheduled time whether or not earlier ones were answered (up
// to --max-inflight unanswered at once; past that the next waits), so that
// a slow answer delays no later commit. It counts the writes in sent.
func runWriter(ctx context.Context, client *http.Client, base string, c *fanoutConfig, sent *atomic.Int64) writerResult {
	var (
		mu  sync.Mutex
		res writerResult
	)
	if c.views > 0 {
		res.ackedPer, res.lasts = make([]int, c.views), make([]uint64, c.views)
	}
	res.elapsed = openLoop(ctx, c.rate, c.duration, c.maxInflight, func(i int) {
		now := time.Now()
		id, value, view := fmt.Sprintf("k%02d", i%writerIDs), benchValue(now, i, int(c.valueSize)), -1
		if c.views > 0 {
			view = i % c.views
			id, value = "o"+strconv.Itoa(view), ownedValue(now, i, int(c.valueSize), viewOwner(view))
		}
		v, err := put(ctx, client, fmt.Sprintf("%s/v1/collections/%s/records/%s", base, c.collection, id), value)
		took := time.Since(now)
		sent.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.errors, res.lastErr = res.errors+1, err
			return
		}
		res.putLat = append(res.putLat, took)
		res.acked++
		res.last = max(res.last, v)
		if view >= 0 {
			res.ackedPer[view]++
			res.lasts[view] = max(res.lasts[view], v)
		}
	})
	return res
}
