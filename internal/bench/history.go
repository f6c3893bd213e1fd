package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/transport/httpapi"
)

const historyUsage = `Usage: viewsync bench history [flags]

Measures the server memory that reads of a long history take. It writes
--commits commits of --value-bytes each to --collection (each a PUT of one
record, a JSON string, by --writers concurrent writers), and, for sse40,
--restart-commits of --restart-value-bytes to COLLECTION-restart. Then
it runs the phases, one after the other:

  get1   one client pages through GET /v1/collections/{c}/changes from
         after=0 to the head, each answer's last commit the next after
  get3   three such clients at once
  sse6   --subscribers subscribers resume from cursor EPOCH:0 and read
         until they have every commit (ws6 with --transport ws)
  sse40  --restart-subscribers subscribers do the same on the second
         history, as after a server restart (ws40 with --transport ws)

Each phase reports the server's peak anonymous memory (RssAnon, read from
/proc every 10ms) above what it was just before the phase; its duration;
how many readers reached the head and whether each got every commit
1..HEAD exactly once and in order (or a catch-up or reset); and how often
a reader was sent away busy (503 unavailable, an SSE error event
"unavailable", a WebSocket close 1013) and retried from its cursor after
Retry-After (or a second). Memory needs --spawn, or --pid with --url.

A server keeps much of the memory a phase freed (the Go runtime returns
it slowly), and the next phase reuses it unseen. So a spawned server is
started anew on its data before each phase (--respawn). Against --url,
for figures of the same kind, run one phase per freshly started server:
the first run writes (--phases get1), the next ones read what it wrote
(--write=false --phases get3, and so on).

A spawned server is given --max-value and --max-body large enough for the
values when its defaults are not (unless VIEWSYNC_MAX_VALUE or
VIEWSYNC_MAX_BODY set them); its other settings come from the environment
(VIEWSYNC_PAGE_SIZE=500). Progress goes to stderr, the report to stdout.
Exits 1 when a write failed or a reader did not reach the head with every
commit.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_VALUE_BYTES):
`

// historyConfig holds the flags of 'viewsync bench history'.
type historyConfig struct {
	benchCommon
	commits            int
	valueBytes         cliflag.Size
	subscribers        int
	restartCommits     int
	restartValueBytes  cliflag.Size
	restartSubscribers int
	writers            int
	write              bool
	respawn            bool
	phases             string
	pid                int
	settle             time.Duration
	phaseTimeout       time.Duration

	// selected are the phases to run, in their order, from --phases.
	selected []string
}

// The phases of the history scenario, in the order they run. The two of
// subscribers are named after the SSE transport; with --transport ws they
// are reported as ws6 and ws40, and --phases takes either name.
const (
	phaseGet1    = "get1"
	phaseGet3    = "get3"
	phaseSubs    = "sse6"
	phaseRestart = "sse40"
)

var historyPhases = []string{phaseGet1, phaseGet3, phaseSubs, phaseRestart}

const (
	// historyRecords is how many records the writers cycle through.
	historyRecords = 16
	// minHistoryValue is the smallest --value-bytes: a JSON string with
	// the commit's number in it.
	minHistoryValue = 16
	// historySampleEvery is how often the server's memory is read during a
	// phase.
	historySampleEvery = 10 * time.Millisecond
	// historyMaxFails is how many failed attempts in a row, without
	// progress and other than busy answers, end a reader.
	historyMaxFails = 5
)

// benchHistory runs 'viewsync bench history'.
// register registers the flags of 'viewsync bench history' besides the
// common ones.
func (c *historyConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.transport, "transport", "sse", "how the subscribers of sse6 and sse40 connect: sse (Server-Sent Events) or ws (WebSocket)")
	fs.IntVar(&c.commits, "commits", 1000, "commits of the long history, each a PUT of one record")
	fs.Var(&c.valueBytes, "value-bytes", "size of each value of the long history: a JSON string")
	fs.IntVar(&c.subscribers, "subscribers", 6, "subscribers of phase sse6, each resuming from version 0")
	fs.IntVar(&c.restartCommits, "restart-commits", 1000, "commits of the second history, read by sse40")
	fs.Var(&c.restartValueBytes, "restart-value-bytes", "size of each value of the second history")
	fs.IntVar(&c.restartSubscribers, "restart-subscribers", 40, "subscribers of phase sse40, each resuming from version 0, as after a server restart")
	fs.IntVar(&c.writers, "writers", 8, "concurrent writers making the histories")
	fs.BoolVar(&c.write, "write", true, "make the histories; --write=false reads the collections as they are, to their heads (written by an earlier run, against a server restarted since)")
	fs.BoolVar(&c.respawn, "respawn", true, "with --spawn: start the server anew on its data before each phase, so that no phase starts with the memory an earlier one left in the server")
	fs.StringVar(&c.phases, "phases", strings.Join(historyPhases, ","), "the phases to run, comma-separated: get1, get3, sse6 (or ws6), sse40 (or ws40)")
	fs.IntVar(&c.pid, "pid", 0, "with --url: the server's process id, whose memory is read from /proc (without it, --url runs measure no memory)")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "wait before each phase, for the server to settle after the one before")
	fs.DurationVar(&c.phaseTimeout, "phase-timeout", 10*time.Minute, "time one phase has for all its readers to reach the head")
}

