package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/protocol"
)

const writesUsage = `Usage: viewsync bench writes [flags]

Runs --writers concurrent writers for --duration, each in a closed loop of
PUTs of records it has not written before (so no write waits on another's
precondition), over keep-alive HTTP. An acknowledged PUT is a durable
commit. Reports durable commits/s, the PUT latency, the errors (must be 0)
and with --spawn the server's CPU time per commit and its peak memory. A
progress line goes to stderr every second, the report to stdout. Exits 1
when a write failed.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_WRITERS):
`

// writesConfig holds the flags of 'viewsync bench writes'.
type writesConfig struct {
	benchCommon
	writers     int
	duration    time.Duration
	valueSize   cliflag.Size
	collections int
}

// register registers the flags of 'viewsync bench writes' besides the
// common ones.
func (c *writesConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.writers, "writers", 16, "concurrent writers, each on a keep-alive connection of its own, each PUT waiting for the one before")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the writers write")
	registerValueSize(fs, &c.valueSize)
	fs.IntVar(&c.collections, "collections", 1, "collections the writers are spread over, round-robin")
}

// check checks the flags once parsed.
func (c *writesConfig) check(*flag.FlagSet) error {
	err := checkFlags(
		check{c.writers <= 0, "--writers must be positive"},
		check{c.duration <= 0, "--duration must be positive"},
		valueSizeCheck(c.valueSize),
		check{c.collections <= 0, "--collections must be positive"})
	if err != nil {
		return err
	}
	for _, name := range writeCollections(c.collection, c.collections) {
		if err := protocol.ValidateCollection(name); err != nil {
			return fmt.Errorf("%w: --collection: %w", cliflag.ErrBadFlag, err)
		}
	}
	return nil
}

// writeCollections returns the k collections written to: name itself when
// k is 1, else name-0 … name-(k-1).
func writeCollections(name string, k int) []string {
	if k == 1 {
		return []string{name}
	}
	names := make([]string, k)
	for i := range names {
		names[i] = spreadCollection(name, i)
	}
	return names
}

// writesReport is the result of a writes run.
type writesReport struct {
	reportHead
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

// run runs the scenario.
func (c *writesConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
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
	rep := &writesReport{reportHead: t.head("writes", ""), Collections: colls,
		Writers: c.writers, Seconds: c.duration.Seconds(), ValueBytes: int(c.valueSize)}
	fmt.Fprintf(stderr, "bench: %d writers PUTting to %d collection(s) at %s for %v\n", c.writers, len(colls), t.base, c.duration)
	// Each writer PUTs new records: ids wI-0, wI-1, … of its collection.
	res, err := runClosedLoop(ctx, t, c.writers, c.duration, func(ok int64) string { return fmt.Sprintf("commits %d", ok) }, stderr,
		func(i int, w *workerStats, deadline time.Time) {
			prefix := t.base + "/v1/collections/" + colls[i%len(colls)] + "/records/w" + strconv.Itoa(i) + "-"
			w.loop(ctx, deadline, func(seq int, now time.Time) error {
				_, err := put(ctx, client, prefix+strconv.Itoa(seq), benchValue(now, seq, int(c.valueSize)))
				return err
			})
		})
	if err != nil {
		return err
	}
	rep.Commits, rep.Errors, rep.Latency, rep.LastError = res.ok, res.errs, res.latency, res.lastErr
	rep.CommitsPerSec = rate(rep.Commits, res.elapsed)
	rep.Server = res.window.end(rep.Commits)
	rep.LoaderCPUSeconds = res.loaderCPU
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	return loopError(rep.Commits, rep.Errors, rep.LastError, "writes", "no write was acknowledged")
}

func (r *writesReport) rows() []reportRow {
	rows := []reportRow{
		{"scenario", fmt.Sprintf("writes, %s", r.URL)},
		{"writers", fmt.Sprintf("%d over %d collection(s), %.0fs, %d-byte values", r.Writers, len(r.Collections), r.Seconds, r.ValueBytes)},
		{"durable commits", fmt.Sprintf("%d, %.1f/s", r.Commits, r.CommitsPerSec)},
		{"PUT latency", latencyRow(r.Latency)},
		{"errors", strconv.FormatInt(r.Errors, 10)},
	}
	return reportTail(rows, r.LastError, r.Server, "commit", r.LoaderCPUSeconds)
}
