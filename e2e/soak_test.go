package e2e

// The soak test: a randomised, history-checking test of live delivery
// through a real server.
//
// A server runs in-process on a real listener: a hub over a bbolt store
// that fsyncs every commit, with a small fanout buffer and a short change
// log, so that slow and returning clients take every path there is (live
// commits, pages of the log, compacted catch-ups from the buffer and from
// the store, resets). Writers commit random multi-op puts and deletes to
// two collections over HTTP and record every acknowledged commit (version
// → ops). Hundreds of subscribers, over every push transport (Server-Sent
// Events, the NDJSON stream, WebSocket), follow the collections; each
// disconnects at random and resumes from its last cursor (Last-Event-ID;
// after and epoch; subscribe with after and epoch), some read slowly or
// stall, some join late, some without a cursor. Each keeps its own state
// and the sequence of everything it saw.
//
// When the writers are done and every subscriber has drained to the final
// head, the histories are checked (guarantees 2-4 of the design): per
// collection, commits in strictly consecutive versions, no duplicate and
// no gap, except where a catch-up (never going back) or a reset intervened;
// a reset only first on a connection that had no cursor; every commit's
// ops exactly those acknowledged for its version; the final state equal to
// the snapshot, which itself equals the acknowledged commits replayed.
//
// Replay a run with -seed=N or VIEWSYNC_SEED=N; the test logs its seed.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/client/vsclient"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the soak test (0: $VIEWSYNC_SEED, else from the clock); the test logs the one it uses")

// soakCollections are the collections the writers share.
var soakCollections = []string{"soak-a", "soak-b"}

// The server's settings: small enough that slow and returning clients fall
// out of the fanout buffer and out of the change log within the run.
const (
	soakBufferBytes   = 256 << 10
	soakRetainCommits = 16
	// soakSendBuffer shrinks the socket send buffer of every accepted
	// connection, so that a subscriber that stops reading blocks the
	// server's writes soon, as one far away would.
	soakSendBuffer = 16 << 10
)

// shape is the size of one run.
type shape struct {
	writers int
	// writeFor is how long the writers write at least.
	writeFor time.Duration
	// minCommits is how many commits each collection gets at least: the
	// writers write on past writeFor until it has them. The slow paths
	// (a subscriber away for awayCommits or stalled for stallCommits,
	// falling out of the change log) need that many commits whatever the
	// machine's speed; a busy machine once committed too few in writeFor
	// for any WebSocket subscriber to need a catch-up.
	minCommits int64
	// writeGap bounds each writer's pause between commits: [0, writeGap).
	writeGap time.Duration
	// each is the number of subscribers per transport; both of those of
	// a transport that multiplexes follow both collections on their one
	// connection.
	each, both int
	// drainFor bounds the wait for every subscriber to reach the head.
	drainFor time.Duration
}

func soakShape() shape {
	s := shape{writers: 4, writeFor: 12 * time.Second, writeGap: 50 * time.Millisecond,
		minCommits: 2 * awayCommits, each: 100, both: 35, drainFor: 30 * time.Second}
	if testing.Short() {
		s.writeFor, s.each, s.both = 4*time.Second, 34, 12
	}
	return s
}

// soakSeed returns the run's seed and logs it.
func soakSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		if s := os.Getenv("VIEWSYNC_SEED"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("VIEWSYNC_SEED=%q: not a seed: %v", s, err)
			}
			seed = v
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed=%d or VIEWSYNC_SEED=%d)", seed, seed, seed)
	return seed
}

// startSoakServer starts the server under test, every push transport
// mounted, and returns its base URL, "http://HOST:PORT". It is stopped, in
// the order a server stops, when the test ends.
func startSoakServer(t *testing.T) string {
	t.Helper()
	return startPushServer(t, pushConfig{
		store:      store.Config{RetainCommits: soakRetainCommits},
		fanout:     fanout.Options{BufferBytes: soakBufferBytes},
		sendBuffer: soakSendBuffer,
		durable:    true,
	}).base
}

