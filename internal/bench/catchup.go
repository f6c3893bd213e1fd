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

const catchupUsage = `Usage: viewsync bench catchup [flags]

Makes --behind commits to --collection (each a PUT of one record, by
--writers concurrent writers), then reads them as a client at the start of
the epoch would: GET /v1/collections/{c}/changes?after=V&epoch=E, following
the aligned pages until one is empty, applying each commit, catch-up or
reset to a copy of the records, which is then checked against a snapshot.
Reports the time to be current, the pages, their bytes and the commits
read per second; when the server's log was trimmed (a spawned server with
a small --retain-commits), the compacted catch-up's size and time. With
--spawn, the server's CPU time and peak memory. A progress line goes to
stderr every second, the report to stdout. Exits 1 when a write failed or
the copy does not match the snapshot.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_BEHIND):
`

// catchupConfig holds the flags of 'viewsync bench catchup'.
type catchupConfig struct {
	benchCommon
	behind        int
	pageSize      int
	writers       int
	records       int
	valueSize     cliflag.Size
	retainCommits int
}

// register registers the flags of 'viewsync bench catchup' besides the
// common ones.
func (c *catchupConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.behind, "behind", 10000, "commits the reading client is behind: the writers make this many, each a PUT of one record")
	fs.IntVar(&c.pageSize, "page-size", 0, "commits per page of changes, sent as limit=; with --spawn also the server's --page-size, so pages stay aligned (default: the server's)")
	fs.IntVar(&c.writers, "writers", 64, "concurrent writers making the commits")
	fs.IntVar(&c.records, "records", 1000, "distinct records the commits write, round-robin: what a compacted catch-up holds")
	registerValueSize(fs, &c.valueSize)
	fs.IntVar(&c.retainCommits, "retain-commits", 0, "with --spawn: the server's --retain-commits; below a fifth of --behind the log is trimmed and the client catches up through a compacted catch-up (default: the server's)")
}

// check checks the flags once parsed.
func (c *catchupConfig) check(*flag.FlagSet) error {
	err := checkFlags(
		check{c.behind <= 0, "--behind must be positive"},
		check{c.pageSize < 0, "--page-size must not be negative"},
		check{c.writers <= 0, "--writers must be positive"},
		check{c.records <= 0, "--records must be positive"},
		valueSizeCheck(c.valueSize),
		check{c.retainCommits < 0, "--retain-commits must not be negative"},
		check{c.retainCommits > 0 && !c.spawn, "--retain-commits needs --spawn"})
	if err != nil {
		return err
	}
	if c.retainCommits > 0 {
		c.serverArgs = append(c.serverArgs, "--retain-commits", strconv.Itoa(c.retainCommits))
	}
	if c.pageSize > 0 && c.spawn {
		c.serverArgs = append(c.serverArgs, "--page-size", strconv.Itoa(c.pageSize))
	}
	return nil
}

// catchupReport is the result of a catchup run.
type catchupReport struct {
	reportHead
	Collection string `json:"collection"`
	Behind     int    `json:"behind"`
	Records    int    `json:"records"`
	ValueBytes int    `json:"value_bytes"`
	// PageSize and RetainCommits are as asked, 0 for the server's.
	PageSize      int `json:"page_size"`
	RetainCommits int `json:"retain_commits"`

	// The preparation: the commits made, how fast, the failures.
	Prepared         int64      `json:"prepared"`
	PrepareSeconds   float64    `json:"prepare_seconds"`
	PrepareRate      float64    `json:"prepare_commits_per_second"`
	PrepareErrors    int64      `json:"prepare_errors"`
	PrepareLastError string     `json:"prepare_last_error,omitempty"`
	PrepareServer    *opsServer `json:"prepare_server,omitempty"`

	// The read, from the start cursor to the head.
	Read catchupRead `json:"read"`
	// Verified is how many records the client's copy and the snapshot
	// agree on (id and version); the copy matches when no error is shown.
	Verified    int        `json:"verified_records"`
	VerifyError string     `json:"verify_error,omitempty"`
	ReadServer  *opsServer `json:"read_server,omitempty"`
}

