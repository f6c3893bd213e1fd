package bench

// Subscriber groups. The subscribers of a fanout or idle run live in this
// process (one localGroup) or, past what one process may hold, are spread
// over loader processes: this same executable re-run as the hidden
// 'viewsync bench loader', one procGroup each. A loader connects its share
// of the subscribers and speaks JSON lines: on its stdout a tick every
// tickEvery (its counters, at a slot of absolute time, so that the ticks of
// every process line up), "ready" once its subscribers are connected,
// "drained" and at last its "result" (counts and a latency histogram); on
// its stdin the parent's commands, "drain" (to the writer's last version)
// and "stop". The writer stays in the parent.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/rlimit"
)

// tickEvery is the period of the groups' counters and of the server
// samples: the resolution of the plots' time series.
const tickEvery = 250 * time.Millisecond

// maxConnsPerLoader is the most subscribers one loader process holds when
// the loaders are chosen automatically.
const maxConnsPerLoader = 15000

// slotOf returns the tick slot a time falls in.
func slotOf(t time.Time) int64 { return t.UnixNano() / int64(tickEvery) }

// groupTick is a group's counters at the end of a slot.
type groupTick struct {
	Slot       int64 `json:"slot"`
	Connected  int64 `json:"connected"`
	Deliveries int64 `json:"deliveries"`
	CatchUps   int64 `json:"catch_ups"`
	Errors     int64 `json:"errors"`
}

// groupResult is what a group's subscribers saw, once they are stopped.
type groupResult struct {
	Established        int    `json:"established"`
	Deliveries         int64  `json:"deliveries"`
	CatchUps           int64  `json:"catch_ups"`
	Errors             int64  `json:"errors"`
	Duplicated         int64  `json:"duplicated"`
	Compacted          int64  `json:"compacted"`
	ExtraResets        int64  `json:"extra_resets"`
	Reconnects         int64  `json:"reconnects"`
	Missing            int64  `json:"missing"`
	SubscribersMissing int    `json:"subscribers_missing"`
	LastError          string `json:"last_error,omitempty"`
	// Latency is the histogram of the commit → receipt latencies.
	Latency *latHist `json:"latency,omitempty"`
	// samples are the latencies themselves, in this process only.
	samples []time.Duration
}

// subGroup is a share of the subscribers, here or in a loader process.
type subGroup interface {
	// ready is closed once every subscriber is connected (or the group
	// has ended).
	ready() <-chan struct{}
	// status returns the counters now (a loader's: at its last tick).
	status() groupTick
	// ticks returns the counters at each slot so far.
	ticks() []groupTick
	// drain waits until every connected subscriber has version last, or
	// for at most d; the missing commits are counted up to last.
	drain(ctx context.Context, last uint64, d time.Duration) error
	// finish stops the subscribers and returns what they saw.
	finish() (*groupResult, error)
	// pid is the loader process's id, 0 for this process.
	pid() int
	// kill ends a loader process at once; a no-op once finished.
	kill()
}

// chooseLoaders returns how many loader processes carry conns
// connections: requested if positive (at most conns), else 1 when conns
// fit in three quarters of this process's open-files limit, else enough
// that each holds at most maxConnsPerLoader (and that share of the limit).
func chooseLoaders(requested, conns int) int {
	if requested > 0 {
		return max(1, min(requested, conns))
	}
	per := maxConnsPerLoader
	if soft, _, err := rlimit.RaiseOpenFiles(); err == nil {
		fit := int(min(soft/4*3, math.MaxInt32))
		if conns <= fit {
			return 1
		}
		per = max(1, min(per, fit))
	} else if conns <= per {
		return 1
	}
	return (conns + per - 1) / per
}

