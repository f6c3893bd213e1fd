package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
)

const visibilityUsage = `Usage: viewsync bench visibility [flags]

Commit → visible on every node of a cluster: the bench starts three NATS
JetStream servers and three viewsync nodes on them (as --nats-cluster does;
give --spawn), subscribes --subscribers clients (--transport) to the
collection on each node, then for each rate of --rates PUTs that many
commits a second to node 0 for --duration. For each rate and node it
reports commit → receipt latency (the PUT's send time to the event's
arrival: the node's own subscribers for node 0, those of the nodes that
learn of the commit through NATS for nodes 1 and 2), commits missing,
duplicated or out of order (all must be 0), and the CPU time of every
process per commit.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_RATES):
`

// visibilityConfig holds the flags of 'viewsync bench visibility'.
type visibilityConfig struct {
	benchCommon
	rates     string
	rateList  []float64
	duration  time.Duration
	subs      int
	valueSize cliflag.Size
	drain     time.Duration
}

func (c *visibilityConfig) register(fs *flag.FlagSet) {
	c.registerSubscribers(fs)
	fs.StringVar(&c.rates, "rates", "10,100,300", "commits per second to node 0, one measured phase per rate, comma-separated")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long each rate's phase writes")
	fs.IntVar(&c.subs, "subscribers", 1, "subscribers on each node")
	registerValueSize(fs, &c.valueSize)
	fs.DurationVar(&c.drain, "drain", 15*time.Second, "time the subscribers have, once a phase's writer stops, to receive its last commits")
}

func (c *visibilityConfig) check(*flag.FlagSet) error {
	var err error
	c.rateList, err = parseRates(c.rates)
	return checkFlags(
		check{!c.spawn, "visibility starts its own cluster: give --spawn, not --url"},
		check{err != nil, fmt.Sprint("--rates: ", err)},
		check{len(c.rateList) == 0, "--rates needs at least one rate"},
		check{c.duration <= 0 || c.drain <= 0, "--duration and --drain must be positive"},
		check{c.subs <= 0, "--subscribers must be positive"},
		valueSizeCheck(c.valueSize))
}

// visibilityReport is the result of a visibility run.
type visibilityReport struct {
	reportHead
	Collection  string            `json:"collection"`
	Subscribers int               `json:"subscribers_per_node"`
	Phases      []visibilityPhase `json:"phases"`
	LastError   string            `json:"last_error,omitempty"`
}

// visibilityPhase is one rate's figures.
type visibilityPhase struct {
	Rate    float64 `json:"rate"`
	Commits int     `json:"commits"`
	Errors  int     `json:"commit_errors"`
	// CommitLatency is the PUT's round trip on node 0.
	CommitLatency latencySummary `json:"commit_latency"`
	// Nodes are the figures of each node's subscribers.
	Nodes []visibilityNode `json:"nodes"`
	// CPU is the CPU time per commit, in ms, of each viewsync node and
	// each NATS server, in that order.
	NodeCPUms []float64 `json:"node_cpu_ms_per_commit"`
	NATSCPUms []float64 `json:"nats_cpu_ms_per_commit"`
}

// visibilityNode is what one node's subscribers saw in a phase.
type visibilityNode struct {
	Latency    latencySummary `json:"latency"`
	Missing    int64          `json:"missing"`
	Duplicated int64          `json:"duplicated"`
	Resets     int64          `json:"resets"`
}

// visSub is one subscriber: the node it follows, the last version it
// has, and what it saw in the current phase.
type visSub struct {
	node int
	mu   sync.Mutex
	last uint64
	lat  []time.Duration
	// missing counts the versions skipped, duplicated those received
	// again or out of order, resets the resets and catch-ups after the
	// first event.
	missing, duplicated, resets int64
	first                       bool
}

