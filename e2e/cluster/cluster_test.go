package cluster

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// env is a test's cluster: three NATS servers, three viewsync nodes, and
// an HTTP client for writers and reads.
type env struct {
	t      *testing.T
	cl     *natsCluster
	nodes  []*vsNode
	client *http.Client
	// subClient makes the subscribers' connections.
	subClient *http.Client
	start     time.Time
}

// newEnv starts the cluster and the nodes, their stores in the natskv
// layout given; everything stops when the test ends: subscribers, then
// nodes, then NATS servers.
func newEnv(t *testing.T, layout string) *env {
	t.Helper()
	e := &env{t: t, start: time.Now()}
	e.cl = startNATSCluster(t, layout)
	e.nodes = startNodes(t, e.cl, 3)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	str := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		str.CloseIdleConnections()
	})
	// The timeout is a hang guard: a node answers every write within its
	// store's timeouts.
	e.client = &http.Client{Transport: tr, Timeout: 2 * clusterWait}
	e.subClient = &http.Client{Transport: str}
	t.Logf("NATS cluster and %d viewsync nodes up in %v", len(e.nodes), time.Since(e.start).Round(time.Millisecond))
	return e
}

// open makes the collection's stream exist by reading its head through
// each node given, and returns its epoch: every node must see the same.
func (e *env) open(coll string, nodes ...*vsNode) string {
	e.t.Helper()
	var epoch string
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		h, err := headOf(ctx, e.client, n.URL, coll)
		cancel()
		if err != nil {
			e.t.Fatalf("%s: head of %s: %v", n.name, coll, err)
		}
		if h.Version != 0 || (epoch != "" && h.Epoch != epoch) {
			e.t.Fatalf("%s: head of the new collection %s is %s:%d; the first node said %s:0", n.name, coll, h.Epoch, h.Version, epoch)
		}
		epoch = h.Epoch
	}
	return epoch
}

// settledHead waits until every node given reports the same head and
// returns it; writes must be over.
func (e *env) settledHead(coll string, nodes ...*vsNode) protocol.Head {
	e.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		var heads []protocol.Head
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
			h, err := headOf(ctx, e.client, n.URL, coll)
			cancel()
			if err != nil {
				e.t.Fatalf("%s: head of %s: %v", n.name, coll, err)
			}
			heads = append(heads, h)
		}
		same := true
		for _, h := range heads {
			same = same && h == heads[0]
		}
		if same {
			return heads[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the nodes do not agree on the head of %s after %v: %v", coll, clusterWait, heads)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logOf reads the collection's log through every node given and checks
// they hold the same one.
func (e *env) logOf(coll, epoch string, nodes ...*vsNode) []protocol.Commit {
	e.t.Helper()
	var first []protocol.Commit
	for i, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		log, err := readLog(ctx, e.client, n.URL, coll, epoch)
		cancel()
		if err != nil {
			e.t.Fatalf("%s: log of %s: %v", n.name, coll, err)
		}
		if i == 0 {
			first = log
			continue
		}
		if err := sameLog(first, log); err != nil {
			e.t.Fatalf("%s and %s hold different logs of %s: %v", nodes[0].name, n.name, coll, err)
		}
	}
	return first
}

// sameLog compares two logs commit by commit.
func sameLog(a, b []protocol.Commit) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d commits, and %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Version != b[i].Version || !a[i].At.Equal(b[i].At) || opsKey(a[i].Ops) != opsKey(b[i].Ops) {
			return fmt.Errorf("commit %d: %d %v %s, and %d %v %s", i+1, a[i].Version, a[i].At, opsString(a[i].Ops), b[i].Version, b[i].At, opsString(b[i].Ops))
		}
	}
	return nil
}

// checkLedger checks the log against the acknowledged commits: each at
// its version with its ops, no record created twice, every commit found
// made after a lost answer present.
func checkLedger(t *testing.T, led *ledger, log []protocol.Commit) {
	t.Helper()
	led.mu.Lock()
	defer led.mu.Unlock()
	for _, v := range slices.Sorted(maps.Keys(led.acked)) {
		ops := led.acked[v]
		if v == 0 || v > uint64(len(log)) {
			t.Errorf("commit %s acknowledged at version %d, the log ends at %d: lost", opsString(ops), v, len(log))
			continue
		}
		if got := log[v-1].Ops; opsKey(got) != opsKey(ops) {
			t.Errorf("commit %d acknowledged with %s, the log has %s", v, opsString(ops), opsString(got))
		}
	}
	made := map[string]uint64{}
	for _, c := range log {
		for _, op := range c.Ops {
			if prev, ok := made[op.ID]; ok {
				t.Errorf("record %s created by commit %d and again by commit %d: a commit made twice", op.ID, prev, c.Version)
			}
			made[op.ID] = c.Version
		}
	}
	for _, id := range led.landed {
		if made[id] == 0 {
			t.Errorf("record %s: a retry of its commit found it made, the log does not have it", id)
		}
	}
}