// catchupRead is what reading the changes took.
type catchupRead struct {
	From    uint64  `json:"from_version"`
	To      uint64  `json:"to_version"`
	Seconds float64 `json:"seconds"`
	// Requests counts every GET; Pages those that carried commits, and
	// Immutable the pages the server marked cacheable.
	Requests  int   `json:"requests"`
	Pages     int   `json:"pages"`
	Immutable int   `json:"immutable_pages"`
	Bytes     int64 `json:"bytes"`
	// Commits were read one by one from the log; CommitsPerSec is every
	// version covered (commits, catch-up and reset alike) per second.
	Commits       int64   `json:"commits"`
	CommitsPerSec float64 `json:"commits_per_second"`
	Resets        int     `json:"resets"`
	// CatchUp is the compacted catch-up, when the log no longer held the
	// cursor.
	CatchUp *catchupFigures `json:"catch_up,omitempty"`
}

// catchupFigures describe one compacted catch-up.
type catchupFigures struct {
	// Covers is how many commits it stood for.
	Covers  uint64  `json:"covers_commits"`
	Records int     `json:"records"`
	Deleted int     `json:"deleted"`
	Bytes   int     `json:"bytes"`
	Millis  float64 `json:"ms"`
}

// run runs the scenario.
func (c *catchupConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	t, err := openTarget(ctx, &c.benchCommon, c.writers+1, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	client := t.keepAliveClient(c.writers + 1)
	defer client.CloseIdleConnections()
	base, err := getHead(ctx, client, t.base, c.collection)
	if err != nil {
		return err
	}
	rep := &catchupReport{reportHead: t.head("catchup", ""), Collection: c.collection,
		Behind: c.behind, Records: c.records, ValueBytes: int(c.valueSize), PageSize: c.pageSize, RetainCommits: c.retainCommits}

	fmt.Fprintf(stderr, "bench: making %d commits to %s with %d writers\n", c.behind, c.collection, c.writers)
	win := t.beginWindow()
	start := time.Now()
	prefix := t.base + "/v1/collections/" + c.collection + "/records/r"
	p := makeCommits(ctx, t, c.writers, c.behind, "prepared",
		func(n int) string { return prefix + strconv.Itoa(n%c.records) },
		func(n int) []byte { return benchValue(time.Now(), n, int(c.valueSize)) }, stderr)
	rep.PrepareSeconds = round3(time.Since(start).Seconds())
	rep.Prepared, rep.PrepareErrors = p.ok.Load(), p.errs.Load()
	rep.PrepareRate = rate(rep.Prepared, time.Since(start))
	if p.lastErr != nil {
		rep.PrepareLastError = p.lastErr.Error()
	}
	rep.PrepareServer = win.end(rep.Prepared)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rep.PrepareErrors > 0 {
		printReport(stdout, c.json, rep, rep.rows())
		return fmt.Errorf("%d writes failed; the last: %s", rep.PrepareErrors, rep.PrepareLastError)
	}
	head, err := getHead(ctx, client, t.base, c.collection)
	if err != nil {
		return err
	}
	client.CloseIdleConnections()

	// The reading client: from the start cursor, page by page.
	from := base.Version
	if base.Epoch != head.Epoch {
		from = 0
	}
	fmt.Fprintf(stderr, "bench: reading %d commits of %s from version %d (epoch %s)\n", head.Version-from, c.collection, from, head.Epoch)
	r := newChangesReader(t, c.collection, c.pageSize, protocol.Cursor{Epoch: head.Epoch, Version: from})
	defer r.client.CloseIdleConnections()
	prog := startTicker(stderr, t, func(_, _ time.Duration) string {
		v, n, b := r.progress()
		return fmt.Sprintf("read to version %d of %d  pages %d  %s", v, head.Version, n, mib(uint64(b)))
	})
	defer prog.stop()
	win = t.beginWindow()
	readErr := r.readToEnd(ctx)
	rep.Read = r.result(from)
	rep.ReadServer = win.end(int64(rep.Read.To - from))
	prog.stop()
	if readErr != nil {
		return readErr
	}
	if from == 0 {
		snap, err := getSnapshot(ctx, r.client, t.base, c.collection)
		if err != nil {
			return err
		}
		rep.Verified, err = verifyCopy(r.state, r.cur, snap)
		if err != nil {
			rep.VerifyError = err.Error()
		}
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	if rep.VerifyError != "" {
		return fmt.Errorf("the client's copy does not match the snapshot: %s", rep.VerifyError)
	}
	if rep.Read.To < head.Version {
		return fmt.Errorf("the client reached version %d, not the head %d", rep.Read.To, head.Version)
	}
	return nil
}

func (r *catchupReport) rows() []reportRow {
	page := "the server's"
	if r.PageSize > 0 {
		page = strconv.Itoa(r.PageSize)
	}
	retain := "the server's"
	if r.RetainCommits > 0 {
		retain = strconv.Itoa(r.RetainCommits)
	}
	rows := []reportRow{
		{"scenario", fmt.Sprintf("catchup on %s, %s", r.Collection, r.URL)},
		{"prepared", fmt.Sprintf("%d of %d commits over %d records in %.1fs (%.0f/s), %d failed; %d-byte values", r.Prepared, r.Behind, r.Records, r.PrepareSeconds, r.PrepareRate, r.PrepareErrors, r.ValueBytes)},
	}
	if r.PrepareLastError != "" {
		rows = append(rows, reportRow{"last write error", r.PrepareLastError})
	}
	if s := r.PrepareServer; s != nil {
		rows = append(rows, reportRow{"server CPU, preparing", fmt.Sprintf("%.2fs: %.2f µs per commit", s.CPUSeconds, s.CPUMicrosPerOp)})
	}
	rd := r.Read
	rows = append(rows,
		reportRow{"settings", fmt.Sprintf("page size %s, retain commits %s", page, retain)},
		reportRow{"current after", fmt.Sprintf("%.3fs: version %d to %d, %.0f commits/s", rd.Seconds, rd.From, rd.To, rd.CommitsPerSec)},
		reportRow{"requests", fmt.Sprintf("%d: %d pages of commits (%d immutable), %s; %d commits read from the log", rd.Requests, rd.Pages, rd.Immutable, mib(uint64(rd.Bytes)), rd.Commits)})
	if cu := rd.CatchUp; cu != nil {
		rows = append(rows, reportRow{"compacted catch-up", fmt.Sprintf("%d commits as %d records + %d deleted, %s (%d bytes) in %.1fms", cu.Covers, cu.Records, cu.Deleted, mib(uint64(cu.Bytes)), cu.Bytes, cu.Millis)})
	} else {
		rows = append(rows, reportRow{"compacted catch-up", "none: the log held every commit"})
	}
	if rd.Resets > 0 {
		rows = append(rows, reportRow{"resets", strconv.Itoa(rd.Resets)})
	}
	verified := fmt.Sprintf("%d records match the snapshot", r.Verified)
	if r.VerifyError != "" {
		verified = "MISMATCH: " + r.VerifyError
	} else if rd.From != 0 {
		verified = "not checked (the collection was not empty)"
	}
	rows = append(rows, reportRow{"client copy", verified})
	if s := r.ReadServer; s != nil {
		rows = append(rows,
			reportRow{"server CPU, reading", fmt.Sprintf("%.2fs (pid %d): %.2f µs per commit covered", s.CPUSeconds, s.PID, s.CPUMicrosPerOp)},
			reportRow{"server memory", fmt.Sprintf("RSS %s, peak %s", mib(s.RSSBytes), mib(s.PeakRSSBytes))})
	}
	return rows
}
