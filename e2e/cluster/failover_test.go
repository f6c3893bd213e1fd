package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterFailover: writers on the three nodes commit without retrying
// while the NATS cluster loses the collection stream's leader in each way
// it can — a leader step-down ($JS.API.STREAM.LEADER.STEPDOWN), the
// leader's server crashing (cut off the cluster at once), and the leader's
// server shut down gracefully — each server brought back afterwards.
// Every write must succeed (a failover may only make a commit slower),
// every acknowledged commit must be in the log once at its version, and
// every node's /readyz must tell the truth throughout: 200 while its NATS
// connection is up, 503 while it is down. The test logs, for each event,
// the longest commit across it (the pause writers see) and the longest
// time without any commit acknowledged; it asserts no time.
// VIEWSYNC_FAILOVER_ROUNDS repeats the events (default 1), for figures.
// It runs in each natskv layout: the shared layout's stream holds every
// collection, and each node follows it with one consumer.
func TestClusterFailover(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout, func(t *testing.T) { testFailover(t, layout) })
	}
}

func testFailover(t *testing.T, layout string) {
	rounds := 1
	if s := os.Getenv("VIEWSYNC_FAILOVER_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("VIEWSYNC_FAILOVER_ROUNDS=%q: want a positive number", s)
		}
		rounds = n
	}
	e := newEnv(t, layout)
	const (
		coll           = "failover"
		writersPerNode = 4
		// Each phase lasts until phase more commits were acknowledged,
		// perNode of them through each node, and at least minPhase.
		phase    = 60
		perNode  = 5
		minPhase = time.Second
	)
	epoch := e.open(coll, e.nodes...)
	nc, js := e.cl.client()
	defer nc.Close()

	led := newLedger()
	tl := &timeline{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range e.nodes {
		for k := range writersPerNode {
			w := &writer{name: fmt.Sprintf("%s-w%d", n.name, k), node: n.name, client: e.client, base: n.URL, coll: coll}
			wg.Go(func() { tl.write(w, stop, led) })
		}
	}
	probes := make([]*readyProbe, len(e.nodes))
	for i, n := range e.nodes {
		probes[i] = &readyProbe{node: n, client: e.client}
		wg.Go(func() { probes[i].run(stop) })
	}
	stopAll := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopAll()

	phaseWait := func(what string) {
		t.Helper()
		began := time.Now()
		from, before := led.n.Load(), led.counts()
		for {
			now, after := led.n.Load(), led.counts()
			done := now >= from+phase && time.Since(began) >= minPhase
			for _, n := range e.nodes {
				done = done && after[n.name]-before[n.name] >= perNode
			}
			if done {
				t.Logf("%s: %d commits in %v", what, now-from, time.Since(began).Round(time.Millisecond))
				return
			}
			if t.Context().Err() != nil {
				t.Fatalf("%s: %d commits (by node before %v, after %v)", what, now-from, before, after)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	stream := e.cl.stream(coll)
	leader := func() int {
		return e.cl.index(e.cl.streamInfo(js, stream).Cluster.Leader)
	}
	phaseWait("before")
	for r := range rounds {
		// A step-down: the leader hands over to another replica.
		from := leader()
		ev := tl.begin(fmt.Sprintf("round %d: step-down of %s", r+1, e.cl.opts[from].ServerName))
		resp, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, clusterWait)
		if err != nil || !bytes.Contains(resp.Data, []byte(`"success":true`)) {
			t.Fatalf("step-down: %v %s", err, respData(resp))
		}
		watchLeader(js, stream, e.cl.opts[from].ServerName, tl, ev)
		phaseWait(ev.name)
		tl.end(ev)

		// The leader's server crashes, and comes back.
		for _, crash := range []bool{true, false} {
			i := leader()
			how := "shut down"
			if crash {
				how = "crashed"
			}
			ev := tl.begin(fmt.Sprintf("round %d: %s %s", r+1, e.cl.opts[i].ServerName, how))
			if crash {
				e.cl.crash(i)
			} else {
				e.cl.stop(i)
			}
			watchLeader(js, stream, e.cl.opts[i].ServerName, tl, ev)
			phaseWait(ev.name)
			tl.end(ev)
			ev = tl.begin(fmt.Sprintf("round %d: %s back", r+1, e.cl.opts[i].ServerName))
			e.cl.restart(i)
			e.cl.waitStreamCurrent(js, stream)
			phaseWait(ev.name)
			tl.end(ev)
		}
	}
	stopAll()

	tl.report(t)
	for _, p := range probes {
		p.report(t)
	}
	tl.mu.Lock()
	for _, err := range tl.errs {
		t.Errorf("write failed: %v", err)
	}
	tl.mu.Unlock()
	if t.Failed() {
		return
	}
	head := e.settledHead(coll, e.nodes...)
	if head.Epoch != epoch {
		t.Fatalf("head %s:%d: the epoch changed from %s", head.Epoch, head.Version, epoch)
	}
	log := e.logOf(coll, epoch, e.nodes...)
	checkLedger(t, led, log)
	if len(led.acked) != len(log) {
		t.Errorf("%d commits acknowledged, the log has %d: a write made without an answer", len(led.acked), len(log))
	}
	t.Logf("%d commits, all acknowledged once at their version", len(log))
}

func respData(m *nats.Msg) []byte {
	if m == nil {
		return nil
	}
	return m.Data
}

// watchLeader notes in ev when the stream is first seen led by another
// server than lost. It polls the stream's info until then.
func watchLeader(js jetstream.JetStream, stream, lost string, tl *timeline, ev *failEvent) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		var leader string
		st, err := js.Stream(ctx, stream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil && info.Cluster != nil {
				leader = info.Cluster.Leader
			}
		}
		cancel()
		if leader != "" && leader != lost {
			tl.mu.Lock()
			ev.led = time.Now()
			tl.mu.Unlock()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// timeline records every write's start and duration, and the events.
type timeline struct {
	mu     sync.Mutex
	writes []timed
	errs   []error
	events []*failEvent
}

type timed struct {
	node  string
	start time.Time
	d     time.Duration
}

// failEvent is a disturbance and the phase after it.
type failEvent struct {
	name       string
	start, end time.Time
	// led is when the stream was first seen led by a running server after
	// the event (zero: not watched).
	led time.Time
}

// write commits through w, without retrying, until stop, recording each
// write's time and each error.
func (tl *timeline) write(w *writer, stop <-chan struct{}, led *ledger) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		ops := w.plan()
		began := time.Now()
		v, err := w.send(context.Background(), ops)
		d := time.Since(began)
		if err == nil {
			err = led.record(v, ops, w.node)
		}
		tl.mu.Lock()
		tl.writes = append(tl.writes, timed{node: w.node, start: began, d: d})
		if err != nil {
			tl.errs = append(tl.errs, fmt.Errorf("%s after %v: %w", w.name, d.Round(time.Millisecond), err))
		}
		tl.mu.Unlock()
	}
}

func (tl *timeline) begin(name string) *failEvent {
	ev := &failEvent{name: name, start: time.Now()}
	if os.Getenv("VIEWSYNC_CLUSTER_LOG") != "" {
		fmt.Fprintf(os.Stderr, "time=%s event=%q\n", ev.start.UTC().Format(time.RFC3339Nano), name)
	}
	tl.mu.Lock()
	tl.events = append(tl.events, ev)
	tl.mu.Unlock()
	return ev
}

func (tl *timeline) end(ev *failEvent) {
	tl.mu.Lock()
	ev.end = time.Now()
	tl.mu.Unlock()
}

// report logs, for the time before the first event and for each event
// until the next, the writes that ended then: how many, their p50, p99 and
// longest latency, and the longest time without an acknowledgement.
func (tl *timeline) report(t *testing.T) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.events) == 0 {
		return
	}
	// A write counts in the span of the last event that began before it
	// ended: the one that held it up, if any did.
	span := func(name string, from, to time.Time) {
		var ds []time.Duration
		var acks []time.Time
		byNode := map[string]time.Duration{}
		for _, w := range tl.writes {
			if end := w.start.Add(w.d); !end.Before(from) && end.Before(to) {
				ds = append(ds, w.d)
				acks = append(acks, w.start.Add(w.d))
				byNode[w.node] = max(byNode[w.node], w.d.Round(time.Millisecond))
			}
		}
		if len(ds) == 0 {
			t.Logf("%s: no writes", name)
			return
		}
		slices.Sort(ds)
		slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
		gap, prev := time.Duration(0), from
		for _, a := range acks {
			if a.After(prev) {
				gap = max(gap, a.Sub(prev))
				prev = a
			}
		}
		t.Logf("%-34s %5d commits, latency p50 %7v p99 %7v max %7v (by node %v); longest without a commit %v",
			name+":", len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)*99/100].Round(time.Millisecond),
			ds[len(ds)-1].Round(time.Millisecond), byNode, gap.Round(time.Millisecond))
	}
	span("before", tl.writes[0].start, tl.events[0].start)
	for i, ev := range tl.events {
		to := time.Now()
		if i+1 < len(tl.events) {
			to = tl.events[i+1].start
		}
		span(ev.name, ev.start, to)
		if !ev.led.IsZero() {
			t.Logf("%-34s the stream had a leader again after %v", "", ev.led.Sub(ev.start).Round(time.Millisecond))
		}
	}
}

