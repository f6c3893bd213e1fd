package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/httpapi"
)

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
func benchHistory(ctx context.Context, cmd *Command, args []string, stdout, stderr io.Writer) error {
	c := &historyConfig{benchCommon: newBenchCommon(cmd), valueBytes: 200 << 10, restartValueBytes: 20 << 10}
	fs := flag.NewFlagSet("bench history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.transport, "transport", "sse", "how the subscribers of sse6 and sse40 connect: sse (Server-Sent Events) or ws (WebSocket)")
	c.registerTarget(fs, "the collection of the long history, read by get1, get3 and sse6 (sse40 reads COLLECTION-restart)")
	fs.IntVar(&c.commits, "commits", 1000, "commits of the long history, each a PUT of one record")
	fs.Var(&c.valueBytes, "value-bytes", "size of each value of the long history: a JSON string (bytes, or with KiB/MiB; default 200KiB)")
	fs.IntVar(&c.subscribers, "subscribers", 6, "subscribers of phase sse6, each resuming from version 0")
	fs.IntVar(&c.restartCommits, "restart-commits", 1000, "commits of the second history, read by sse40")
	fs.Var(&c.restartValueBytes, "restart-value-bytes", "size of each value of the second history (bytes, or with KiB/MiB; default 20KiB)")
	fs.IntVar(&c.restartSubscribers, "restart-subscribers", 40, "subscribers of phase sse40, each resuming from version 0, as after a server restart")
	fs.IntVar(&c.writers, "writers", 8, "concurrent writers making the histories")
	fs.BoolVar(&c.write, "write", true, "make the histories; --write=false reads the collections as they are, to their heads (written by an earlier run, against a server restarted since)")
	fs.BoolVar(&c.respawn, "respawn", true, "with --spawn: start the server anew on its data before each phase, so that no phase starts with the memory an earlier one left in the server")
	fs.StringVar(&c.phases, "phases", strings.Join(historyPhases, ","), "the phases to run, comma-separated: get1, get3, sse6 (or ws6), sse40 (or ws40)")
	fs.IntVar(&c.pid, "pid", 0, "with --url: the server's process id, whose memory is read from /proc (without it, --url runs measure no memory)")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "wait before each phase, for the server to settle after the one before")
	fs.DurationVar(&c.phaseTimeout, "phase-timeout", 10*time.Minute, "time one phase has for all its readers to reach the head")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: viewsync bench history [flags]

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
`)
		fs.PrintDefaults()
	}
	if err := parseBenchFlags(fs, &c.benchCommon, args); err != nil {
		return err
	}
	if c.url != "" && cliflag.Given(fs, "respawn") && c.respawn {
		return fmt.Errorf("%w: --respawn needs --spawn", cliflag.ErrBadFlag)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	if c.spawn {
		c.serverArgs = append(c.serverArgs, c.valueLimitArgs()...)
	}
	return runHistory(ctx, c, stdout, stderr)
}

// validate checks the scenario's own flags and parses --phases.
func (c *historyConfig) validate() error {
	switch {
	case c.commits <= 0 || c.restartCommits <= 0:
		return errors.New("--commits and --restart-commits must be positive")
	case c.valueBytes < minHistoryValue || c.restartValueBytes < minHistoryValue:
		return fmt.Errorf("--value-bytes and --restart-value-bytes must be at least %d", minHistoryValue)
	case c.subscribers <= 0 || c.restartSubscribers <= 0:
		return errors.New("--subscribers and --restart-subscribers must be positive")
	case c.writers <= 0:
		return errors.New("--writers must be positive")
	case c.pid < 0:
		return errors.New("--pid must not be negative")
	case c.pid > 0 && c.spawn:
		return errors.New("--pid is for --url; a spawned server is measured anyway")
	case c.settle < 0:
		return errors.New("--settle must not be negative")
	case c.phaseTimeout <= 0:
		return errors.New("--phase-timeout must be positive")
	}
	if !c.spawn {
		c.respawn = false
	}
	var err error
	c.selected, err = parsePhases(c.phases)
	if err != nil {
		return fmt.Errorf("--phases: %w", err)
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
	Scenario  string `json:"scenario"`
	Transport string `json:"transport"`
	URL       string `json:"url"`
	Spawned   bool   `json:"spawned"`
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

// historyPhase is the result of one phase.
type historyPhase struct {
	Name       string `json:"name"`
	Collection string `json:"collection"`
	// How the readers read: "get" (pages of changes), "sse" or "ws".
	How     string `json:"how"`
	Readers int    `json:"readers"`
	// Head is the version each reader reads to, from 0.
	Head    uint64  `json:"head"`
	Seconds float64 `json:"seconds"`
	// Finished readers reached the head. InOrder ones got every commit
	// 1..Head exactly once, in order; CaughtUp ones reached it through a
	// catch-up or reset, without a commit missing or repeated besides.
	Finished int `json:"finished"`
	InOrder  int `json:"in_order"`
	CaughtUp int `json:"caught_up"`
	// Commits is how many commits the readers received, in all; Missing
	// and Duplicated the ones skipped without a catch-up and received
	// again.
	Commits    int64 `json:"commits"`
	Missing    int64 `json:"missing"`
	Duplicated int64 `json:"duplicated"`
	CatchUps   int64 `json:"catch_ups"`
	Resets     int64 `json:"resets"`
	// Busy counts the times a reader was sent away to come back later
	// (503 unavailable, an SSE "unavailable" error event, a WebSocket
	// close 1013) and retried from its cursor; Errors the other failed
	// requests and stream ends, retried after a second.
	Busy      int64  `json:"busy_retries"`
	Errors    int64  `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// Requests counts the GETs, or the connections of the subscribers;
	// Bytes what they read.
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
	// Memory is the server's memory during the phase; nil when it was not
	// read.
	Memory *phaseMemory `json:"memory,omitempty"`
}