// TestSoak runs writers and subscribers against a real server for a few
// seconds and checks every subscriber's history; see the top of this file.
func TestSoak(t *testing.T) {
	seed := soakSeed(t)
	sh := soakShape()
	base := startSoakServer(t)
	started := time.Now()

	// Subscribers first, so that most see the history from its start.
	led := newLedger()
	ph := &phases{led: led}
	var writing context.CancelFunc
	ph.writing, writing = context.WithCancel(context.Background())
	defer writing()
	// drainCtx bounds the whole run of the subscribers: it ends drainFor
	// after the writers are done.
	drainCtx, cancelDrain := context.WithCancel(context.Background())
	defer cancelDrain()

	rng := rand.New(rand.NewPCG(seed, 0))
	var subs []*subscriber
	for i := range sh.each * len(pushTransports) {
		tr := pushTransports[i/sh.each]
		s := newSubscriber(rng, seed, i, tr)
		if tr.multiplexes() && i%sh.each < sh.both {
			for _, c := range soakCollections {
				s.follows = append(s.follows, newFollower(c, rng.IntN(3) == 0))
			}
		} else {
			s.follows = []*follower{newFollower(soakCollections[rng.IntN(len(soakCollections))], rng.IntN(3) == 0)}
		}
		if rng.IntN(3) == 0 {
			s.joinAfter = time.Duration(rng.Int64N(int64(sh.writeFor / 2)))
		}
		subs = append(subs, s)
	}
	subErrs := make([]error, len(subs))
	var subWG sync.WaitGroup
	for i, s := range subs {
		subWG.Go(func() {
			subErrs[i] = s.run(drainCtx, base, ph)
		})
	}
	defer func() {
		cancelDrain()
		subWG.Wait()
		for _, s := range subs {
			s.tr.CloseIdleConnections()
		}
	}()

	// Writers.
	wtr := &http.Transport{MaxIdleConnsPerHost: sh.writers}
	defer wtr.CloseIdleConnections()
	wc, err := vsclient.New(vsclient.Options{URL: base, HTTPClient: &http.Client{Transport: wtr, Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(sh.writeFor)
	more := func() bool {
		if time.Now().Before(until) {
			return true
		}
		for _, c := range soakCollections {
			if led.count(c) < sh.minCommits {
				return true
			}
		}
		return false
	}
	writeErrs := make([]error, sh.writers)
	var wWG sync.WaitGroup
	for i := range sh.writers {
		w := newWriter(i, rand.New(rand.NewPCG(seed, uint64(1<<32+i))), wc)
		wWG.Go(func() {
			writeErrs[i] = w.run(context.Background(), more, sh.writeGap, led)
		})
	}
	wWG.Wait()
	wrote := time.Since(started)
	time.AfterFunc(sh.drainFor, cancelDrain)
	for i, err := range writeErrs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}

	// The final heads: every subscriber drains to them.
	ph.targets = map[string]protocol.Head{}
	for _, c := range soakCollections {
		if ph.targets[c], err = wc.Head(t.Context(), c); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	writing()
	subWG.Wait()
	drained := time.Since(started)
	for i, err := range subErrs {
		if err != nil {
			t.Errorf("%s: %v", subs[i].name, err)
		}
	}
	if t.Failed() {
		return
	}

	// The ledger must explain the log: every version of each collection
	// acknowledged once, and the acknowledged commits, replayed, give the
	// snapshot.
	snaps := map[string]protocol.Snapshot{}
	hashes := map[string]map[uint64]uint64{}
	for _, c := range soakCollections {
		snap, err := wc.Snapshot(t.Context(), c, nil)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		snaps[c] = snap
		if hd := ph.targets[c]; snap.Epoch != hd.Epoch || snap.Version != hd.Version {
			t.Fatalf("%s: snapshot at %s:%d after the writers were done at %s:%d", c, snap.Epoch, snap.Version, hd.Epoch, hd.Version)
		}
		acked := led.acked[c]
		if len(acked) != int(snap.Version) {
			t.Errorf("%s: %d commits acknowledged, head is version %d", c, len(acked), snap.Version)
		}
		replayed := map[string]string{}
		hashes[c] = map[uint64]uint64{}
		for v := uint64(1); v <= snap.Version; v++ {
			ops, ok := acked[v]
			if !ok {
				t.Errorf("%s: version %d in the log was never acknowledged", c, v)
				continue
			}
			applyOps(replayed, ops)
			hashes[c][v] = opsHash(ops)
		}
		if got := recordMap(snap.Records); !maps.Equal(got, replayed) {
			t.Errorf("%s: snapshot at version %d differs from the acknowledged commits replayed:\n%s", c, snap.Version, diffStates(got, replayed))
		}
	}

	// Every subscriber's history.
	var tot totals
	for _, s := range subs {
		tot.reconnects += s.reconnects
		for _, f := range s.follows {
			snap := snaps[f.coll]
			if err := f.check(protocol.Head{Epoch: snap.Epoch, Version: snap.Version}, hashes[f.coll]); err != nil {
				t.Errorf("%s, %s: %v\n%s", s.name, f.coll, err, f.describe())
				continue
			}
			if !maps.Equal(f.records, recordMap(snap.Records)) {
				t.Errorf("%s, %s: final state differs from the snapshot at version %d:\n%s", s.name, f.coll, snap.Version, diffStates(f.records, recordMap(snap.Records)))
			}
			tot.add(s.via, f)
		}
	}
	var commits []string
	for _, c := range soakCollections {
		commits = append(commits, fmt.Sprintf("%s %d", c, snaps[c].Version))
	}
	t.Logf("%d writers wrote for %v: commits %s; %d subscribers per transport (%d following both collections where one connection can) drained by %v",
		sh.writers, wrote.Round(time.Millisecond), strings.Join(commits, ", "), sh.each, sh.both, drained.Round(time.Millisecond))
	for _, tr := range pushTransports {
		n := tr.String()
		t.Logf("%s: deliveries %d, catch-ups %d, resets %d", n, tot.commits[n], tot.catchUps[n], tot.resets[n])
		if tot.catchUps[n] == 0 {
			t.Errorf("no %s subscriber got a catch-up: the run did not exercise its slow path", n)
		}
	}
	t.Logf("reconnects %d", tot.reconnects)
}

// totals sums what the subscribers saw, by transport.
type totals struct {
	commits, catchUps, resets map[string]int
	reconnects                int
}

func (t *totals) add(tr pushTransport, f *follower) {
	if t.commits == nil {
		t.commits, t.catchUps, t.resets = map[string]int{}, map[string]int{}, map[string]int{}
	}
	t.commits[tr.String()] += f.commits
	t.catchUps[tr.String()] += f.catchUps
	t.resets[tr.String()] += f.resets
}

// phases tells the subscribers where the run is.
type phases struct {
	// writing ends when the writers are done; targets is set before.
	writing context.Context
	// targets are the collections' final heads.
	targets map[string]protocol.Head
	// led counts the commits made.
	led *ledger
}

// draining reports whether the writers are done; targets may be read then.
func (p *phases) draining() bool { return p.writing.Err() != nil }

// waitCommits waits until n more commits were acknowledged to coll, or
// ctx ends.
func (p *phases) waitCommits(ctx context.Context, coll string, n int64) {
	until := p.led.count(coll) + n
	for p.led.count(coll) < until && sleepCtx(ctx, 10*time.Millisecond) {
	}
}

// ledger records every acknowledged commit.
type ledger struct {
	mu sync.Mutex
	// acked maps collection → version → the ops acknowledged at it.
	acked map[string]map[uint64][]protocol.Op
	// counts holds how many commits each collection had acknowledged;
	// the map itself never changes.
	counts map[string]*atomic.Int64
}

func newLedger() *ledger {
	l := &ledger{acked: map[string]map[uint64][]protocol.Op{}, counts: map[string]*atomic.Int64{}}
	for _, c := range soakCollections {
		l.acked[c] = map[uint64][]protocol.Op{}
		l.counts[c] = new(atomic.Int64)
	}
	return l
}

// count returns how many commits coll had acknowledged.
func (l *ledger) count(coll string) int64 { return l.counts[coll].Load() }

// record notes an acknowledged commit; a version acknowledged twice is an
// error.
func (l *ledger) record(coll string, v uint64, ops []protocol.Op) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.acked[coll][v]; ok {
		return fmt.Errorf("%s: version %d acknowledged twice: %s and %s", coll, v, opsString(prev), opsString(ops))
	}
	l.acked[coll][v] = ops
	l.counts[coll].Add(1)
	return nil
}

// writer commits random ops to the collections. Each writer writes only
// records of its own (ids w<N>-…), so it knows which exist and at which
// version: its deletes find their record and its preconditions hold, and
// every commit it sends must be acknowledged.
type writer struct {
	id  int
	rng *rand.Rand
	c   *vsclient.Client
	// own maps collection → id → record version of the writer's records.
	own map[string]map[string]uint64
	seq int
}

// writerIDs is how many record ids each writer uses per collection.
const writerIDs = 10

// maxPad bounds the padding of a value, so that commits vary in size and
// a few hundred fill the fanout buffer.
const maxPad = 6000

func newWriter(id int, rng *rand.Rand, c *vsclient.Client) *writer {
	w := &writer{id: id, rng: rng, c: c, own: map[string]map[string]uint64{}}
	for _, c := range soakCollections {
		w.own[c] = map[string]uint64{}
	}
	return w
}

// run writes while more reports there is more to write, pausing [0, gap)
// between commits.
func (w *writer) run(ctx context.Context, more func() bool, gap time.Duration, led *ledger) error {
	for more() {
		coll := soakCollections[w.rng.IntN(len(soakCollections))]
		ops, ifs := w.plan(coll)
		v, err := w.send(ctx, coll, ops, ifs)
		if err != nil {
			return fmt.Errorf("%s %s: %w", coll, opsString(ops), err)
		}
		if err := led.record(coll, v, ops); err != nil {
			return err
		}
		for _, op := range ops {
			if op.Op == protocol.OpPut {
				w.own[coll][op.ID] = v
			} else {
				delete(w.own[coll], op.ID)
			}
		}
		time.Sleep(time.Duration(w.rng.Int64N(int64(gap))))
	}
	return nil
}

// plan makes the next commit: 1-4 ops on distinct records, deleting some
// that exist and putting the others, and sometimes preconditions.
func (w *writer) plan(coll string) ([]protocol.Op, map[string]uint64) {
	w.seq++
	own := w.own[coll]
	n := 1 + w.rng.IntN(4)
	var ops []protocol.Op
	for i, k := range w.rng.Perm(writerIDs)[:n] {
		id := fmt.Sprintf("w%d-r%d", w.id, k)
		if _, ok := own[id]; ok && w.rng.IntN(3) == 0 {
			ops = append(ops, protocol.Op{Op: protocol.OpDelete, ID: id})
			continue
		}
		value := fmt.Sprintf(`{"w":%d,"seq":%d,"i":%d,"pad":%q}`, w.id, w.seq, i, strings.Repeat("x", w.rng.IntN(maxPad)))
		ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(value)})
	}
	var ifs map[string]uint64
	if w.rng.IntN(2) == 0 {
		ifs = map[string]uint64{}
		for _, op := range ops[:1+w.rng.IntN(len(ops))] {
			ifs[op.ID] = own[op.ID] // 0: must not exist
		}
	}
	return ops, ifs
}

