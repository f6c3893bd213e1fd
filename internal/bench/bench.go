// Package bench is the load tool of 'viewsync bench': it drives a viewsync
// server (one it spawns, 'viewsync serve' on a fresh data directory, or any
// at a URL) with many live subscribers, writers or pollers, and reports what
// they see and what it costs, against a raw broadcaster as the machine's
// ceiling when asked. Command runs it as a subcommand of a binary.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/rlimit"
	"github.com/viewsync/viewsync/protocol"
)

const benchUsage = `Usage: viewsync bench <scenario> [flags]

Drives a viewsync server with many live subscribers, writers or pollers and
reports what they see and what it costs. The server is one the tool starts itself (--spawn:
'viewsync serve' on a fresh data directory, whose CPU time and memory it
then reads from /proc) or any server at --url.

Scenarios:
  fanout   N subscribers, one writer at R commits/s: deliveries/s, commit to
           receipt latency, missing and duplicated commits, server CPU per
           delivery
  idle     N idle subscriptions: server memory per connection
  writes   C concurrent writers PUTting distinct records: durable commits/s,
           commit latency, server CPU per commit
  catchup  K commits behind: time for a client at the start to be current by
           paging through /changes (or via a compacted catch-up when the
           spawned server keeps a short log: --retain-commits)
  poll     N keep-alive clients polling the version with If-None-Match:
           requests/s, latency, server CPU per request
  history  reads of a long history (1000 commits of 200 KiB): the server
           memory that 1 and 3 clients paging /changes, and 6 and 40
           subscribers resuming from version 0, take at their peak

Run 'viewsync bench <scenario> --help' for its flags. Every flag can also be
set by an environment variable: VIEWSYNC_ + the flag name in upper case with
'-' as '_' (VIEWSYNC_SUBSCRIBERS=1000). A spawned server takes its own
settings from the environment the same way (VIEWSYNC_BUFFER_BYTES=1MiB).
`

// Command is 'viewsync bench' as a subcommand of a binary. Its fields name
// what it needs of that binary.
type Command struct {
	// Executable returns the program spawned as 'EXE serve' for --spawn,
	// and as the hidden 'EXE bench loader' and 'EXE bench baseline-server',
	// which must run this Command; nil means os.Executable.
	Executable func() (string, error)
	// Stdin is where a loader process reads its parent's commands; nil
	// means os.Stdin.
	Stdin io.Reader
}

// Run runs 'viewsync bench' with args, the scenario and its flags: the
// report goes to stdout, progress to stderr. An error of usage, whose
// message was printed or is the error's, wraps cliflag.ErrUsage or
// cliflag.ErrBadFlag; --help returns flag.ErrHelp.
func (cmd *Command) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return cliflag.ErrUsage
	}
	switch args[0] {
	case "fanout":
		return benchFanout(ctx, cmd, args[1:], stdout, stderr)
	case "idle":
		return benchIdle(ctx, cmd, args[1:], stdout, stderr)
	case "writes":
		return benchWrites(ctx, cmd, args[1:], stdout, stderr)
	case "catchup":
		return benchCatchup(ctx, cmd, args[1:], stdout, stderr)
	case "poll":
		return benchPoll(ctx, cmd, args[1:], stdout, stderr)
	case "history":
		return benchHistory(ctx, cmd, args[1:], stdout, stderr)
	case "loader": // hidden: a share of fanout's or idle's subscribers
		return benchLoader(ctx, cmd, args[1:], stdout, stderr)
	case "baseline-server": // hidden: the raw broadcaster of --baseline
		return benchBaselineServer(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, benchUsage)
		return nil
	}
	fmt.Fprintf(stderr, "viewsync bench: unknown scenario %q\n\n%s", args[0], benchUsage)
	return cliflag.ErrUsage
}

// executable returns the program to spawn.
func (cmd *Command) executable() (string, error) {
	if cmd.Executable != nil {
		return cmd.Executable()
	}
	return os.Executable()
}