// phaseMemory is the server's anonymous memory (RssAnon) during a phase.
type phaseMemory struct {
	PID int `json:"pid"`
	// BeforeBytes is read just before the phase, PeakBytes the highest
	// sample during it; AddedBytes is the difference.
	BeforeBytes uint64 `json:"before_bytes"`
	PeakBytes   uint64 `json:"peak_bytes"`
	AddedBytes  uint64 `json:"added_bytes"`
	Samples     int64  `json:"samples"`
}

func runHistory(ctx context.Context, c *historyConfig, stdout, stderr io.Writer) error {
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
	rep := &historyReport{Scenario: "history", Transport: c.transport, URL: t.base, Spawned: t.server != nil, Respawned: c.respawn, PID: pid}

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
	var (
		next, ok, errs atomic.Int64
		mu             sync.Mutex
		lastErr        error
		prev           int64
		wg             sync.WaitGroup
	)
	prog := startTicker(stderr, t, func(_, since time.Duration) string {
		n := ok.Load()
		line := fmt.Sprintf("written %d/%d commits (%.0f/s)  errors %d", n, h.Commits, rate(n-prev, since), errs.Load())
		prev = n
		return line
	})
	defer prog.stop()
	prefix := t.base + "/v1/collections/" + h.Collection + "/records/r"
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := int(next.Add(1))
				if n > h.Commits {
					return
				}
				if _, err := put(ctx, client, prefix+strconv.Itoa(n%historyRecords), historyValue(n, h.ValueBytes)); err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					mu.Lock()
					lastErr = err
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	prog.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	took := time.Since(start)
	h.Written, h.Errors = ok.Load(), errs.Load()
	h.Seconds, h.CommitsPerSec = round3(took.Seconds()), rate(h.Written, took)
	if lastErr != nil {
		h.LastError = lastErr.Error()
	}
	head, err := getHead(ctx, client, t.base, h.Collection)
	if err != nil {
		return err
	}
	h.Epoch, h.Head = head.Epoch, head.Version
	fmt.Fprintf(stderr, "bench: %s at version %d (epoch %s) after %.1fs\n", h.Collection, h.Head, h.Epoch, took.Seconds())
	return nil
}