// send sends one commit, as a PUT or DELETE of one record or a POST of the
// commit, and returns the version acknowledged.
func (w *writer) send(ctx context.Context, coll string, ops []protocol.Op, ifs map[string]uint64) (uint64, error) {
	if len(ops) > 1 || len(ifs) > 1 || w.rng.IntN(2) != 0 {
		v, err := w.c.Commit(ctx, coll, ops, ifs)
		if err == nil && v == 0 {
			err = errors.New("POST commits answered version 0")
		}
		return v, err
	}
	op := ops[0]
	var pre []vsclient.WriteOption
	switch v, ok := ifs[op.ID]; {
	case ok && v == 0:
		pre = append(pre, vsclient.IfAbsent())
	case ok:
		pre = append(pre, vsclient.IfVersion(v))
	}
	if op.Op == protocol.OpDelete {
		v, err := w.c.Delete(ctx, coll, op.ID, pre...)
		if err == nil && v == 0 {
			err = errors.New("DELETE answered version 0")
		}
		return v, err
	}
	r, err := w.c.Put(ctx, coll, op.ID, op.Value, pre...)
	if err != nil {
		return 0, err
	}
	if r.ID != op.ID || !bytes.Equal(r.Value, op.Value) || r.Version == 0 {
		return 0, fmt.Errorf("PUT answered %s %s at %d", r.ID, r.Value, r.Version)
	}
	return r.Version, nil
}