// replay applies a log to an empty collection: id → value.
func replay(log []protocol.Commit) map[string]string {
	m := map[string]string{}
	for _, c := range log {
		for _, op := range c.Ops {
			if op.Op == protocol.OpDelete {
				delete(m, op.ID)
			} else {
				m[op.ID] = string(op.Value)
			}
		}
	}
	return m
}

// checkSnapshots checks that each node's snapshot is at the log's head
// and holds the log replayed.
func (e *env) checkSnapshots(coll, epoch string, log []protocol.Commit, nodes ...*vsNode) {
	e.t.Helper()
	want := replay(log)
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		snap, err := getJSON[protocol.Snapshot](ctx, e.client, n.URL+"/v1/collections/"+coll)
		cancel()
		if err != nil {
			e.t.Fatalf("%s: snapshot of %s: %v", n.name, coll, err)
		}
		if snap.Epoch != epoch || snap.Version != uint64(len(log)) {
			e.t.Errorf("%s: snapshot of %s at %s:%d, the log's head is %s:%d", n.name, coll, snap.Epoch, snap.Version, epoch, len(log))
		}
		got := map[string]string{}
		for _, r := range snap.Records {
			got[r.ID] = string(r.Value)
		}
		if !maps.Equal(got, want) {
			e.t.Errorf("%s: snapshot of %s holds %d records, the log replayed %d; they differ", n.name, coll, len(got), len(want))
		}
	}
}

// subscribers makes, for each node given, nSSE SSE and nWS WebSocket
// followers of coll, named after the node and label, from cur (nil: no
// cursor, a reset first); each resumes on the nodes in bases(node) order.
func (e *env) subscribers(label, coll string, cur *protocol.Cursor, nSSE, nWS int, nodes []*vsNode, bases func(*vsNode) []string) []*follower {
	var list []*follower
	for _, n := range nodes {
		for i := range nSSE + nWS {
			isWS := i >= nSSE
			name := fmt.Sprintf("%s-%s-sse-%d", n.name, label, i)
			if isWS {
				name = fmt.Sprintf("%s-%s-ws-%d", n.name, label, i-nSSE)
			}
			list = append(list, newFollower(e.t, name, coll, isWS, e.subClient, cur, bases(n)...))
		}
	}
	return list
}

// zero is the cursor at version 0 of epoch.
func zero(epoch string) *protocol.Cursor { return &protocol.Cursor{Epoch: epoch} }

// runWriters runs perNode writers on each node given, each making count
// commits (count 0: until stop is closed), and returns a function that
// waits for them and returns their errors.
func (e *env) runWriters(ctx context.Context, coll string, nodes []*vsNode, perNode, count int, retry bool, stop <-chan struct{}, led *ledger) func() []error {
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	for _, n := range nodes {
		for k := range perNode {
			w := &writer{name: fmt.Sprintf("%s-w%d", n.name, k), node: n.name, client: e.client, base: n.URL, coll: coll}
			wg.Go(func() {
				if err := w.run(ctx, stop, count, retry, led); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("writer %s: %w", w.name, err))
					mu.Unlock()
				}
			})
		}
	}
	return func() []error {
		wg.Wait()
		return errs
	}
}

func own(n *vsNode) []string { return []string{n.URL} }