// readyProbe asks a node's /readyz again and again and checks the answer
// against the node's NATS connection, read just before and just after:
// when both agree (and it did not reconnect meanwhile), 200 is right while
// connected, 503 otherwise.
type readyProbe struct {
	node   *vsNode
	client *http.Client

	samples, unready int
	wrong            []string
}

func (p *readyProbe) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		before, reconnects := p.node.nc.Status(), p.node.nc.Stats().Reconnects
		code, err := p.ask()
		after := p.node.nc.Status()
		// A reconnection made meanwhile (perhaps connected for a moment,
		// then down again: the status reads the same before and after)
		// makes either answer right.
		moved := p.node.nc.Stats().Reconnects != reconnects
		if err != nil {
			p.wrong = append(p.wrong, fmt.Sprintf("GET /readyz: %v", err))
			continue
		}
		p.samples++
		if code != http.StatusOK {
			p.unready++
		}
		if before != after || moved {
			continue
		}
		want := http.StatusServiceUnavailable
		if before == nats.CONNECTED {
			want = http.StatusOK
		}
		if code != want && len(p.wrong) < 10 {
			p.wrong = append(p.wrong, fmt.Sprintf("/readyz %d while NATS is %s", code, before))
		}
	}
}

func (p *readyProbe) ask() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.node.URL+"/readyz", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (p *readyProbe) report(t *testing.T) {
	t.Logf("%s: /readyz asked %d times, %d not ready", p.node.name, p.samples, p.unready)
	for _, w := range p.wrong {
		t.Errorf("%s: %s", p.node.name, w)
	}
}