// applyOps applies a commit's ops to a state (id → value).
func applyOps(state map[string]string, ops []protocol.Op) {
	for _, op := range ops {
		if op.Op == protocol.OpDelete {
			delete(state, op.ID)
		} else {
			state[op.ID] = string(op.Value)
		}
	}
}

// recordMap returns records as id → value.
func recordMap(recs []protocol.Record) map[string]string {
	m := make(map[string]string, len(recs))
	for _, r := range recs {
		m[r.ID] = string(r.Value)
	}
	return m
}

// diffStates describes how two states differ, by id.
func diffStates(got, want map[string]string) string {
	var b strings.Builder
	ids := slices.Sorted(maps.Keys(got))
	for id := range want {
		if _, ok := got[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		g, gok := got[id]
		w, wok := want[id]
		switch {
		case !gok:
			fmt.Fprintf(&b, "  %s: missing, want %.60s\n", id, w)
		case !wok:
			fmt.Fprintf(&b, "  %s: %.60s, want none\n", id, g)
		case g != w:
			fmt.Fprintf(&b, "  %s: %.60s, want %.60s\n", id, g, w)
		}
	}
	return b.String()
}

// opsString summarises ops for messages.
func opsString(ops []protocol.Op) string {
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = string(op.Op) + " " + op.ID
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// errNotAtHead marks a subscriber that did not reach the final head in time.
var errNotAtHead = errors.New("did not reach the final head")