// respawn stops the spawned server and starts it again, the same
// executable with the same arguments, on the same data; the target then
// points at the new one.
func respawn(ctx context.Context, t *benchTarget, stderr io.Writer) error {
	old := t.server
	t.dialer.closeIdle()
	old.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-old.exited:
	case <-time.After(15 * time.Second):
		old.cmd.Process.Kill()
		<-old.exited
	}
	if !old.cmd.ProcessState.Success() {
		t.server = nil
		old.removeDir()
		return fmt.Errorf("the spawned server ended with %v; the end of its log:\n%s", old.cmd.ProcessState, old.stderr)
	}
	s, err := spawnProcess(ctx, old.cmd.Path, old.cmd.Args[1:], old.dir, "server", stderr)
	if err != nil {
		t.server = nil
		old.removeDir()
		return err
	}
	t.server, t.base = s, "http://"+s.addr
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

// phaseSpec says what one phase does.
type phaseSpec struct {
	name string
	hist *historyWrite
	// how is "get", "sse" or "ws".
	how     string
	readers int
}

// runHistoryPhase runs one phase: its readers at once, each from version
// 0 to the head, while the server's memory is sampled.
func runHistoryPhase(ctx context.Context, t *benchTarget, c *historyConfig, spec phaseSpec, pid int, stderr io.Writer) *historyPhase {
	h := spec.hist
	ph := &historyPhase{Name: spec.name, Collection: h.Collection, How: spec.how, Readers: spec.readers, Head: h.Head}
	sleepFor(ctx, c.settle)
	fmt.Fprintf(stderr, "bench: phase %s: %d %s reading %s from version 0 to %d\n", ph.Name, ph.Readers, readersText(spec.how, spec.readers), h.Collection, h.Head)
	var mem *anonSampler
	if pid > 0 {
		var err error
		if mem, err = startAnonSampler(pid, historySampleEvery); err != nil {
			fmt.Fprintf(stderr, "bench: phase %s: memory not measured: %v\n", ph.Name, err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, c.phaseTimeout)
	defer cancel()
	readers := make([]*historyReader, spec.readers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range readers {
		r := &historyReader{target: t, coll: h.Collection, head: h.Head, epoch: h.Epoch}
		readers[i] = r
		wg.Go(func() {
			switch spec.how {
			case "get":
				hc := &http.Client{Transport: &http.Transport{DialContext: t.dialer.dial, DisableCompression: true}}
				defer hc.CloseIdleConnections()
				r.run(pctx, func(ctx context.Context) (time.Duration, bool, error) { return r.getPage(ctx, hc) })
			case "ws":
				r.run(pctx, r.readWS)
			default:
				r.run(pctx, r.readSSE)
			}
		})
	}
	prog := startTicker(stderr, t, func(_, _ time.Duration) string {
		lo, hi, done, busy := h.Head, uint64(0), 0, int64(0)
		for _, r := range readers {
			at := r.at.Load()
			lo, hi = min(lo, at), max(hi, at)
			if r.done.Load() {
				done++
			}
			busy += r.busy.Load()
		}
		line := fmt.Sprintf("%s: readers at versions %d to %d of %d, %d/%d done, busy retries %d", ph.Name, lo, hi, h.Head, done, len(readers), busy)
		if mem != nil {
			last, peak := mem.now()
			line += fmt.Sprintf("  server RssAnon %s (peak +%s)", mib(last), mib(peak-mem.before))
		}
		return line
	})
	wg.Wait()
	elapsed := time.Since(start)
	prog.stop()
	if mem != nil {
		ph.Memory = mem.stop()
	}
	ph.Seconds = round3(elapsed.Seconds())
	for _, r := range readers {
		if r.done.Load() {
			ph.Finished++
			switch {
			case r.missing > 0 || r.dups > 0:
			case r.catchUps > 0 || r.resets > 0:
				ph.CaughtUp++
			case r.commits == int64(h.Head):
				ph.InOrder++
			}
		}
		ph.Commits += r.commits
		ph.Missing += r.missing
		ph.Duplicated += r.dups
		ph.CatchUps += r.catchUps
		ph.Resets += r.resets
		ph.Busy += r.busy.Load()
		ph.Errors += r.errs
		ph.Requests += r.requests
		ph.Bytes += r.bytes
		if r.lastErr != nil {
			ph.LastError = r.lastErr.Error()
		}
	}
	added := "not measured"
	if ph.Memory != nil {
		added = "+" + mib(ph.Memory.AddedBytes) + " at its peak"
	}
	fmt.Fprintf(stderr, "bench: phase %s done in %.1fs: %d/%d readers at the head; server memory %s\n", ph.Name, elapsed.Seconds(), ph.Finished, ph.Readers, added)
	return ph
}

// readersText names count readers that read how.
func readersText(how string, count int) string {
	s := map[string]string{"get": "client paging GET /changes", "sse": "SSE subscriber", "ws": "WebSocket subscriber"}[how]
	if count == 1 {
		return s
	}
	if how == "get" {
		return "clients paging GET /changes"
	}
	return s + "s"
}

// historyReader is one client reading a history from version 0 to the
// head: by pages of changes or as a subscriber, resuming from its cursor
// whenever it is sent away.
type historyReader struct {
	target *benchTarget
	coll   string
	head   uint64

	// at is the version reached; done is set once it is the head; busy
	// counts the busy answers. They are read by the progress line.
	at   atomic.Uint64
	done atomic.Bool
	busy atomic.Int64

	// Owned by the reader's goroutine until it has ended.
	epoch                                    string
	commits, missing, dups, catchUps, resets int64
	errs, requests, bytes                    int64
	lastErr                                  error
}

// readAttempt is one request or stream of a reader. It returns how long to
// wait before the next when the server sent the reader away busy.
type readAttempt func(ctx context.Context) (retryAfter time.Duration, busy bool, err error)

// run makes attempts until the reader is at the head, ctx ends, or
// historyMaxFails attempts in a row failed without progress.
func (r *historyReader) run(ctx context.Context, attempt readAttempt) {
	fails := 0
	for r.at.Load() < r.head {
		from := r.at.Load()
		wait, busy, err := attempt(ctx)
		if ctx.Err() != nil {
			r.lastErr = fmt.Errorf("at version %d of %d when the phase ended: %w", r.at.Load(), r.head, ctx.Err())
			return
		}
		if r.at.Load() > from {
			fails = 0
		}
		switch {
		case busy:
			r.busy.Add(1)
		case err != nil:
			r.errs++
			r.lastErr = err
			if fails++; fails >= historyMaxFails {
				return
			}
			wait = time.Second
		default:
			continue
		}
		sleepFor(ctx, wait)
	}
	r.done.Store(true)
}

// commit takes a commit of version v.
func (r *historyReader) commit(v uint64) {
	switch last := r.at.Load(); {
	case v == last+1:
		r.commits++
	case v <= last:
		r.dups++
		return
	default:
		r.missing += int64(v - last - 1)
	}
	r.at.Store(v)
}

// reset takes a reset to version v of epoch.
func (r *historyReader) reset(epoch string, v uint64) {
	r.resets++
	r.epoch = epoch
	r.at.Store(v)
}

// catchUp takes a compacted catch-up to version v.
func (r *historyReader) catchUp(epoch string, v uint64) error {
	if epoch != r.epoch {
		return fmt.Errorf("catch-up of epoch %s at cursor %s:%d", epoch, r.epoch, r.at.Load())
	}
	r.catchUps++
	r.at.Store(max(r.at.Load(), v))
	return nil
}

// getPage reads the next page of changes after the reader's cursor.
func (r *historyReader) getPage(ctx context.Context, client *http.Client) (time.Duration, bool, error) {
	after := r.at.Load()
	q := url.Values{"after": {strconv.FormatUint(after, 10)}, "epoch": {r.epoch}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.target.base+"/v1/collections/"+r.coll+"/changes?"+q.Encode(), nil)
	if err != nil {
		return 0, false, err
	}
	r.requests++
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body := &countingReader{r: resp.Body}
	defer func() { r.bytes += body.n }()
	if resp.StatusCode != http.StatusOK {
		return refusal(resp, body, fmt.Sprintf("GET changes after %d", after))
	}
	ans, err := decodeChanges(body, r.commit)
	if err != nil {
		return 0, false, fmt.Errorf("GET changes after %d: %w", after, err)
	}
	switch {
	case ans.reset:
		r.reset(ans.epoch, ans.version)
	case ans.compacted:
		err = r.catchUp(ans.epoch, ans.version)
	case ans.epoch != r.epoch:
		err = fmt.Errorf("GET changes after %d: commits of epoch %s, not %s", after, ans.epoch, r.epoch)
	case ans.commits == 0:
		err = fmt.Errorf("GET changes after %d: no commits before the head %d", after, r.head)
	}
	return 0, false, err
}

// retryAfter returns the wait a Retry-After header asks for, in seconds; a
// second when it has none.
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return time.Second
}

// changesAnswer is what a reader needs of an answer of the changes
// endpoint.
type changesAnswer struct {
	epoch            string
	version          uint64
	reset, compacted bool
	commits, records int
	deleted          int
}

// decodeChanges decodes an answer of the changes endpoint as it arrives,
// one commit at a time, so that a page of hundreds of megabytes is never
// in the bench's memory at once; commit is called with each commit's
// version, in order.
func decodeChanges(rd io.Reader, commit func(uint64)) (changesAnswer, error) {
	var a changesAnswer
	dec := json.NewDecoder(rd)
	if err := expectDelim(dec, '{'); err != nil {
		return a, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return a, err
		}
		var skip json.RawMessage
		switch tok {
		case "epoch":
			err = dec.Decode(&a.epoch)
		case "version":
			err = dec.Decode(&a.version)
		case "reset":
			err = dec.Decode(&a.reset)
		case "compacted":
			err = dec.Decode(&a.compacted)
		case "commits":
			err = eachElement(dec, func() error {
				var c struct {
					Version uint64 `json:"version"`
				}
				if err := dec.Decode(&c); err != nil {
					return err
				}
				a.commits++
				commit(c.Version)
				return nil
			})
		case "records":
			err = eachElement(dec, func() error {
				a.records++
				return dec.Decode(&skip)
			})
		case "deleted":
			err = eachElement(dec, func() error {
				a.deleted++
				return dec.Decode(&skip)
			})
		default:
			err = dec.Decode(&skip)
		}
		if err != nil {
			return a, err
		}
	}
	return a, expectDelim(dec, '}')
}

// expectDelim reads the next token, which must be d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("found %v where %v was expected", tok, d)
	}
	return nil
}

