package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/protocol"
)

// writesConfig holds the flags of 'viewsync bench writes'.
type writesConfig struct {
	benchCommon
	writers     int
	duration    time.Duration
	valueSize   int
	collections int
}

func benchWrites(ctx context.Context, cmd *Command, args []string, stdout, stderr io.Writer) error {
	c := &writesConfig{benchCommon: newBenchCommon(cmd)}
	fs := flag.NewFlagSet("bench writes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.registerTarget(fs, "the collection written to; with --collections K > 1, the collections NAME-0 … NAME-(K-1)")
	fs.IntVar(&c.writers, "writers", 16, "concurrent writers, each on a keep-alive connection of its own, each PUT waiting for the one before")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the writers write")
	fs.IntVar(&c.valueSize, "value-size", 100, "bytes of each value written (at least 64)")
	fs.IntVar(&c.collections, "collections", 1, "collections the writers are spread over, round-robin")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: viewsync bench writes [flags]

Runs --writers concurrent writers for --duration, each in a closed loop of
PUTs of records it has not written before (so no write waits on another's
precondition), over keep-alive HTTP. An acknowledged PUT is a durable
commit. Reports durable commits/s, the PUT latency, the errors (must be 0)
and with --spawn the server's CPU time per commit and its peak memory. A
progress line goes to stderr every second, the report to stdout. Exits 1
when a write failed.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_WRITERS):
`)
		fs.PrintDefaults()
	}
	if err := parseBenchFlags(fs, &c.benchCommon, args); err != nil {
		return err
	}
	switch {
	case c.writers <= 0:
		return fmt.Errorf("%w: --writers must be positive", cliflag.ErrBadFlag)
	case c.duration <= 0:
		return fmt.Errorf("%w: --duration must be positive", cliflag.ErrBadFlag)
	case c.valueSize < minValueSize:
		return fmt.Errorf("%w: --value-size must be at least %d", cliflag.ErrBadFlag, minValueSize)
	case c.collections <= 0:
		return fmt.Errorf("%w: --collections must be positive", cliflag.ErrBadFlag)
	}
	for _, name := range writeCollections(c.collection, c.collections) {
		if err := protocol.ValidateCollection(name); err != nil {
			return fmt.Errorf("%w: --collection: %w", cliflag.ErrBadFlag, err)
		}
	}
	return runWrites(ctx, c, stdout, stderr)
}

// writeCollections returns the k collections written to: name itself when
// k is 1, else name-0 … name-(k-1).
func writeCollections(name string, k int) []string {
	if k == 1 {
		return []string{name}
	}
	names := make([]string, k)
	for i := range names {
		names[i] = name + "-" + strconv.Itoa(i)
	}
	return names
}

// writesReport is the result of a writes run.
type writesReport struct {
	Scenario    string   `json:"scenario"`
	URL         string   `json:"url"`
	Spawned     bool     `json:"spawned"`
	Collections []string `json:"collections"`
	Writers     int      `json:"writers"`
	Seconds     float64  `json:"duration_seconds"`
	ValueBytes  int      `json:"value_bytes"`

	// Commits is how many PUTs were acknowledged, each a durable commit.
	Commits       int64          `json:"commits"`
	CommitsPerSec float64        `json:"commits_per_second"`
	Latency       latencySummary `json:"latency"`
	Errors        int64          `json:"errors"`
	LastError     string         `json:"last_error,omitempty"`

	// Server is the spawned server's figures, its CPU time per commit.
	Server           *opsServer `json:"server,omitempty"`
	LoaderCPUSeconds float64    `json:"loader_cpu_seconds"`
}

// workerStats is what one closed-loop worker did.
type workerStats struct {
	ok, errs atomic.Int64
	// Owned by the worker until it has ended.
	lat     []time.Duration
	lastErr error
}

// mergeWorkers adds up the workers' counts and gathers their latencies
// and last error.
func mergeWorkers(ws []*workerStats) (ok, errs int64, lat []time.Duration, lastErr error) {
	for _, w := range ws {
		ok += w.ok.Load()
		errs += w.errs.Load()
		lat = append(lat, w.lat...)
		if w.lastErr != nil {
			lastErr = w.lastErr
		}
	}
	return ok, errs, lat, lastErr
}

// sumOK adds up the workers' successes so far.
// startRateTicker prints, each second, how many operations (named by noun)
// the workers completed, their rate since the last line, and their errors.
func startRateTicker(w io.Writer, t *benchTarget, noun string, ws []*workerStats) *progress {
	var prev int64
	return startTicker(w, t, func(_, since time.Duration) string {
		ok, errs := sumOK(ws)
		line := fmt.Sprintf("%s %d (%.0f/s)  errors %d", noun, ok, rate(ok-prev, since), errs)
		prev = ok
		return line
	})
}

func sumOK(ws []*workerStats) (ok, errs int64) {
	for _, w := range ws {
		ok += w.ok.Load()
		errs += w.errs.Load()
	}
	return ok, errs
}

func runWrites(ctx context.Context, c *writesConfig, stdout, stderr io.Writer) error {
	t, err := openTarget(ctx, &c.benchCommon, c.writers, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	client := t.keepAliveClient(c.writers)
	defer client.CloseIdleConnections()
	colls := writeCollections(c.collection, c.collections)
	if _, err := getHead(ctx, client, t.base, colls[0]); err != nil {
		return err
	}
	rep := &writesReport{Scenario: "writes", URL: t.base, Spawned: t.server != nil, Collections: colls,
		Writers: c.writers, Seconds: c.duration.Seconds(), ValueBytes: c.valueSize}
	fmt.Fprintf(stderr, "bench: %d writers PUTting to %d collection(s) at %s for %v\n", c.writers, len(colls), t.base, c.duration)

	workers := make([]*workerStats, c.writers)
	for i := range workers {
		workers[i] = &workerStats{}
	}
	prog := startRateTicker(stderr, t, "commits", workers)
	defer prog.stop()
	win := t.beginWindow()
	selfBefore, _ := readProc("self")
	start := time.Now()
	deadline := start.Add(c.duration)
	var wg sync.WaitGroup
	for i, w := range workers {
		url := t.base + "/v1/collections/" + colls[i%len(colls)] + "/records/w" + strconv.Itoa(i) + "-"
		wg.Go(func() { w.writeLoop(ctx, client, url, c.valueSize, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	rep.Server = win.end(0)
	selfAfter, _ := readProc("self")
	prog.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	var lat []time.Duration
	var lastErr error
	rep.Commits, rep.Errors, lat, lastErr = mergeWorkers(workers)
	if lastErr != nil {
		rep.LastError = lastErr.Error()
	}
	rep.CommitsPerSec = rate(rep.Commits, elapsed)
	rep.Latency = summarize(lat)
	rep.LoaderCPUSeconds = round3((selfAfter.cpu - selfBefore.cpu).Seconds())
	if s := rep.Server; s != nil && rep.Commits > 0 {
		s.CPUMicrosPerOp = round3(s.CPUSeconds * 1e6 / float64(rep.Commits))
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d writes failed; the last: %s", rep.Errors, rep.LastError)
	}
	if rep.Commits == 0 {
		return errors.New("no write was acknowledged")
	}
	return nil
}

// writeLoop PUTs a new record after each answer until the deadline: ids
// prefix0, prefix1, … under the URL prefix.
func (w *workerStats) writeLoop(ctx context.Context, client *http.Client, prefix string, size int, deadline time.Time) {
	for seq := 0; ctx.Err() == nil && time.Now().Before(deadline); seq++ {
		now := time.Now()
		_, err := put(ctx, client, prefix+strconv.Itoa(seq), benchValue(now, seq, size))
		if err != nil {
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

func (r *writesReport) rows() []reportRow {
	rows := []reportRow{
		{"scenario", fmt.Sprintf("writes, %s", r.URL)},
		{"writers", fmt.Sprintf("%d over %d collection(s), %.0fs, %d-byte values", r.Writers, len(r.Collections), r.Seconds, r.ValueBytes)},
		{"durable commits", fmt.Sprintf("%d, %.1f/s", r.Commits, r.CommitsPerSec)},
		{"PUT latency", latencyRow(r.Latency)},
		{"errors", strconv.FormatInt(r.Errors, 10)},
	}
	if r.LastError != "" {
		rows = append(rows, reportRow{"last error", r.LastError})
	}
	rows = append(rows, r.Server.rows("commit")...)
	return append(rows, reportRow{"loader CPU", fmt.Sprintf("%.2fs", r.LoaderCPUSeconds)})
}
