package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const pollUsage = `Usage: viewsync bench poll [flags]

Runs --connections clients for --duration, each in a closed loop of
GET /v1/collections/{c}/version with If-None-Match: the ETag it last saw,
over keep-alive HTTP: the cheap "am I stale?" poll, answered 304 while
nothing changes. Reports requests/s, the latency, the 304 and 200 answers,
the errors (must be 0) and with --spawn the server's CPU time per request
and its peak memory. A progress line goes to stderr every second, the
report to stdout. Exits 1 when a request failed.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_CONNECTIONS):
`

// pollConfig holds the flags of 'viewsync bench poll'.
type pollConfig struct {
	benchCommon
	connections int
	duration    time.Duration
	baseline    bool
}

// register registers the flags of 'viewsync bench poll' besides the
// common ones.
func (c *pollConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.connections, "connections", 16, "polling clients, each on a keep-alive connection of its own, each request waiting for the one before")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the clients poll")
	fs.BoolVar(&c.baseline, "baseline", false, "also poll, in the same run, a bare net/http handler answering the same conditional GET with an ETag and 304, and print the figures as ratios to it")
}

// check checks the flags once parsed.
func (c *pollConfig) check(*flag.FlagSet) error {
	return checkFlags(
		check{c.connections <= 0, "--connections must be positive"},
		check{c.duration <= 0, "--duration must be positive"})
}

// pollReport is the result of a poll run.
type pollReport struct {
	reportHead
	Collection  string  `json:"collection"`
	Connections int     `json:"connections"`
	Seconds     float64 `json:"duration_seconds"`

	Requests       int64          `json:"requests"`
	RequestsPerSec float64        `json:"requests_per_second"`
	NotModified    int64          `json:"not_modified"`
	Changed        int64          `json:"changed"`
	Latency        latencySummary `json:"latency"`
	Errors         int64          `json:"errors"`
	LastError      string         `json:"last_error,omitempty"`

	// Server is the spawned server's figures, its CPU time per request.
	Server           *opsServer `json:"server,omitempty"`
	LoaderCPUSeconds float64    `json:"loader_cpu_seconds"`

	// Baseline is the same run against a bare 304 handler (--baseline),
	// and the ratios of this run's figures to its.
	Baseline            *pollReport `json:"baseline,omitempty"`
	RatioRequestsPerSec float64     `json:"ratio_requests_per_second,omitempty"`
	RatioCPUPerRequest  float64     `json:"ratio_cpu_per_request,omitempty"`
}

// run runs the scenario.
func (c *pollConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	rep, err := measurePoll(ctx, c, false, stderr)
	if err != nil {
		return err
	}
	rows := rep.rows()
	if c.baseline {
		base, err := measurePoll(ctx, c, true, stderr)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = base
		rep.RatioRequestsPerSec = round3(rep.RequestsPerSec / base.RequestsPerSec)
		rows = append(rows,
			reportRow{"baseline requests/s", fmt.Sprintf("%.0f (bare net/http 304 handler)", base.RequestsPerSec)},
			reportRow{"ratio to baseline", fmt.Sprintf("requests/s ×%.3f", rep.RatioRequestsPerSec)})
		if rep.Server != nil && base.Server != nil && base.Server.CPUMicrosPerOp > 0 {
			rep.RatioCPUPerRequest = round3(rep.Server.CPUMicrosPerOp / base.Server.CPUMicrosPerOp)
			rows = append(rows, reportRow{"", fmt.Sprintf("server CPU per request ×%.3f (%.1f vs %.1f µs)",
				rep.RatioCPUPerRequest, rep.Server.CPUMicrosPerOp, base.Server.CPUMicrosPerOp)})
		}
	}
	if err := printReport(stdout, c.json, rep, rows); err != nil {
		return err
	}
	return loopError(rep.Requests, rep.Errors, rep.LastError, "requests", "no request was answered")
}