// stdin returns where a loader reads its commands.
func (cmd *Command) stdin() io.Reader {
	if cmd.Stdin != nil {
		return cmd.Stdin
	}
	return os.Stdin
}

// benchCommon holds the flags every scenario has.
type benchCommon struct {
	transport      string
	collection     string
	url            string
	spawn          bool
	json           bool
	sourceIPs      string
	dialParallel   int
	connectTimeout time.Duration
	setupTimeout   time.Duration
	// exe returns the program to spawn.
	exe func() (string, error)
	// serverArgs are added to a spawned server's command line.
	serverArgs []string
}

// newBenchCommon returns the common flags at their defaults, for the
// scenarios that register only the target's flags.
func newBenchCommon(cmd *Command) benchCommon {
	return benchCommon{transport: "sse", collection: "bench", dialParallel: 64, connectTimeout: 30 * time.Second, setupTimeout: 5 * time.Minute, exe: cmd.executable}
}

func (c *benchCommon) register(fs *flag.FlagSet) {
	fs.StringVar(&c.transport, "transport", "sse", "how subscribers connect: sse (Server-Sent Events) or ws (WebSocket)")
	c.registerTarget(fs, "the collection subscribed to (and written to)")
	fs.StringVar(&c.sourceIPs, "source-ips", "", "local addresses to spread connections over, round-robin: a comma-separated list of IPs or ranges like 127.0.0.2-9 (default: 127.0.0.1 below 10000 connections to a loopback server, 127.0.0.2-9 from 10000; the system's choice for other servers)")
	fs.IntVar(&c.dialParallel, "dial-parallel", 64, "connections being set up at once")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 30*time.Second, "time one connection has to be set up and get its first event")
	fs.DurationVar(&c.setupTimeout, "setup-timeout", 5*time.Minute, "time every subscriber has to connect before the scenario goes on without the rest")
}

// registerTarget registers the flags that name the server and the
// report: --collection (described by collUsage), --url, --spawn, --json.
func (c *benchCommon) registerTarget(fs *flag.FlagSet, collUsage string) {
	fs.StringVar(&c.collection, "collection", "bench", collUsage)
	fs.StringVar(&c.url, "url", "", "base URL of the server to load, e.g. http://127.0.0.1:8080 (or use --spawn)")
	fs.BoolVar(&c.spawn, "spawn", false, "start 'viewsync serve' on a fresh data directory and load it; reports its CPU time and memory")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON instead of a table")
}

func (c *benchCommon) validate() error {
	switch {
	case c.transport != "sse" && c.transport != "ws":
		return fmt.Errorf("--transport must be sse or ws, not %q", c.transport)
	case c.spawn == (c.url != ""):
		return errors.New("give exactly one of --url and --spawn")
	case c.dialParallel <= 0:
		return errors.New("--dial-parallel must be positive")
	case c.connectTimeout <= 0 || c.setupTimeout <= 0:
		return errors.New("--connect-timeout and --setup-timeout must be positive")
	}
	if c.url != "" {
		u, err := url.Parse(c.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--url must be an http:// or https:// URL, not %q", c.url)
		}
	}
	if err := protocol.ValidateCollection(c.collection); err != nil {
		return fmt.Errorf("--collection: %w", err)
	}
	return nil
}

// parseBenchFlags parses a scenario's flags, with the environment, and
// checks the common ones.
func parseBenchFlags(fs *flag.FlagSet, c *benchCommon, args []string) error {
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	return nil
}

// benchTarget is the server under load.
type benchTarget struct {
	// base is the server's URL without a trailing slash.
	base string
	// server is the spawned server; nil with --url.
	server *spawnedServer
	dialer *benchDialer
	// stderr receives the log of a spawned server that died.
	stderr io.Writer
}