// check checks the flags once parsed, and reads --phases.
func (c *historyConfig) check(fs *flag.FlagSet) error {
	err := checkFlags(
		check{c.url != "" && cliflag.Given(fs, "respawn") && c.respawn, "--respawn needs --spawn"},
		check{c.commits <= 0 || c.restartCommits <= 0, "--commits and --restart-commits must be positive"},
		check{c.valueBytes < minHistoryValue || c.restartValueBytes < minHistoryValue,
			fmt.Sprintf("--value-bytes and --restart-value-bytes must be at least %d", minHistoryValue)},
		check{c.subscribers <= 0 || c.restartSubscribers <= 0, "--subscribers and --restart-subscribers must be positive"},
		check{c.writers <= 0, "--writers must be positive"},
		check{c.pid < 0, "--pid must not be negative"},
		check{c.pid > 0 && c.spawn, "--pid is for --url; a spawned server is measured anyway"},
		check{c.settle < 0, "--settle must not be negative"},
		check{c.phaseTimeout <= 0, "--phase-timeout must be positive"})
	if err != nil {
		return err
	}
	if c.selected, err = parsePhases(c.phases); err != nil {
		return fmt.Errorf("%w: --phases: %w", cliflag.ErrBadFlag, err)
	}
	c.respawn = c.respawn && c.spawn
	if c.spawn {
		c.serverArgs = append(c.serverArgs, c.valueLimitArgs()...)
	}
	return nil
}

// parsePhases returns the phases named in s, comma-separated, in the
// order they run; ws6 and ws40 stand for sse6 and sse40.
func parsePhases(s string) ([]string, error) {
	want := map[string]bool{}
	for name := range strings.SplitSeq(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch name {
		case "":
			continue
		case "ws6":
			name = phaseSubs
		case "ws40":
			name = phaseRestart
		}
		known := false
		for _, p := range historyPhases {
			known = known || p == name
		}
		if !known {
			return nil, fmt.Errorf("unknown phase %q (want get1, get3, sse6, sse40)", name)
		}
		want[name] = true
	}
	var phases []string
	for _, p := range historyPhases {
		if want[p] {
			phases = append(phases, p)
		}
	}
	if len(phases) == 0 {
		return nil, errors.New("no phase given")
	}
	return phases, nil
}

// needs reports whether a selected phase reads the long history (main)
// and the second one (restart).
func (c *historyConfig) needs() (main, restart bool) {
	for _, p := range c.selected {
		if p == phaseRestart {
			restart = true
		} else {
			main = true
		}
	}
	return main, restart
}

// valueLimitArgs returns the spawned server's --max-value and --max-body
// when the values written are larger than their defaults and the
// environment does not set them.
func (c *historyConfig) valueLimitArgs() []string {
	main, restart := c.needs()
	need := 0
	if main {
		need = int(c.valueBytes)
	}
	if restart {
		need = max(need, int(c.restartValueBytes))
	}
	var args []string
	if _, set := os.LookupEnv("VIEWSYNC_MAX_VALUE"); !set && need > viewsync.DefaultMaxValueBytes {
		args = append(args, "--max-value", strconv.Itoa(need))
	}
	// The body of a PUT is the value itself.
	if _, set := os.LookupEnv("VIEWSYNC_MAX_BODY"); !set && need > httpapi.DefaultMaxBodyBytes {
		args = append(args, "--max-body", strconv.Itoa(need))
	}
	return args
}

// historyReport is the result of a history run.
type historyReport struct {
	reportHead
	// Respawned is true when the spawned server was started anew on its
	// data before each phase.
	Respawned bool `json:"respawned"`
	// PID is the server process whose memory was read (the first one
	// when respawned); 0 when none was.
	PID int `json:"pid,omitempty"`
	// Histories are the collections written, the long one first.
	Histories []*historyWrite `json:"histories"`
	// IdleAnonBytes is the server's RssAnon once the histories were
	// written and the server had settled, before the first phase.
	IdleAnonBytes uint64          `json:"idle_anon_bytes,omitempty"`
	Phases        []*historyPhase `json:"phases"`
}