// TestClusterFanout: subscribers spread over three nodes (SSE and
// WebSocket, from version 0) follow one collection while writers on the
// three nodes commit concurrently; a few more join each node mid-way
// without a cursor. Every subscriber receives every version 1..N in
// order, once, with the same ops as every other subscriber and as the log
// (whoever wrote it) — the late ones a reset at some version V holding
// exactly the log up to V, then V+1..N; every acknowledged commit is in
// the log at its version; the three nodes hold the same log and the same
// snapshot.
func TestClusterFanout(t *testing.T) {
	e := newEnv(t, natskv.LayoutStream)
	const (
		coll             = "fanout"
		sseN, wsN        = 10, 5
		writersPerNode   = 2
		commitsPerWriter = 50
		total            = 3 * writersPerNode * commitsPerWriter
	)
	epoch := e.open(coll, e.nodes...)
	fs := startFollowers(t, e.subscribers("zero", coll, zero(epoch), sseN, wsN, e.nodes, own))
	if err := fs.waitConnected(1); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 2*clusterWait)
	defer cancel()
	wait := e.runWriters(ctx, coll, e.nodes, writersPerNode, commitsPerWriter, false, nil, led)
	if led.waitFor(total/3, clusterWait) {
		fs.add(e.subscribers("late", coll, nil, 1, 1, e.nodes, own))
	}
	for _, err := range wait() {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	wrote := time.Since(began)
	for v := uint64(1); v <= total; v++ {
		if _, ok := led.acked[v]; !ok {
			t.Fatalf("%d commits acknowledged, none at version %d", total, v)
		}
	}
	if err := fs.waitAt(total); err != nil {
		t.Fatal(err)
	}
	delivered := time.Since(began)
	fs.stop()

	if h := e.settledHead(coll, e.nodes...); h.Epoch != epoch || h.Version != total {
		t.Fatalf("head %s:%d, want %s:%d", h.Epoch, h.Version, epoch, total)
	}
	log := e.logOf(coll, epoch, e.nodes...)
	checkLedger(t, led, log)
	fs.checkAll(epoch, log)
	e.checkSnapshots(coll, epoch, log, e.nodes...)
	var resets []string
	for _, f := range fs.list {
		if f.bare {
			resets = append(resets, fmt.Sprintf("%s@%d", f.name, f.events[0].version))
		}
	}
	t.Logf("%d writers on 3 nodes made %d commits in %v; %d subscribers (%d SSE + %d WebSocket per node from version 0, 1 + 1 per node joining later without a cursor: resets %v) had them all after %v",
		3*writersPerNode, total, wrote.Round(time.Millisecond), len(fs.list), sseN, wsN, resets, delivered.Round(time.Millisecond))
}

// TestClusterNATSNodeKilled: writers on the three nodes commit
// continuously while the NATS server leading the collection's stream goes
// down, the others carry on without it, and it is restarted with its data
// (same store directory). It goes down either by a graceful shutdown
// (which hands its leaderships over first) or by a crash (cut off the
// cluster at once, then shut down: the others must notice and elect a new
// leader on their own, with batches in flight). Failed writes are retried
// (same records, "must not exist"), and only acknowledged ones are
// recorded; every node's writers must make progress while the server is
// down, the node that was connected to it included. Afterwards every
// acknowledged commit is in the log (through every node, and through a
// fresh store) at its version with its ops, the log is contiguous, no
// commit was made twice, and every subscriber (on each node, resuming from
// its cursor if its stream ended; some joining while the server is down,
// from version 0 or without a cursor) received exactly the log.
func TestClusterNATSNodeKilled(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout, func(t *testing.T) {
			t.Run("shutdown", func(t *testing.T) { testNATSNodeKilled(t, layout, false) })
			t.Run("crash", func(t *testing.T) { testNATSNodeKilled(t, layout, true) })
		})
	}
}

// layouts are the natskv layouts the failover tests run in.
var layouts = []string{natskv.LayoutStream, natskv.LayoutShared}