// openTarget starts the server (--spawn) or checks the one at --url, and
// raises this process's open-files limit. conns is how many connections
// the scenario will open.
func openTarget(ctx context.Context, c *benchCommon, conns int, stderr io.Writer) (*benchTarget, error) {
	if soft, hard, err := rlimit.RaiseOpenFiles(); err != nil {
		fmt.Fprintf(stderr, "bench: cannot raise the open-files limit: %v\n", err)
	} else if need := uint64(conns) + 256; soft < need {
		fmt.Fprintf(stderr, "bench: warning: the open-files limit is %d (hard %d), below the %d this run needs\n", soft, hard, need)
	}
	t := &benchTarget{base: strings.TrimSuffix(c.url, "/"), stderr: stderr}
	if c.spawn {
		s, err := spawnServer(ctx, c.exe, conns, c.serverArgs, stderr)
		if err != nil {
			return nil, err
		}
		t.server, t.base = s, "http://"+s.addr
	}
	if err := t.setDialer(c, conns); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// setDialer gives the target the dialer of conns connections, from the
// source addresses of --source-ips or their default.
func (t *benchTarget) setDialer(c *benchCommon, conns int) error {
	host := strings.TrimPrefix(strings.TrimPrefix(t.base, "http://"), "https://")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ips, err := sourceIPs(c.sourceIPs, conns, host)
	if err != nil {
		return fmt.Errorf("%w: --source-ips: %w", cliflag.ErrBadFlag, err)
	}
	t.dialer = newBenchDialer(ips)
	return nil
}

// close stops a spawned server and drops idle connections. A spawned
// server that exited on its own has its log's end shown.
func (t *benchTarget) close() {
	if t.dialer != nil {
		t.dialer.closeIdle()
	}
	if t.server != nil && t.server.stop() {
		fmt.Fprintf(t.stderr, "bench: the spawned server exited during the run (%v); the end of its log:\n%s\n", t.server.cmd.ProcessState, t.server.stderr)
	}
}

// sourceIPs returns the local addresses to dial from: those listed in
// spec, or by default (spec empty) 127.0.0.1 for fewer than 10000
// connections to a loopback host and the eight addresses 127.0.0.2-9 from
// 10000 on. For a host that is not a loopback address the default is none:
// the system chooses.
func sourceIPs(spec string, conns int, host string) ([]net.IP, error) {
	if strings.TrimSpace(spec) == "" {
		ip := net.ParseIP(host)
		if host == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
		}
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return nil, nil
		}
		if conns < 10000 {
			return []net.IP{net.IPv4(127, 0, 0, 1)}, nil
		}
		return parseSourceIPs("127.0.0.2-9")
	}
	return parseSourceIPs(spec)
}