// eachElement calls elem for each element of the array (or null) that
// comes next; elem decodes it.
func eachElement(dec *json.Decoder, elem func() error) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("found %v where an array was expected", tok)
	}
	for dec.More() {
		if err := elem(); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

// readSSE subscribes over Server-Sent Events from the reader's cursor and
// reads until the head, an "unavailable" error event (busy) or the
// stream's end.
func (r *historyReader) readSSE(ctx context.Context) (time.Duration, bool, error) {
	cur := protocol.Cursor{Epoch: r.epoch, Version: r.at.Load()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.target.base+"/v1/collections/"+r.coll+"/events", nil)
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", cur.String())
	r.requests++
	resp, err := r.target.dialer.client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body := &countingReader{r: resp.Body}
	defer func() { r.bytes += body.n }()
	if resp.StatusCode != http.StatusOK {
		return refusal(resp, body, "GET events from "+cur.String())
	}
	br := bufio.NewReaderSize(body, 64<<10)
	var id, event, data []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return 0, false, fmt.Errorf("the stream ended at version %d: %w", r.at.Load(), err)
		}
		if len(line) == 0 {
			if len(event) > 0 {
				busy, err := r.sseEvent(id, event, data)
				if busy || err != nil {
					return time.Second, busy, err
				}
				if r.at.Load() >= r.head {
					return 0, false, nil
				}
			}
			id, event, data = id[:0], event[:0], data[:0]
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "id":
			id = append(id[:0], value...)
		case "event":
			event = append(event[:0], value...)
		case "data":
			// Only an error's data is needed; commits' may be large.
			if string(event) == "error" {
				data = append(data[:0], value...)
			}
		}
	}
}