// startGroups starts n subscribers to the target: in this process with
// one loader, else spread evenly over that many loader processes.
func startGroups(ctx context.Context, t *benchTarget, c *benchCommon, n, loaders int, record bool, stderr io.Writer) ([]subGroup, error) {
	if loaders <= 1 {
		return []subGroup{startLocalGroup(ctx, t, c, n, record, nil, stderr)}, nil
	}
	exe, err := c.exe()
	if err != nil {
		return nil, fmt.Errorf("loaders: %w", err)
	}
	var ips []string
	for _, ip := range t.dialer.ips {
		ips = append(ips, ip.String())
	}
	par := max(1, (c.dialParallel+loaders-1)/loaders)
	var groups []subGroup
	var pids []string
	for i := range loaders {
		share := n/loaders + btoi(i < n%loaders)
		args := []string{"bench", "loader", "--url", t.base, "--transport", c.transport, "--collection", c.collection,
			"--subscribers", strconv.Itoa(share), "--source-ips", strings.Join(ips, ","),
			"--dial-parallel", strconv.Itoa(par), "--connect-timeout", c.connectTimeout.String(),
			"--record=" + strconv.FormatBool(record)}
		g, err := startProcGroup(exe, args, share)
		if err != nil {
			for _, g := range groups {
				g.kill()
			}
			return nil, err
		}
		groups = append(groups, g)
		pids = append(pids, strconv.Itoa(g.pid()))
	}
	fmt.Fprintf(stderr, "bench: connecting %d %s subscribers to %s over %d loader processes (pids %s; %d at a time each)\n",
		n, c.transport, t.base, loaders, strings.Join(pids, ", "), par)
	return groups, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitGroups waits until every group's subscribers are connected, or the
// timeout. It returns how many are, and the seconds since start.
func waitGroups(ctx context.Context, groups []subGroup, timeout time.Duration, start time.Time) (int, float64) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
wait:
	for _, g := range groups {
		select {
		case <-g.ready():
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	var n int64
	for _, g := range groups {
		n += g.status().Connected
	}
	return int(n), round3(time.Since(start).Seconds())
}

// drainGroups drains every group at once.
func drainGroups(ctx context.Context, groups []subGroup, last uint64, d time.Duration) error {
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = g.drain(ctx, last, d) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// finishGroups stops every group and merges what they saw. With one group
// in this process the latency samples are kept whole.
func finishGroups(groups []subGroup) (*groupResult, error) {
	res := make([]*groupResult, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { res[i], errs[i] = g.finish() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(res) == 1 {
		return res[0], nil
	}
	m := &groupResult{}
	for _, r := range res {
		m.Established += r.Established
		m.Deliveries += r.Deliveries
		m.CatchUps += r.CatchUps
		m.Errors += r.Errors
		m.Duplicated += r.Duplicated
		m.Compacted += r.Compacted
		m.ExtraResets += r.ExtraResets
		m.Reconnects += r.Reconnects
		m.Missing += r.Missing
		m.SubscribersMissing += r.SubscribersMissing
		if r.LastError != "" {
			m.LastError = r.LastError
		}
		if r.Latency != nil {
			if m.Latency == nil {
				m.Latency = &latHist{}
			}
			m.Latency.merge(r.Latency)
		}
	}
	return m, nil
}

// latencyOf summarises a group result's latencies: exactly from the
// samples when it has them, else from the histogram.
func (r *groupResult) latencyOf() latencySummary {
	if r.samples != nil || r.Latency == nil {
		return summarize(r.samples)
	}
	return r.Latency.summary()
}

// loadersCPU returns the CPU time of this process and of the loader
// processes.
func loadersCPU(groups []subGroup) time.Duration {
	st, _ := readProc("self")
	cpu := st.cpu
	for _, g := range groups {
		if pid := g.pid(); pid > 0 {
			if st, err := readProc(strconv.Itoa(pid)); err == nil {
				cpu += st.cpu
			}
		}
	}
	return cpu
}

// mergeTicks sums the groups' ticks slot by slot, each group counting at
// a slot it missed with its tick before.
func mergeTicks(groups []subGroup) []groupTick {
	per := make([][]groupTick, len(groups))
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for i, g := range groups {
		per[i] = g.ticks()
		if n := len(per[i]); n > 0 {
			first, last = min(first, per[i][0].Slot), max(last, per[i][n-1].Slot)
		}
	}
	if first > last {
		return nil
	}
	out := make([]groupTick, 0, last-first+1)
	idx := make([]int, len(per))
	for slot := first; slot <= last; slot++ {
		sum := groupTick{Slot: slot}
		for i, ts := range per {
			for idx[i] < len(ts) && ts[idx[i]].Slot <= slot {
				idx[i]++
			}
			if idx[i] > 0 {
				t := ts[idx[i]-1]
				sum.Connected += t.Connected
				sum.Deliveries += t.Deliveries
				sum.CatchUps += t.CatchUps
				sum.Errors += t.Errors
			}
		}
		out = append(out, sum)
	}
	return out
}

// localGroup is subscribers in this process.
type localGroup struct {
	subs     []*benchSub
	stopSubs func()
	setup    *subSetup
	record   bool
	// last is the version the subscribers were drained to.
	last uint64

	mu   sync.Mutex
	tk   []groupTick
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// startLocalGroup starts n subscribers in this process and a sampler of
// their counters, which also calls onTick (if not nil) at each slot.
func startLocalGroup(ctx context.Context, t *benchTarget, c *benchCommon, n int, record bool, onTick func(groupTick), stderr io.Writer) *localGroup {
	g := &localGroup{record: record, done: make(chan struct{})}
	g.subs, g.stopSubs, g.setup = startSubs(ctx, t, c, n, record, stderr)
	g.wg.Go(func() {
		for {
			next := time.Now().Truncate(tickEvery).Add(tickEvery)
			timer := time.NewTimer(time.Until(next))
			select {
			case <-g.done:
				timer.Stop()
				return
			case <-timer.C:
			}
			tk := g.status()
			tk.Slot = slotOf(next)
			g.mu.Lock()
			g.tk = append(g.tk, tk)
			g.mu.Unlock()
			if onTick != nil {
				onTick(tk)
			}
		}
	})
	return g
}

func (g *localGroup) ready() <-chan struct{} { return g.setup.all }
func (g *localGroup) pid() int               { return 0 }

// kill stops the sampler and the subscribers; it may be called more than
// once, and after finish.
func (g *localGroup) kill() {
	g.once.Do(func() { close(g.done) })
	g.wg.Wait()
	g.stopSubs()
}

func (g *localGroup) status() groupTick {
	var tk groupTick
	for _, s := range g.subs {
		if s.established.Load() {
			tk.Connected++
		}
		tk.Deliveries += s.deliveries.Load()
		tk.CatchUps += s.catchUps.Load()
		tk.Errors += s.errs.Load()
	}
	return tk
}

func (g *localGroup) ticks() []groupTick {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.tk)
}

func (g *localGroup) drain(ctx context.Context, last uint64, d time.Duration) error {
	g.last = last
	drainSubs(ctx, g.subs, last, d)
	return ctx.Err()
}

func (g *localGroup) finish() (*groupResult, error) {
	g.kill()
	r := &groupResult{}
	var lat []time.Duration
	for _, s := range g.subs {
		if s.established.Load() {
			r.Established++
		}
		r.Deliveries += s.deliveries.Load()
		r.CatchUps += s.catchUps.Load()
		r.Errors += s.errs.Load()
		r.Duplicated += s.dups
		r.Compacted += s.compacted
		r.ExtraResets += s.resets
		r.Reconnects += s.reconnects
		missing := s.missing
		if s.established.Load() && s.last.Load() < g.last {
			missing += int64(g.last - s.last.Load())
		}
		r.Missing += missing
		if missing > 0 {
			r.SubscribersMissing++
		}
		if s.lastErr != nil {
			r.LastError = s.lastErr.Error()
		}
		lat = append(lat, s.lat...)
	}
	if g.record {
		r.samples = lat
		if r.samples == nil {
			r.samples = []time.Duration{}
		}
		r.Latency = histOf(lat)
	}
	return r, nil
}

// loaderMsg is a line a loader process writes.
type loaderMsg struct {
	Type        string       `json:"type"` // tick, ready, drained, result
	Tick        *groupTick   `json:"tick,omitempty"`
	Established int          `json:"established,omitempty"`
	Result      *groupResult `json:"result,omitempty"`
}

// loaderCmd is a line a loader process reads.
type loaderCmd struct {
	Cmd     string `json:"cmd"` // drain, stop
	Last    uint64 `json:"last,omitempty"`
	Timeout string `json:"timeout,omitempty"`
}

// procGroup is subscribers in a loader process.
type procGroup struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	n      int
	stderr *tailBuffer

	mu     sync.Mutex
	tk     []groupTick
	latest groupTick

	readyc   chan struct{}
	drainedc chan struct{}
	resultc  chan *groupResult
	exited   chan struct{}
	once     sync.Once
}

func startProcGroup(exe string, args []string, n int) (*procGroup, error) {
	cmd := exec.Command(exe, args...)
	g := &procGroup{cmd: cmd, n: n, stderr: &tailBuffer{max: 16 << 10},
		readyc: make(chan struct{}), drainedc: make(chan struct{}, 1), resultc: make(chan *groupResult, 1), exited: make(chan struct{})}
	cmd.Stderr = g.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if g.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var m loaderMsg
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch m.Type {
			case "tick":
				if m.Tick != nil {
					g.mu.Lock()
					g.tk = append(g.tk, *m.Tick)
					g.latest = *m.Tick
					g.mu.Unlock()
				}
			case "ready":
				g.mu.Lock()
				g.latest.Connected = max(g.latest.Connected, int64(m.Established))
				g.mu.Unlock()
				g.once.Do(func() { close(g.readyc) })
			case "drained":
				select {
				case g.drainedc <- struct{}{}:
				default:
				}
			case "result":
				if m.Result != nil {
					g.resultc <- m.Result
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		g.once.Do(func() { close(g.readyc) })
		close(g.exited)
	}()
	return g, nil
}

func (g *procGroup) ready() <-chan struct{} { return g.readyc }
func (g *procGroup) pid() int               { return g.cmd.Process.Pid }

func (g *procGroup) status() groupTick {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.latest
}

func (g *procGroup) ticks() []groupTick {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.tk)
}

func (g *procGroup) send(c loaderCmd) error {
	b, _ := json.Marshal(c)
	_, err := g.stdin.Write(append(b, '\n'))
	return err
}

// died describes a loader that ended before it was done.
func (g *procGroup) died() error {
	return fmt.Errorf("loader pid %d exited (%v); the end of its log:\n%s", g.pid(), g.cmd.ProcessState, g.stderr)
}

func (g *procGroup) drain(ctx context.Context, last uint64, d time.Duration) error {
	if err := g.send(loaderCmd{Cmd: "drain", Last: last, Timeout: d.String()}); err != nil {
		return g.died()
	}
	select {
	case <-g.drainedc:
		return nil
	case <-g.exited:
		return g.died()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *procGroup) finish() (*groupResult, error) {
	g.send(loaderCmd{Cmd: "stop"})
	g.stdin.Close()
	var res *groupResult
	select {
	case res = <-g.resultc:
	case <-g.exited:
		select {
		case res = <-g.resultc:
		default:
			return nil, g.died()
		}
	case <-time.After(time.Minute):
		g.kill()
		return nil, fmt.Errorf("loader pid %d did not report within a minute", g.pid())
	}
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		g.kill()
	}
	return res, nil
}

func (g *procGroup) kill() {
	select {
	case <-g.exited:
	default:
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// benchLoader runs 'viewsync bench loader', the hidden loader process.
func benchLoader(ctx context.Context, cmd *Command, args []string, stdout, stderr io.Writer) error {
	c := newBenchCommon(cmd)
	var n int
	var record bool
	fs := flag.NewFlagSet("bench loader", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "", "base URL of the server")
	fs.StringVar(&c.transport, "transport", "sse", "sse or ws")
	fs.StringVar(&c.collection, "collection", "bench", "the collection subscribed to")
	fs.IntVar(&n, "subscribers", 1, "subscribers")
	fs.StringVar(&c.sourceIPs, "source-ips", "", "local addresses, comma-separated (default: the system's choice)")
	fs.IntVar(&c.dialParallel, "dial-parallel", 64, "connections being set up at once")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 30*time.Second, "time one connection has to be set up")
	fs.BoolVar(&record, "record", true, "keep the latencies")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: viewsync bench loader [flags]\n\nA share of the subscribers of 'viewsync bench fanout' or 'idle', run by them in a process of its own; not for use by hand.\n\n")
		fs.PrintDefaults()
	}
	if err := parseBenchFlags(fs, &c, args); err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("%w: --subscribers must be positive", cliflag.ErrBadFlag)
	}
	rlimit.RaiseOpenFiles()
	var ips []net.IP
	if strings.TrimSpace(c.sourceIPs) != "" {
		var err error
		if ips, err = parseSourceIPs(c.sourceIPs); err != nil {
			return fmt.Errorf("%w: --source-ips: %w", cliflag.ErrBadFlag, err)
		}
	}
	t := &benchTarget{base: strings.TrimSuffix(c.url, "/"), dialer: newBenchDialer(ips), stderr: stderr}
	defer t.close()

	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	send := func(m loaderMsg) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(m)
	}
	g := startLocalGroup(ctx, t, &c, n, record, func(tk groupTick) { send(loaderMsg{Type: "tick", Tick: &tk}) }, stderr)
	go func() {
		select {
		case <-g.ready():
			send(loaderMsg{Type: "ready", Established: int(g.setup.ready.Load())})
		case <-ctx.Done():
		}
	}()
	dec := json.NewDecoder(cmd.stdin())
	for {
		var cmd loaderCmd
		if err := dec.Decode(&cmd); err != nil {
			break // the parent is gone, or done
		}
		if cmd.Cmd == "stop" {
			break
		}
		if cmd.Cmd == "drain" {
			d, err := time.ParseDuration(cmd.Timeout)
			if err != nil {
				d = 15 * time.Second
			}
			g.drain(ctx, cmd.Last, d)
			send(loaderMsg{Type: "drained"})
		}
	}
	res, err := g.finish()
	if err != nil {
		return err
	}
	send(loaderMsg{Type: "result", Result: res})
	return nil
}

// latHist is a histogram of latencies in buckets 1% wide, the form in
// which loader processes report theirs: percentiles read from it are
// within 1% of the exact ones.
type latHist struct {
	// Buckets counts the latencies by bucket: bucket i holds those of
	// [e^(i/histScale), e^((i+1)/histScale)) ns.
	Buckets map[int]int64 `json:"buckets"`
	Count   int64         `json:"count"`
	MinNS   int64         `json:"min_ns"`
	MaxNS   int64         `json:"max_ns"`
}

// histScale makes the buckets 1% wide.
var histScale = 1 / math.Log(1.01)

func histIndex(ns int64) int { return int(math.Floor(math.Log(float64(max(ns, 1))) * histScale)) }

// histMid is the middle of bucket i, in ns.
func histMid(i int) float64 { return math.Exp((float64(i) + 0.5) / histScale) }

func histOf(samples []time.Duration) *latHist {
	h := &latHist{}
	for _, d := range samples {
		h.add(int64(d))
	}
	return h
}

func (h *latHist) add(ns int64) {
	ns = max(ns, 1)
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	h.Buckets[histIndex(ns)]++
	if h.Count == 0 || ns < h.MinNS {
		h.MinNS = ns
	}
	h.MaxNS = max(h.MaxNS, ns)
	h.Count++
}

func (h *latHist) merge(o *latHist) {
	if o == nil || o.Count == 0 {
		return
	}
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	for i, n := range o.Buckets {
		h.Buckets[i] += n
	}
	if h.Count == 0 || o.MinNS < h.MinNS {
		h.MinNS = o.MinNS
	}
	h.MaxNS = max(h.MaxNS, o.MaxNS)
	h.Count += o.Count
}

// percentile returns the p-th percentile by the nearest-rank method, in
// ns: the middle of its bucket, within the smallest and largest latency.
func (h *latHist) percentile(p float64) float64 {
	if h == nil || h.Count == 0 {
		return 0
	}
	if p >= 100 {
		return float64(h.MaxNS)
	}
	rank := max(int64(math.Ceil(p/100*float64(h.Count))), 1)
	keys := make([]int, 0, len(h.Buckets))
	for i := range h.Buckets {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	var seen int64
	for _, i := range keys {
		seen += h.Buckets[i]
		if seen >= rank {
			return min(max(histMid(i), float64(h.MinNS)), float64(h.MaxNS))
		}
	}
	return float64(h.MaxNS)
}

func (h *latHist) summary() latencySummary {
	ms := func(ns float64) float64 { return math.Round(ns/1e3) / 1e3 }
	if h == nil || h.Count == 0 {
		return latencySummary{}
	}
	return latencySummary{Samples: int(h.Count), P50ms: ms(h.percentile(50)), P90ms: ms(h.percentile(90)),
		P99ms: ms(h.percentile(99)), MaxMs: ms(float64(h.MaxNS))}
}