func (c *visibilityConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	c.spawn, c.natsCluster = true, true
	subs := clusterSize * c.subs
	t, err := openTarget(ctx, &c.benchCommon, subs+64, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	client := t.keepAliveClient(64)
	defer client.CloseIdleConnections()
	rep := &visibilityReport{reportHead: t.head("visibility", c.transport), Collection: c.collection, Subscribers: c.subs}
	base := func(i int) string { return "http://" + t.cluster.nodes[i].addr }
	// The stream exists before the subscribers come.
	if _, err := put(ctx, client, base(0)+"/v1/collections/"+c.collection+"/records/r0", benchValue(time.Now(), 0, int(c.valueSize))); err != nil {
		return err
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		all     []*visSub
		wg      sync.WaitGroup
		lastErr atomic.Value
	)
	defer wg.Wait()
	defer cancel()
	ready := make(chan error, subs)
	for node := range clusterSize {
		for range c.subs {
			s := &visSub{node: node, first: true}
			all = append(all, s)
			wg.Go(func() {
				st, err := t.dialer.open(sctx, c.transport, base(node), c.collection, "", nil)
				if err != nil {
					ready <- err
					return
				}
				defer st.close()
				// Ready once the first event (the reset) is in.
				ev, err := st.next()
				if err == nil {
					s.take(ev, time.Now())
				}
				ready <- err
				if err != nil {
					return
				}
				for {
					ev, err := st.next()
					if err != nil {
						if sctx.Err() == nil {
							lastErr.Store(fmt.Sprintf("node %d: %v", node, err))
						}
						return
					}
					s.take(ev, time.Now())
				}
			})
		}
	}
	for range subs {
		if err := <-ready; err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	fmt.Fprintf(stderr, "bench: %d subscribers on each of %d nodes\n", c.subs, clusterSize)

	for _, r := range c.rateList {
		for _, s := range all {
			s.reset()
		}
		before := t.cluster.cpu()
		w := c.write(ctx, client, base(0), r)
		if err := waitVisible(ctx, all, w.last, c.drain); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
		}
		after := t.cluster.cpu()
		ph := visibilityPhase{Rate: r, Commits: w.acked, Errors: w.errors, CommitLatency: summarize(w.putLat)}
		for node := range clusterSize {
			var lat []time.Duration
			var n visibilityNode
			for _, s := range all {
				if s.node != node {
					continue
				}
				s.mu.Lock()
				lat = append(lat, s.lat...)
				n.Missing += s.missing
				n.Duplicated += s.duplicated
				n.Resets += s.resets
				s.mu.Unlock()
			}
			n.Latency = summarize(lat)
			ph.Nodes = append(ph.Nodes, n)
		}
		per := func(d time.Duration) float64 { return round3(d.Seconds() * 1000 / float64(max(w.acked, 1))) }
		for i := range clusterSize {
			ph.NodeCPUms = append(ph.NodeCPUms, per(after.nodes[i]-before.nodes[i]))
			ph.NATSCPUms = append(ph.NATSCPUms, per(after.nats[i]-before.nats[i]))
		}
		if w.lastErr != nil {
			lastErr.Store(w.lastErr.Error())
		}
		rep.Phases = append(rep.Phases, ph)
		fmt.Fprintf(stderr, "bench: %.0f commits/s: %d commits; receipt p50 %.2f/%.2f/%.2f ms on nodes 0/1/2\n",
			r, w.acked, ph.Nodes[0].Latency.P50ms, ph.Nodes[1].Latency.P50ms, ph.Nodes[2].Latency.P50ms)
	}
	if e, ok := lastErr.Load().(string); ok {
		rep.LastError = e
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	for _, ph := range rep.Phases {
		for i, n := range ph.Nodes {
			if n.Missing > 0 || n.Duplicated > 0 || n.Resets > 0 {
				return fmt.Errorf("at %.0f commits/s node %d's subscribers missed %d commits, got %d again or out of order, %d resets", ph.Rate, i, n.Missing, n.Duplicated, n.Resets)
			}
		}
		if ph.Errors > 0 {
			return fmt.Errorf("at %.0f commits/s %d commits failed", ph.Rate, ph.Errors)
		}
	}
	return nil
}

// take takes one event received at now.
func (s *visSub) take(ev benchEvent, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ev.kind == evCommit:
		switch {
		case ev.version == s.last+1:
		case ev.version > s.last+1:
			s.missing += int64(ev.version - s.last - 1)
		default:
			s.duplicated++
			return
		}
		s.last = ev.version
		if ev.sentNS > 0 {
			s.lat = append(s.lat, now.Sub(time.Unix(0, ev.sentNS)))
		}
	case ev.kind == evReset || ev.kind == evCatchUp:
		if !s.first {
			s.resets++
		}
		s.last = ev.version
	}
	s.first = false
}

// reset forgets a phase's figures.
func (s *visSub) reset() {
	s.mu.Lock()
	s.lat, s.missing, s.duplicated, s.resets = s.lat[:0], 0, 0, 0
	s.mu.Unlock()
}

// write PUTs rate values a second to record r0 for c.duration, in open
// loop (at most 64 in flight).
func (c *visibilityConfig) write(ctx context.Context, client *http.Client, base string, rate float64) writerResult {
	var (
		mu  sync.Mutex
		res writerResult
	)
	u := base + "/v1/collections/" + c.collection + "/records/r0"
	openLoop(ctx, rate, c.duration, 64, func(i int) {
		now := time.Now()
		v, err := put(ctx, client, u, benchValue(now, i, int(c.valueSize)))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.errors, res.lastErr = res.errors+1, err
			return
		}
		res.acked++
		res.last = max(res.last, v)
		res.putLat = append(res.putLat, time.Since(now))
	})
	return res
}

