package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// idleConfig holds the flags of 'viewsync bench idle'.
type idleConfig struct {
	benchCommon
	connections int
	settle      time.Duration
}

func benchIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &idleConfig{}
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs)
	fs.IntVar(&c.connections, "connections", 1000, "idle subscriptions, each on a connection of its own")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "wait before each memory reading, for the server to settle")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: viewsync bench idle [flags]

Opens --connections idle subscriptions to --collection (each gets its reset,
then nothing more), waits until all are established, and reports the
server's resident memory (VmRSS) before and after, and per connection. The
memory figures need --spawn; with --url only the setup is measured.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_CONNECTIONS):
`)
		fs.PrintDefaults()
	}
	if err := parseBenchFlags(fs, &c.benchCommon, args); err != nil {
		return err
	}
	if c.connections <= 0 {
		return fmt.Errorf("%w: --connections must be positive", errBadFlag)
	}
	if c.settle < 0 {
		return fmt.Errorf("%w: --settle must not be negative", errBadFlag)
	}
	if err := protocol.ValidateCollection(c.collection); err != nil {
		return fmt.Errorf("%w: --collection: %w", errBadFlag, err)
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
	Errors         int64   `json:"errors"`
	LastError      string  `json:"last_error,omitempty"`

	// The server's memory (--spawn only): resident before the
	// connections and once they are established, the difference per
	// connection, the peak; and its CPU time setting them up.
	RSSBeforeBytes        uint64  `json:"rss_before_bytes,omitempty"`
	RSSAfterBytes         uint64  `json:"rss_after_bytes,omitempty"`
	RSSPerConnectionBytes float64 `json:"rss_per_connection_bytes,omitempty"`
	PeakRSSBytes          uint64  `json:"peak_rss_bytes,omitempty"`
	SetupCPUSeconds       float64 `json:"setup_cpu_seconds,omitempty"`
}

func runIdle(ctx context.Context, c *idleConfig, stdout, stderr io.Writer) error {
	t, err := openTarget(ctx, &c.benchCommon, c.connections, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	if _, err := getHead(ctx, client, t.base, c.collection); err != nil {
		return err
	}
	client.CloseIdleConnections()

	rep := &idleReport{Scenario: "idle", Transport: c.transport, URL: t.base, Spawned: t.server != nil, Connections: c.connections}
	sleepFor(ctx, c.settle)
	before, srvErr := t.serverStats()

	subs, stopSubs, setup := startSubs(ctx, t, &c.benchCommon, c.connections, false, stderr)
	defer stopSubs()
	var sent atomic.Int64
	prog := startProgress(stderr, t, subs, &sent)
	defer prog.stop()
	rep.Established, rep.SetupSeconds = setup.wait(ctx, c.setupTimeout)
	if rep.SetupSeconds > 0 {
		rep.ConnectsPerSec = round3(float64(rep.Established) / rep.SetupSeconds)
	}
	setupCPU, _ := t.serverStats()
	sleepFor(ctx, c.settle)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	after, err := t.serverStats()
	if srvErr == nil && err == nil {
		rep.RSSBeforeBytes, rep.RSSAfterBytes, rep.PeakRSSBytes = before.rss, after.rss, after.hwm
		rep.SetupCPUSeconds = round3((setupCPU.cpu - before.cpu).Seconds())
		if rep.Established > 0 {
			rep.RSSPerConnectionBytes = round3((float64(after.rss) - float64(before.rss)) / float64(rep.Established))
		}
	}
	prog.stop()
	stopSubs()
	for _, s := range subs {
		rep.Errors += s.errs.Load()
		if s.lastErr != nil {
			rep.LastError = s.lastErr.Error()
		}
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	if rep.Established < rep.Connections {
		return fmt.Errorf("%d of %d connections established", rep.Established, rep.Connections)
	}
	if !rep.Spawned {
		return nil
	}
	if srvErr != nil || err != nil {
		return errors.Join(srvErr, err)
	}
	return nil
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
