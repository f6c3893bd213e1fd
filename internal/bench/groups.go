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
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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

// add adds o's counters to t's.
func (t *groupTick) add(o groupTick) {
	t.Connected += o.Connected
	t.Deliveries += o.Deliveries
	t.CatchUps += o.CatchUps
	t.Errors += o.Errors
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
	// drain waits until every connected subscriber has version last (a
	// view's: lasts[view]), or for at most d; the missing commits are
	// counted up to it.
	drain(ctx context.Context, last uint64, lasts []uint64, d time.Duration) error
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
	exe, err := c.cmd.executable()
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
	first := 0
	for i := range loaders {
		share := n/loaders + btoi(i < n%loaders)
		base := t.base
		if len(t.bases) > 0 {
			base = t.bases[i%len(t.bases)]
		}
		args := []string{"bench", "loader", "--url", base, "--transport", c.transport, "--collection", c.collection,
			"--subscribers", strconv.Itoa(share), "--views", strconv.Itoa(c.views), "--collections", strconv.Itoa(c.colls), "--first", strconv.Itoa(first),
			"--source-ips", strings.Join(ips, ","),
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
		first += share
	}
	to := t.base
	if len(t.bases) > 0 {
		to = strings.Join(t.bases, ", ")
	}
	fmt.Fprintf(stderr, "bench: connecting %d %s subscribers to %s over %d loader processes (pids %s; %d at a time each)\n",
		n, c.transport, to, loaders, strings.Join(pids, ", "), par)
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
func drainGroups(ctx context.Context, groups []subGroup, last uint64, lasts []uint64, d time.Duration) error {
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = g.drain(ctx, last, lasts, d) })
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
		m.add(r)
	}
	return m, nil
}

// add adds what o's subscribers saw to r.
func (r *groupResult) add(o *groupResult) {
	r.Established += o.Established
	r.Deliveries += o.Deliveries
	r.CatchUps += o.CatchUps
	r.Errors += o.Errors
	r.Duplicated += o.Duplicated
	r.Compacted += o.Compacted
	r.ExtraResets += o.ExtraResets
	r.Reconnects += o.Reconnects
	r.Missing += o.Missing
	r.SubscribersMissing += o.SubscribersMissing
	if o.LastError != "" {
		r.LastError = o.LastError
	}
	if o.Latency != nil {
		if r.Latency == nil {
			r.Latency = &latHist{}
		}
		r.Latency.merge(o.Latency)
	}
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
				sum.add(ts[idx[i]-1])
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
	// last and lasts are the versions the subscribers were drained to.
	last  uint64
	lasts []uint64

	mu      sync.Mutex
	tk      []groupTick
	sampler *periodic
}

// startLocalGroup starts n subscribers in this process and a sampler of
// their counters, which also calls onTick (if not nil) at each slot.
func startLocalGroup(ctx context.Context, t *benchTarget, c *benchCommon, n int, record bool, onTick func(groupTick), stderr io.Writer) *localGroup {
	g := &localGroup{record: record}
	g.subs, g.stopSubs, g.setup = startSubs(ctx, t, c, n, record, stderr)
	g.sampler = startEverySlot(func(end time.Time) {
		tk := g.status()
		tk.Slot = slotOf(end)
		g.mu.Lock()
		g.tk = append(g.tk, tk)
		g.mu.Unlock()
		if onTick != nil {
			onTick(tk)
		}
	})
	return g
}

func (g *localGroup) ready() <-chan struct{} { return g.setup.all }
func (g *localGroup) pid() int               { return 0 }

// kill stops the sampler and the subscribers; it may be called more than
// once, and after finish.
func (g *localGroup) kill() {
	g.sampler.stop()
	g.stopSubs()
}

func (g *localGroup) status() groupTick {
	var tk groupTick
	for _, s := range g.subs {
		tk.add(s.counters())
	}
	return tk
}

func (g *localGroup) ticks() []groupTick {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.tk)
}

func (g *localGroup) drain(ctx context.Context, last uint64, lasts []uint64, d time.Duration) error {
	g.last, g.lasts = last, lasts
	drainSubs(ctx, g.subs, last, lasts, d)
	return ctx.Err()
}

func (g *localGroup) finish() (*groupResult, error) {
	g.kill()
	tk := g.status()
	r := &groupResult{Established: int(tk.Connected), Deliveries: tk.Deliveries, CatchUps: tk.CatchUps, Errors: tk.Errors}
	var lat []time.Duration
	for _, s := range g.subs {
		r.Duplicated += s.dups
		r.Compacted += s.compacted
		r.ExtraResets += s.resets
		r.Reconnects += s.reconnects
		missing := s.missing
		if target := s.target(g.last, g.lasts); s.established.Load() && s.last.Load() < target {
			if s.view >= 0 {
				missing++ // a gap in a view: how many commits is unknown
			} else {
				missing += int64(target - s.last.Load())
			}
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