// sseEvent takes one event; busy is true for an "unavailable" error.
func (r *historyReader) sseEvent(id, event, data []byte) (busy bool, err error) {
	if string(event) == "error" {
		var eb protocol.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code == protocol.CodeUnavailable {
			return true, nil
		}
		return false, fmt.Errorf("error event at version %d: %s", r.at.Load(), data)
	}
	cur, err := protocol.ParseCursor(string(id))
	if err != nil {
		return false, fmt.Errorf("%s event: %w", event, err)
	}
	switch string(event) {
	case "commit":
		r.commit(cur.Version)
	case "reset":
		r.reset(cur.Epoch, cur.Version)
	case "catchup":
		return false, r.catchUp(cur.Epoch, cur.Version)
	default:
		return false, fmt.Errorf("unknown event %q", event)
	}
	return false, nil
}

// readWS subscribes over a WebSocket connection of its own from the
// reader's cursor and reads until the head, a close 1013 or an
// "unavailable" error (busy), or the connection's end.
func (r *historyReader) readWS(ctx context.Context) (time.Duration, bool, error) {
	cur := protocol.Cursor{Epoch: r.epoch, Version: r.at.Load()}
	r.requests++
	s, err := r.target.dialer.openWS(ctx, r.target.base, r.coll, &cur)
	if err != nil {
		if se := gws.StatusError(0); errors.As(err, &se) && int(se) == http.StatusServiceUnavailable {
			return time.Second, true, nil
		}
		return 0, false, err
	}
	defer s.close()
	in := &countingReader{r: s.br}
	defer func() { r.bytes += in.n }()
	var buf []byte
	for {
		msg, code, err := readWSText(in, s.conn, buf)
		switch {
		case code == statusTryAgainLater:
			return time.Second, true, nil
		case code != 0:
			return 0, false, fmt.Errorf("the server closed the connection at version %d: %d", r.at.Load(), code)
		case err != nil:
			return 0, false, fmt.Errorf("the connection ended at version %d: %w", r.at.Load(), err)
		}
		busy, err := r.wsMessage(msg)
		if busy || err != nil {
			return time.Second, busy, err
		}
		if r.at.Load() >= r.head {
			return 0, false, nil
		}
		buf = msg[:0]
	}
}