// waitVisible waits until every subscriber has version last, for at most
// d.
func waitVisible(ctx context.Context, subs []*visSub, last uint64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		behind := 0
		for _, s := range subs {
			s.mu.Lock()
			if s.last < last {
				behind++
			}
			s.mu.Unlock()
		}
		if behind == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d subscribers short of version %d after %v", behind, last, d)
		}
		sleepFor(ctx, 10*time.Millisecond)
	}
}

// clusterCPU is the CPU time so far of each viewsync node and NATS server.
type clusterCPU struct{ nodes, nats []time.Duration }

func (cl *benchCluster) cpu() clusterCPU {
	var c clusterCPU
	read := func(s *spawnedServer) time.Duration {
		st, err := s.stats()
		if err != nil {
			return 0
		}
		return st.cpu
	}
	for _, s := range cl.nodes {
		c.nodes = append(c.nodes, read(s))
	}
	for _, s := range cl.natsNodes {
		c.nats = append(c.nats, read(s))
	}
	return c
}

// stats reads the process's figures.
func (s *spawnedServer) stats() (procStats, error) { return readProc(fmt.Sprint(s.pid())) }

func (r *visibilityReport) rows() []reportRow {
	rows := []reportRow{{"scenario", fmt.Sprintf("visibility over %s: %d subscribers on each of 3 nodes, commits to node 0 (%s)", r.Transport, r.Subscribers, r.URL)}}
	for _, ph := range r.Phases {
		p := fmt.Sprintf("%.0f/s", ph.Rate)
		rows = append(rows,
			reportRow{p + " commits", fmt.Sprintf("%d, %d failed; round trip p50 %.2fms p99 %.2fms", ph.Commits, ph.Errors, ph.CommitLatency.P50ms, ph.CommitLatency.P99ms)})
		for i, n := range ph.Nodes {
			rows = append(rows, reportRow{fmt.Sprintf("%s node %d", p, i), fmt.Sprintf("%s; missing %d, duplicated %d, resets %d",
				latencyRow(n.Latency), n.Missing, n.Duplicated, n.Resets)})
		}
		rows = append(rows, reportRow{p + " CPU per commit", fmt.Sprintf("viewsync nodes %s ms, NATS servers %s ms", msList(ph.NodeCPUms), msList(ph.NATSCPUms))})
	}
	if r.LastError != "" {
		rows = append(rows, reportRow{"last error", r.LastError})
	}
	return rows
}

// msList formats figures as a/b/c.
func msList(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(s, "/")
}