// parseSourceIPs parses a comma-separated list of IPs and IPv4 ranges
// written A.B.C.D-E (last octet D to E).
func parseSourceIPs(spec string) ([]net.IP, error) {
	var ips []net.IP
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		first, last, isRange := strings.Cut(part, "-")
		ip := net.ParseIP(first)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address", first)
		}
		if !isRange {
			ips = append(ips, ip)
			continue
		}
		v4 := ip.To4()
		end, err := strconv.Atoi(last)
		if v4 == nil || err != nil || end < int(v4[3]) || end > 255 {
			return nil, fmt.Errorf("%q is not a range like 127.0.0.2-9", part)
		}
		for o := int(v4[3]); o <= end; o++ {
			ips = append(ips, net.IPv4(v4[0], v4[1], v4[2], byte(o)))
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no address given")
	}
	return ips, nil
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method; 0 when sorted is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// latencySummary is the distribution of commit → receipt latencies.
type latencySummary struct {
	Samples int     `json:"samples"`
	P50ms   float64 `json:"p50_ms"`
	P90ms   float64 `json:"p90_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// summarize sorts samples and summarises them.
func summarize(samples []time.Duration) latencySummary {
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	s := latencySummary{Samples: len(samples)}
	if len(samples) > 0 {
		s.P50ms, s.P90ms, s.P99ms = ms(percentile(samples, 50)), ms(percentile(samples, 90)), ms(percentile(samples, 99))
		s.MaxMs = ms(samples[len(samples)-1])
	}
	return s
}

// reportRow is one line of a report table.
type reportRow struct{ name, value string }

// printReport writes v as indented JSON, or rows as a table.
func printReport(w io.Writer, asJSON bool, v any, rows []reportRow) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r.name, r.value)
	}
	return tw.Flush()
}

// mib formats bytes as MiB.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// keepAliveClient returns a client that keeps up to conns connections to
// the target open between requests.
func (t *benchTarget) keepAliveClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         t.dialer.dial,
		DisableCompression:  true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
	}, Timeout: 30 * time.Second}
}

// opsServer is a spawned server's figures over a measured window of
// requests.
type opsServer struct {
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUMicrosPerOp is CPUSeconds over the window's operations, in µs.
	CPUMicrosPerOp float64 `json:"cpu_us_per_op"`
	RSSBytes       uint64  `json:"rss_bytes"`
	PeakRSSBytes   uint64  `json:"peak_rss_bytes"`
}

// serverWindow measures the spawned server between begin and end; with
// --url it measures nothing.
type serverWindow struct {
	t      *benchTarget
	before procStats
	err    error
}

func (t *benchTarget) beginWindow() *serverWindow {
	w := &serverWindow{t: t}
	w.before, w.err = t.serverStats()
	return w
}

// end returns the figures since begin, with the CPU time spread over ops;
// nil without a spawned server.
func (w *serverWindow) end(ops int64) *opsServer {
	if w.t.server == nil || w.err != nil {
		return nil
	}
	after, err := w.t.serverStats()
	if err != nil {
		return nil
	}
	return serverFigures(w.t.server.pid(), after.cpu-w.before.cpu, after, ops)
}

// serverFigures makes the report of a window that cost cpu and ended at
// after.
func serverFigures(pid int, cpu time.Duration, after procStats, ops int64) *opsServer {
	s := &opsServer{PID: pid, CPUSeconds: round3(cpu.Seconds()), RSSBytes: after.rss, PeakRSSBytes: after.hwm}
	if ops > 0 {
		s.CPUMicrosPerOp = round3(float64(cpu.Microseconds()) / float64(ops))
	}
	return s
}

// rows returns the server's lines of a report; per names the operation
// the CPU time is spread over.
func (s *opsServer) rows(per string) []reportRow {
	if s == nil {
		return nil
	}
	return []reportRow{
		{"server CPU", fmt.Sprintf("%.2fs (pid %d): %.2f µs per %s", s.CPUSeconds, s.PID, s.CPUMicrosPerOp, per)},
		{"server memory", fmt.Sprintf("RSS %s, peak %s", mib(s.RSSBytes), mib(s.PeakRSSBytes))},
	}
}

// startTicker prints line's text to w every second, followed by the
// spawned server's CPU use and memory, until stop.
func startTicker(w io.Writer, t *benchTarget, line func(elapsed, since time.Duration) string) *progress {
	p := &progress{done: make(chan struct{})}
	start := time.Now()
	p.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		prevCPU, cpuErr := t.serverStats()
		prevAt := start
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			now := time.Now()
			s := "bench: " + fmt.Sprintf("%4.0fs  ", now.Sub(start).Seconds()) + line(now.Sub(start), now.Sub(prevAt))
			if cpuErr == nil {
				if st, err := t.serverStats(); err == nil {
					s += fmt.Sprintf("  server CPU %.0f%% RSS %s", 100*(st.cpu-prevCPU.cpu).Seconds()/now.Sub(prevAt).Seconds(), mib(st.rss))
					prevCPU = st
				}
			}
			fmt.Fprintln(w, s)
			prevAt = now
		}
	})
	return p
}

// rate returns n per second over d, rounded; 0 for an empty d.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round3(float64(n) / d.Seconds())
}

// latencyRow formats a latency summary for a report.
func latencyRow(l latencySummary) string {
	return fmt.Sprintf("p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  (%d samples)", l.P50ms, l.P90ms, l.P99ms, l.MaxMs, l.Samples)
}