// measurePoll runs the poll scenario against the server, or the raw
// broadcaster when baseline is set, in a target of its own.
func measurePoll(ctx context.Context, c *pollConfig, baseline bool, stderr io.Writer) (*pollReport, error) {
	t, err := openRun(ctx, &c.benchCommon, measurement{baseline: baseline}, c.connections, stderr)
	if err != nil {
		return nil, err
	}
	defer t.close()
	client := t.keepAliveClient(c.connections)
	defer client.CloseIdleConnections()
	url := t.base + "/v1/collections/" + c.collection + "/version"
	// Every client starts from the current ETag, got on its connection.
	etags := make([]string, c.connections)
	var setup sync.WaitGroup
	var setupErr atomic.Pointer[error]
	for i := range etags {
		setup.Go(func() {
			_, etag, err := pollOnce(ctx, client, url, "")
			if err != nil {
				setupErr.Store(&err)
			}
			etags[i] = etag
		})
	}
	setup.Wait()
	if p := setupErr.Load(); p != nil {
		return nil, *p
	}
	rep := &pollReport{reportHead: t.head("poll", ""), Collection: c.collection,
		Connections: c.connections, Seconds: c.duration.Seconds()}
	fmt.Fprintf(stderr, "bench: %d clients polling %s for %v\n", c.connections, url, c.duration)

	// Each client polls naming the last ETag it got; the 304s count apart.
	var notModified atomic.Int64
	res, err := runClosedLoop(ctx, t, c.connections, c.duration, func(ok int64) string { return fmt.Sprintf("requests %d", ok) }, stderr,
		func(i int, w *workerStats, deadline time.Time) {
			etag := etags[i]
			w.loop(ctx, deadline, func(int, time.Time) error {
				status, newTag, err := pollOnce(ctx, client, url, etag)
				if status == http.StatusNotModified {
					notModified.Add(1)
				}
				etag = newTag
				return err
			})
		})
	if err != nil {
		return nil, err
	}
	rep.Requests, rep.Errors, rep.Latency, rep.LastError = res.ok, res.errs, res.latency, res.lastErr
	rep.NotModified = notModified.Load()
	rep.Changed = rep.Requests - rep.NotModified
	rep.RequestsPerSec = rate(rep.Requests, res.elapsed)
	rep.Server = res.window.end(rep.Requests + rep.Errors)
	rep.LoaderCPUSeconds = res.loaderCPU
	return rep, nil
}

// pollOnce GETs the version, with If-None-Match: etag unless it is empty.
// It returns the status, 200 or 304, and the ETag answered (on an error,
// etag itself).
func pollOnce(ctx context.Context, client *http.Client, url, etag string) (int, string, error) {
	var header http.Header
	if etag != "" {
		header = http.Header{"If-None-Match": {etag}}
	}
	resp, b, err := fetch(ctx, client, http.MethodGet, url, nil, header)
	if err != nil {
		return 0, etag, err
	}
	tag := resp.Header.Get("ETag")
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return resp.StatusCode, etag, nil
	case resp.StatusCode == http.StatusOK && tag != "":
		return resp.StatusCode, tag, nil
	}
	return 0, etag, fmt.Errorf("GET %s: %s (ETag %q) %s", url, resp.Status, tag, bytes.TrimSpace(b))
}

func (r *pollReport) rows() []reportRow {
	rows := []reportRow{
		{"scenario", fmt.Sprintf("poll %s, %s", r.Collection, r.URL)},
		{"clients", fmt.Sprintf("%d keep-alive, %.0fs", r.Connections, r.Seconds)},
		{"requests", fmt.Sprintf("%d, %.0f/s: %d not modified (304), %d changed (200)", r.Requests, r.RequestsPerSec, r.NotModified, r.Changed)},
		{"latency", latencyRow(r.Latency)},
		{"errors", strconv.FormatInt(r.Errors, 10)},
	}
	return reportTail(rows, r.LastError, r.Server, "request", r.LoaderCPUSeconds)
}