// readWSText reads the next text message from a server into buf, answering
// pings on w; a close frame's status code is returned as code. (The
// library's own control handling refuses some codes the server may send,
// like 1013.)
func readWSText(rd io.Reader, w io.Writer, buf []byte) (msg []byte, code gws.StatusCode, err error) {
	msg = buf[:0]
	for {
		h, err := gws.ReadHeader(rd)
		if err != nil {
			return nil, 0, err
		}
		if h.Length > 64<<20 || h.Masked {
			return nil, 0, fmt.Errorf("server frame of %d bytes (masked %v)", h.Length, h.Masked)
		}
		n := len(msg)
		msg = slices.Grow(msg, int(h.Length))[:n+int(h.Length)]
		if _, err := io.ReadFull(rd, msg[n:]); err != nil {
			return nil, 0, err
		}
		switch h.OpCode {
		case gws.OpText, gws.OpContinuation:
			if h.Fin {
				return msg, 0, nil
			}
			continue
		case gws.OpPing:
			err = wsutil.WriteClientMessage(w, gws.OpPong, msg[n:])
		case gws.OpClose:
			code, _ = gws.ParseCloseFrameData(msg[n:])
			if code == 0 {
				code = gws.StatusNoStatusRcvd
			}
			return nil, code, nil
		case gws.OpPong:
		default:
			err = fmt.Errorf("server sent a %v frame", h.OpCode)
		}
		if err != nil {
			return nil, 0, err
		}
		msg = msg[:n]
	}
}