// historyWrite is the making of one history; with --write=false, only
// the collection and its head.
type historyWrite struct {
	Collection    string  `json:"collection"`
	Commits       int     `json:"commits"`
	ValueBytes    int     `json:"value_bytes"`
	Written       int64   `json:"written"`
	Errors        int64   `json:"errors"`
	LastError     string  `json:"last_error,omitempty"`
	Seconds       float64 `json:"seconds"`
	CommitsPerSec float64 `json:"commits_per_second"`
	// Epoch and Head are the collection's head once written: the readers
	// read from version 0 of Epoch to Head. Head is above Commits when the
	// collection held commits before.
	Epoch string `json:"epoch"`
	Head  uint64 `json:"head"`
}

// run runs the scenario.
func (c *historyConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	conns := max(c.subscribers, c.restartSubscribers, 3) + c.writers + 1
	t, err := openTarget(ctx, &c.benchCommon, conns, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	pid := c.pid
	if t.server != nil {
		pid = t.server.pid()
	}
	if pid > 0 {
		if _, err := readAnon(pid); err != nil {
			fmt.Fprintf(stderr, "bench: cannot read the memory of pid %d, it is not measured: %v\n", pid, err)
			pid = 0
		}
	}
	rep := &historyReport{reportHead: t.head("history", c.transport), Respawned: c.respawn, PID: pid}

	client := t.keepAliveClient(c.writers)
	defer client.CloseIdleConnections()
	main, restart := c.needs()
	var long, second *historyWrite
	if main {
		long = &historyWrite{Collection: c.collection, Commits: c.commits, ValueBytes: int(c.valueBytes)}
		rep.Histories = append(rep.Histories, long)
	}
	if restart {
		second = &historyWrite{Collection: c.collection + "-restart", Commits: c.restartCommits, ValueBytes: int(c.restartValueBytes)}
		rep.Histories = append(rep.Histories, second)
	}
	for _, h := range rep.Histories {
		if !c.write {
			head, err := getHead(ctx, client, t.base, h.Collection)
			if err != nil {
				return err
			}
			if head.Version == 0 {
				return fmt.Errorf("%s is empty: write it first (run without --write=false)", h.Collection)
			}
			h.Commits, h.ValueBytes, h.Epoch, h.Head = 0, 0, head.Epoch, head.Version
			continue
		}
		if err := writeHistory(ctx, t, client, h, c.writers, stderr); err != nil {
			return err
		}
		if h.Errors > 0 {
			printReport(stdout, c.json, rep, rep.rows())
			return fmt.Errorf("%d writes to %s failed; the last: %s", h.Errors, h.Collection, h.LastError)
		}
	}
	client.CloseIdleConnections()
	if pid > 0 {
		sleepFor(ctx, c.settle)
		rep.IdleAnonBytes, _ = readAnon(pid)
	}

	for _, name := range c.selected {
		spec := phaseSpec{name: name, hist: long, how: "get", readers: 1}
		switch name {
		case phaseGet3:
			spec.readers = 3
		case phaseSubs:
			spec.how, spec.readers = c.transport, c.subscribers
		case phaseRestart:
			spec.hist, spec.how, spec.readers = second, c.transport, c.restartSubscribers
		}
		if spec.how == "ws" {
			spec.name = strings.Replace(name, "sse", "ws", 1)
		}
		if c.respawn {
			if err := respawn(ctx, t, stderr); err != nil {
				return err
			}
			if pid > 0 {
				pid = t.server.pid()
			}
		}
		ph := runHistoryPhase(ctx, t, c, spec, pid, stderr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Phases = append(rep.Phases, ph)
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	var problems []string
	for _, ph := range rep.Phases {
		if ph.Finished < ph.Readers || ph.InOrder+ph.CaughtUp < ph.Readers {
			problems = append(problems, fmt.Sprintf("%s: %d of %d readers reached the head, %d with every commit", ph.Name, ph.Finished, ph.Readers, ph.InOrder+ph.CaughtUp))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// writeHistory has writers make h.Commits commits of h.ValueBytes to
// h.Collection, printing progress, and fills in h.
func writeHistory(ctx context.Context, t *benchTarget, client *http.Client, h *historyWrite, writers int, stderr io.Writer) error {
	before, err := getHead(ctx, client, t.base, h.Collection)
	if err != nil {
		return err
	}
	if before.Version > 0 {
		fmt.Fprintf(stderr, "bench: %s already holds %d commits; the readers read them too\n", h.Collection, before.Version)
	}
	fmt.Fprintf(stderr, "bench: writing %d commits of %s to %s with %d writers\n", h.Commits, sizeText(h.ValueBytes), h.Collection, writers)
	prefix := t.base + "/v1/collections/" + h.Collection + "/records/r"
	start := time.Now()
	w := makeCommits(ctx, t, writers, h.Commits, "written",
		func(n int) string { return prefix + strconv.Itoa(n%historyRecords) },
		func(n int) []byte { return historyValue(n, h.ValueBytes) }, stderr)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	took := time.Since(start)
	h.Written, h.Errors = w.ok.Load(), w.errs.Load()
	h.Seconds, h.CommitsPerSec = round3(took.Seconds()), rate(h.Written, took)
	if w.lastErr != nil {
		h.LastError = w.lastErr.Error()
	}
	head, err := getHead(ctx, client, t.base, h.Collection)
	if err != nil {
		return err
	}
	h.Epoch, h.Head = head.Epoch, head.Version
	fmt.Fprintf(stderr, "bench: %s at version %d (epoch %s) after %.1fs\n", h.Collection, h.Head, h.Epoch, took.Seconds())
	return nil
}

// historyValue is the value of the i-th commit: a JSON string of exactly
// size bytes (at least minHistoryValue).
func historyValue(i, size int) []byte {
	b := fmt.Appendf(make([]byte, 0, size), `"commit %d `, i)
	for len(b) < size-1 {
		b = append(b, 'x')
	}
	return append(b, '"')
}

func (r *historyReport) rows() []reportRow {
	rows := []reportRow{{"scenario", fmt.Sprintf("history over %s, %s", r.Transport, r.URL)}}
	switch {
	case r.PID > 0 && r.Respawned:
		rows = append(rows, reportRow{"server memory", fmt.Sprintf("RssAnon of the spawned server, started anew before each phase, read every %v", historySampleEvery)})
	case r.PID > 0:
		rows = append(rows, reportRow{"server memory", fmt.Sprintf("RssAnon of pid %d, read every %v", r.PID, historySampleEvery)})
	default:
		rows = append(rows, reportRow{"server memory", "not measured (give --spawn, or --pid with --url)"})
	}
	for _, h := range r.Histories {
		if h.Commits == 0 {
			rows = append(rows, reportRow{"history " + h.Collection, fmt.Sprintf("as found (not written): head %s:%d", h.Epoch, h.Head)})
			continue
		}
		rows = append(rows, reportRow{"history " + h.Collection, fmt.Sprintf("%d of %d commits of %s written in %.1fs (%.0f/s), %d failed; head %s:%d",
			h.Written, h.Commits, sizeText(h.ValueBytes), h.Seconds, h.CommitsPerSec, h.Errors, h.Epoch, h.Head)})
		if h.LastError != "" {
			rows = append(rows, reportRow{"  last write error", h.LastError})
		}
	}
	if r.IdleAnonBytes > 0 {
		rows = append(rows, reportRow{"server idle", "RssAnon " + mib(r.IdleAnonBytes) + " before the first phase"})
	}
	var summary []string
	for _, ph := range r.Phases {
		rows = append(rows, reportRow{ph.Name, fmt.Sprintf("%d %s, %s from version 0 to %d", ph.Readers, readersText(ph.How, ph.Readers), ph.Collection, ph.Head)})
		if m := ph.Memory; m != nil {
			rows = append(rows, reportRow{"  server memory", fmt.Sprintf("+%s at the peak (RssAnon %s before, %s at the peak; pid %d, %d samples)", mib(m.AddedBytes), mib(m.BeforeBytes), mib(m.PeakBytes), m.PID, m.Samples)})
			summary = append(summary, fmt.Sprintf("%s +%s", ph.Name, mib(m.AddedBytes)))
		}
		rows = append(rows,
			reportRow{"  readers", fmt.Sprintf("%d/%d at the head in %.2fs; %d got commits 1..%d once in order, %d through a catch-up or reset; %d missing, %d duplicated",
				ph.Finished, ph.Readers, ph.Seconds, ph.InOrder, ph.Head, ph.CaughtUp, ph.Missing, ph.Duplicated)},
			reportRow{"  retries", fmt.Sprintf("%d busy (503, unavailable end, close 1013), %d after errors; %d requests, %s read",
				ph.Busy, ph.Errors, ph.Requests, mib(uint64(ph.Bytes)))})
		if ph.LastError != "" {
			rows = append(rows, reportRow{"  last error", ph.LastError})
		}
	}
	if len(summary) > 0 {
		rows = append(rows, reportRow{"memory added", strings.Join(summary, ", ")})
		switch {
		case r.Respawned:
			rows = append(rows, reportRow{"", "each phase on a server started anew on the data"})
		case len(summary) > 1:
			rows = append(rows, reportRow{"", "one server for all phases: each phase after the first may reuse memory an earlier one left (peak above its start)"})
		}
	}
	return rows
}