func testNATSNodeKilled(t *testing.T, layout string, crash bool) {
	e := newEnv(t, layout)
	const (
		coll           = "failover"
		sseN, wsN      = 3, 2
		writersPerNode = 2
		// Each phase lasts until phase more commits were acknowledged,
		// perNode of them through each node, and at least minPhase.
		phase    = 60
		perNode  = 5
		minPhase = time.Second
	)
	epoch := e.open(coll, e.nodes...)
	fs := startFollowers(t, e.subscribers("zero", coll, zero(epoch), sseN, wsN, e.nodes, own))
	if err := fs.waitConnected(1); err != nil {
		t.Fatal(err)
	}
	nc, js := e.cl.client()
	defer nc.Close()

	led := newLedger()
	stop := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*clusterWait)
	defer cancel()
	wait := e.runWriters(ctx, coll, e.nodes, writersPerNode, 0, true, stop, led)
	stopWriters := sync.OnceValue(func() []error {
		close(stop)
		return wait()
	})
	defer stopWriters()

	phaseWait := func(what string) {
		t.Helper()
		began := time.Now()
		from, before := led.n.Load(), led.counts()
		deadline := began.Add(clusterWait)
		for {
			now, after := led.n.Load(), led.counts()
			done := now >= from+phase && time.Since(began) >= minPhase
			for _, n := range e.nodes {
				done = done && after[n.name]-before[n.name] >= perNode
			}
			if done {
				t.Logf("%s: %d commits acknowledged in %v (%d in all; by node before %v, after %v; %d failed attempts so far)",
					what, now-from, time.Since(began).Round(time.Millisecond), now, before, after, led.failures.Load())
				return
			}
			if time.Now().After(deadline) {
				stopWriters()
				t.Fatalf("%s: %d commits acknowledged in %v (by node before %v, after %v), want %d, %d through each node (%d attempts failed)",
					what, now-from, clusterWait, before, after, phase, perNode, led.failures.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	phaseWait("before")

	info := e.cl.streamInfo(js, e.cl.stream(coll))
	if info.Config.Replicas != 3 {
		t.Fatalf("stream %s has %d replicas, want 3", e.cl.stream(coll), info.Config.Replicas)
	}
	leader := e.cl.index(info.Cluster.Leader)
	how := "shutting down"
	if crash {
		how = "crashing"
	}
	t.Logf("stream %s: leader %s, replicas %s; %s the leader (viewsync node %s is connected to it)",
		e.cl.stream(coll), info.Cluster.Leader, describePeers(info.Cluster.Replicas), how, e.nodes[leader].name)
	if crash {
		routes := e.cl.crash(leader)
		if routes == 0 {
			t.Fatalf("crashing %s cut no route", info.Cluster.Leader)
		}
		t.Logf("%s cut off (%d routes) and shut down", info.Cluster.Leader, routes)
	} else {
		e.cl.stop(leader)
	}
	// Subscribers joining during the failover.
	fs.add(e.subscribers("down-zero", coll, zero(epoch), 1, 1, e.nodes, own))
	fs.add(e.subscribers("down-bare", coll, nil, 1, 1, e.nodes, own))
	phaseWait("leader down")
	if info := e.cl.streamInfo(js, e.cl.stream(coll)); info.Cluster.Leader == e.cl.opts[leader].ServerName {
		t.Fatalf("stream %s still led by %s, which is down", e.cl.stream(coll), info.Cluster.Leader)
	} else {
		t.Logf("new leader %s", info.Cluster.Leader)
	}

	e.cl.restart(leader)
	e.cl.waitStreamCurrent(js, e.cl.stream(coll))
	t.Logf("%s restarted and current", e.cl.opts[leader].ServerName)
	phaseWait("leader back")

	for _, err := range stopWriters() {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	head := e.settledHead(coll, e.nodes...)
	if head.Epoch != epoch {
		t.Fatalf("head %s:%d: the epoch changed from %s", head.Epoch, head.Version, epoch)
	}
	if err := fs.waitAt(head.Version); err != nil {
		t.Fatal(err)
	}
	fs.stop()

	log := e.logOf(coll, epoch, e.nodes...)
	if uint64(len(log)) != head.Version {
		t.Fatalf("log of %d commits, head %d", len(log), head.Version)
	}
	checkLedger(t, led, log)

	// What the stream holds, read by a store that was not there, through
	// the restarted server first.
	fresh, err := natskv.Open(ctx, natskv.Options{URL: e.cl.urlsFrom(leader), NATSOptions: natsOptions("fresh"), Layout: e.cl.layout, Replicas: 3, Timeout: natsTimeout, MaxBatch: maxBatch})
	if err != nil {
		t.Fatalf("open a fresh store: %v", err)
	}
	ch, err := fresh.Changes(ctx, coll, 0, store.Page{})
	fresh.Close()
	if err != nil {
		t.Fatalf("fresh store: changes: %v", err)
	}
	if ch.Epoch != epoch {
		t.Errorf("fresh store: epoch %s, want %s", ch.Epoch, epoch)
	}
	if err := sameLog(log, ch.Commits); err != nil {
		t.Errorf("the nodes' log and a fresh store's differ: %v", err)
	}

	fs.checkAll(epoch, log)
	e.checkSnapshots(coll, epoch, log, e.nodes...)
	reconnects := 0
	for _, f := range fs.list {
		reconnects += len(f.connections()) - 1
	}
	led.mu.Lock()
	t.Logf("head %d: %d commits acknowledged, %d made with their answer lost, %d made unacknowledged and never retried; %d write attempts failed and were retried; %d subscribers, %d reconnections",
		head.Version, len(led.acked), len(led.landed), int(head.Version)-len(led.acked)-len(led.landed), led.failures.Load(), len(fs.list), reconnects)
	for _, err := range led.errs {
		t.Logf("failed attempt: %s", err)
	}
	led.mu.Unlock()
}

// TestClusterViewsyncNodeKilled: SSE and WebSocket clients follow a
// collection through node A while a writer commits through node B; A is
// killed (its connections cut, no end of stream); the clients reconnect to
// node C, which had not opened the collection, from their cursor
// (Last-Event-ID; subscribe with after and epoch). Each client's whole
// sequence across the reconnection is 1..N in order, with no gap and no
// duplicate, and the log's ops.
func TestClusterViewsyncNodeKilled(t *testing.T) {
	e := newEnv(t, natskv.LayoutStream)
	const (
		coll      = "handover"
		sseN, wsN = 5, 5
		phase     = 50
	)
	a, b, c := e.nodes[0], e.nodes[1], e.nodes[2]
	epoch := e.open(coll, a, b)
	aThenC := func(*vsNode) []string { return []string{a.URL, c.URL} }
	fs := startFollowers(t, e.subscribers("zero", coll, zero(epoch), sseN, wsN, []*vsNode{a}, aThenC))
	if err := fs.waitConnected(1); err != nil {
		t.Fatal(err)
	}

	led := newLedger()
	stop := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*clusterWait)
	defer cancel()
	wait := e.runWriters(ctx, coll, []*vsNode{b}, 1, 0, false, stop, led)
	stopWriters := sync.OnceValue(func() []error {
		close(stop)
		return wait()
	})
	defer stopWriters()

	if !led.waitFor(phase/2, clusterWait) {
		t.Fatalf("%d commits acknowledged after %v, want %d", led.n.Load(), clusterWait, phase/2)
	}
	// Two join A without a cursor: a reset from A, then a cursor.
	fs.add(e.subscribers("bare", coll, nil, 1, 1, []*vsNode{a}, aThenC))
	if err := fs.waitConnected(1); err != nil {
		t.Fatal(err)
	}
	if !led.waitFor(phase, clusterWait) {
		t.Fatalf("%d commits acknowledged after %v, want %d", led.n.Load(), clusterWait, phase)
	}
	// The clients are mid-stream on A.
	if err := fs.waitAt(phase / 2); err != nil {
		t.Fatal(err)
	}
	killed := led.n.Load()
	began := time.Now()
	a.kill()
	t.Logf("%s killed at about version %d (in %v)", a.name, killed, time.Since(began).Round(time.Millisecond))
	if err := fs.waitConnected(2); err != nil {
		t.Fatal(err)
	}
	t.Logf("every client streams from %s %v after the kill", c.name, time.Since(began).Round(time.Millisecond))
	if !led.waitFor(led.n.Load()+phase, clusterWait) {
		t.Fatalf("%d commits acknowledged after %v, want %d more", led.n.Load(), clusterWait, phase)
	}
	for _, err := range stopWriters() {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	head := e.settledHead(coll, b, c)
	if err := fs.waitAt(head.Version); err != nil {
		t.Fatal(err)
	}
	fs.stop()

	log := e.logOf(coll, epoch, b, c)
	if uint64(len(log)) != head.Version || head.Epoch != epoch {
		t.Fatalf("log of %d commits in %s, head %s:%d", len(log), epoch, head.Epoch, head.Version)
	}
	checkLedger(t, led, log)
	if len(led.acked) != len(log) {
		t.Errorf("%d commits acknowledged, the log has %d", len(led.acked), len(log))
	}
	fs.checkAll(epoch, log)
	for _, f := range fs.list {
		conns := f.connections()
		if len(conns) < 2 || conns[0] != a.URL || conns[len(conns)-1] != c.URL {
			t.Errorf("%s: connections %v; want %s first and %s last", f.name, conns, a.URL, c.URL)
		}
		for _, u := range conns[1:] {
			if u == a.URL {
				t.Errorf("%s: connections %v: streamed from %s after it was killed", f.name, conns, a.URL)
			}
		}
	}
	e.checkSnapshots(coll, epoch, log, b, c)
	t.Logf("%d clients (%d SSE and %d WebSocket from version 0, 1 + 1 without a cursor) moved from %s to %s at about version %d and received all %d commits",
		len(fs.list), sseN, wsN, a.name, c.name, killed, len(log))
}