// statusTryAgainLater is the WebSocket close code 1013, Try Again Later:
// the server sends it when it is too busy reading history.
const statusTryAgainLater gws.StatusCode = 1013

// wsMessage takes one message; busy is true for an "unavailable" error.
// Commits are read by looking up their version; the rest are decoded
// without their records.
func (r *historyReader) wsMessage(b []byte) (busy bool, err error) {
	if bytes.HasPrefix(b, commitPrefix) {
		v := extractInt(b, `"version":`)
		if v <= 0 {
			return false, fmt.Errorf("commit without a version: %.200s", b)
		}
		r.commit(uint64(v))
		return false, nil
	}
	var m struct {
		Type    string        `json:"type"`
		Epoch   string        `json:"epoch"`
		Version uint64        `json:"version"`
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return false, fmt.Errorf("message %.200s: %w", b, err)
	}
	switch m.Type {
	case protocol.TypeReset:
		r.reset(m.Epoch, m.Version)
	case protocol.TypeCatchUp:
		return false, r.catchUp(m.Epoch, m.Version)
	case protocol.TypeError:
		if m.Code == protocol.CodeUnavailable {
			return true, nil
		}
		return false, fmt.Errorf("server error %s: %s", m.Code, m.Message)
	default:
		return false, fmt.Errorf("unexpected %s message", m.Type)
	}
	return false, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readAnon returns the anonymous resident memory (RssAnon) of process
// pid, in bytes.
func readAnon(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseProcStatus(b, "RssAnon")
}

// anonSampler reads a process's RssAnon every so often, keeping the peak.
type anonSampler struct {
	pid    int
	before uint64
	// last and peak are written by the sampling goroutine only.
	last, peak atomic.Uint64
	samples    atomic.Int64
	done       chan struct{}
	wg         sync.WaitGroup
}

// startAnonSampler reads pid's memory now, as the figure before, and then
// every interval until stop.
func startAnonSampler(pid int, every time.Duration) (*anonSampler, error) {
	before, err := readAnon(pid)
	if err != nil {
		return nil, err
	}
	s := &anonSampler{pid: pid, before: before, done: make(chan struct{})}
	s.sample(before)
	s.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
			if v, err := readAnon(s.pid); err == nil {
				s.sample(v)
			}
		}
	})
	return s, nil
}

func (s *anonSampler) sample(v uint64) {
	s.last.Store(v)
	s.peak.Store(max(s.peak.Load(), v))
	s.samples.Add(1)
}

// now returns the last sample and the peak so far.
func (s *anonSampler) now() (last, peak uint64) { return s.last.Load(), s.peak.Load() }

// stop ends the sampling, takes a last sample and returns the figures.
func (s *anonSampler) stop() *phaseMemory {
	close(s.done)
	s.wg.Wait()
	if v, err := readAnon(s.pid); err == nil {
		s.sample(v)
	}
	m := &phaseMemory{PID: s.pid, BeforeBytes: s.before, PeakBytes: s.peak.Load(), Samples: s.samples.Load()}
	m.AddedBytes = m.PeakBytes - m.BeforeBytes
	return m
}

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

// refusal reads an answer other than 200 to a reader's request: a 503 is
// the server busy (retry after the wait its Retry-After asks for), anything
// else an error naming the request.
func refusal(resp *http.Response, body io.Reader, request string) (wait time.Duration, busy bool, err error) {
	if resp.StatusCode == http.StatusServiceUnavailable {
		io.Copy(io.Discard, io.LimitReader(body, 64<<10))
		return retryAfter(resp.Header), true, nil
	}
	b, _ := io.ReadAll(io.LimitReader(body, 512))
	return 0, false, fmt.Errorf("%s: %s %s", request, resp.Status, bytes.TrimSpace(b))
}
