package e2e

// The push suite: what every push transport (Server-Sent Events, the NDJSON
// stream, WebSocket) must do alike, each test run over all three through
// one client interface (push_transports_test.go). With the soak
// (TestSoak, over the three at once) and the access tests (TestAccessRefusals'
// streams), it proves the guarantees of live delivery once for every
// transport:
//
//   - TestPushResume: a cursor in the log resumes with exactly the commits
//     after it; none, another epoch's or one ahead of the head gets a
//     reset; one older than the log a compacted catch-up; live commits
//     follow seamlessly.
//   - TestPushSlowClient: a client that stops reading while the topic
//     moves on past its buffer gets one catch-up instead of its backlog, is
//     not cut off, and ends in the store's state.
//   - TestPushStalledClient: a client that stops reading is cut off once a
//     write blocks past the stall timeout, while another keeps receiving
//     every commit, and the server's memory stays bounded.
//   - TestPushTokenExpiry: a stream ends when its token expires, saying
//     so; a fresh token resumes from the cursor, without a gap.
//   - TestPushBusy: a stream whose read of history waits in vain for the
//     history memory ends saying so (unavailable); the same cursor resumes
//     once the memory is free.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/transport/ws"
)

// pushWait bounds every wait of the push suite: a hang guard.
const pushWait = 60 * time.Second

// pushView is a client's state, built from its events by apply, which
// checks the order guarantees as it goes.
type pushView struct {
	coll    string
	epoch   string
	version uint64
	started bool
	records map[string]string

	commits, catchUps, resets int
}

func newPushView(coll string) *pushView {
	return &pushView{coll: coll, records: map[string]string{}}
}

// at returns a view already at a cursor, as a resuming client is.
func (v *pushView) at(epoch string, version uint64, records map[string]string) *pushView {
	v.epoch, v.version, v.started, v.records = epoch, version, true, maps.Clone(records)
	if v.records == nil {
		v.records = map[string]string{}
	}
	return v
}

// apply applies ev: a commit must be the next version, a catch-up may not
// go back, and nothing of another collection may come.
func (v *pushView) apply(ev pushEvent) error {
	if ev.coll != v.coll {
		return fmt.Errorf("%s: not the collection %s", ev, v.coll)
	}
	switch ev.kind {
	case evReset:
		v.epoch, v.version, v.started = ev.epoch, ev.version, true
		v.records = recordMap(ev.records)
		v.resets++
	case evCatchUp:
		if !v.started || ev.epoch != v.epoch || ev.version < v.version {
			return fmt.Errorf("%s at %s:%d", ev, v.epoch, v.version)
		}
		for _, r := range ev.records {
			v.records[r.ID] = string(r.Value)
		}
		for _, id := range ev.deleted {
			delete(v.records, id)
		}
		v.version = ev.version
		v.catchUps++
	case evCommit:
		if !v.started || ev.epoch != v.epoch || ev.version != v.version+1 {
			return fmt.Errorf("%s at %s:%d: not the next commit", ev, v.epoch, v.version)
		}
		applyOps(v.records, ev.ops)
		v.version = ev.version
		v.commits++
	default:
		return fmt.Errorf("unexpected %s", ev)
	}
	return nil
}

// follow applies conn's events to v until v is at version want.
func (v *pushView) follow(conn pushConn, want uint64) error {
	for !v.started || v.version < want {
		ev, err := conn.next()
		if err != nil {
			return fmt.Errorf("at %s:%d, before %d: %w", v.epoch, v.version, want, err)
		}
		if err := v.apply(ev); err != nil {
			return err
		}
	}
	return nil
}

// pushEnv is a push server and what the suite does with it.
type pushEnv struct {
	*pushServer
	t      *testing.T
	client *http.Client
}

func newPushEnv(t *testing.T, cfg pushConfig) *pushEnv {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &pushEnv{pushServer: startPushServer(t, cfg), t: t, client: &http.Client{Transport: tr}}
}

// put writes record id of coll with value through the hub and returns the
// new version.
func (e *pushEnv) put(coll, id, value string) uint64 {
	e.t.Helper()
	col, err := e.hub.Collection(coll)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := col.Put(context.Background(), id, json.RawMessage(value))
	if err != nil {
		e.t.Fatalf("put %s/%s: %v", coll, id, err)
	}
	return r.Version
}

// snapshot reads coll's state through the hub.
func (e *pushEnv) snapshot(coll string) protocol.Snapshot {
	e.t.Helper()
	col, err := e.hub.Collection(coll)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := col.Snapshot(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// open follows coll from cur over tr with client (nil: the env's), and
// fails the test when it cannot. The connection is closed when the test
// ends.
func (e *pushEnv) open(tr pushTransport, client *http.Client, coll string, cur *protocol.Cursor) pushConn {
	e.t.Helper()
	if client == nil {
		client = e.client
	}
	// A safety net for a stream that hangs: the tests' own waits are each
	// bounded by pushWait, but a stream may outlive several of them (a
	// healthy client reading while 50 MB are pushed on a loaded machine).
	ctx, cancel := context.WithTimeout(context.Background(), 5*pushWait)
	conn, r, err := tr.open(ctx, client, e.base, nil, pushFollow{coll: coll, cur: cur})
	if err != nil || conn == nil {
		cancel()
		e.t.Fatalf("open %s of %s at %v: %v %s", tr, coll, cur, err, r)
	}
	e.t.Cleanup(func() {
		conn.close()
		cancel()
	})
	return conn
}

// waitConns waits until tr's handler serves n connections.
func (e *pushEnv) waitConns(tr pushTransport, n int) {
	e.t.Helper()
	deadline := time.Now().Add(pushWait)
	for e.conns[tr.String()]() != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %d connections, want %d", tr, e.conns[tr.String()](), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nextEnd reads conn to its end: the server's word, then the end of the
// stream (io.EOF; for a WebSocket, its close frame was the word).
func nextEnd(tr pushTransport, conn pushConn) (pushEvent, error) {
	ev, err := conn.next()
	if err != nil || ev.kind != evEnd {
		return ev, fmt.Errorf("%v, %v; want the server's last word", ev, err)
	}
	if !tr.multiplexes() {
		if after, err := conn.next(); !isEnd(err) {
			return ev, fmt.Errorf("after %s: %v %v, want the end of the stream", ev, after, err)
		}
	}
	return ev, nil
}

func TestPushResume(t *testing.T) {
	e := newPushEnv(t, pushConfig{store: store.Config{RetainCommits: 5}})
	forEachTransport(t, pushTransports, func(t *testing.T, tr pushTransport) {
		e := *e
		e.t = t
		coll := "resume-" + tr.String()
		e.put(coll, "r0", "0")
		at1 := map[string]string{"r0": "0"}
		for i := 1; i < 30; i++ {
			e.put(coll, fmt.Sprint("r", i%6), fmt.Sprint(i))
		}
		col, _ := e.hub.Collection(coll)
		if _, err := col.Delete(context.Background(), "r3"); err != nil {
			t.Fatal(err)
		}
		snap := e.snapshot(coll) // version 31
		state := recordMap(snap.Records)

		t.Run("cursor in the log", func(t *testing.T) {
			e.t = t
			v := newPushView(coll).at(snap.Epoch, snap.Version-3, nil)
			conn := e.open(tr, nil, coll, &protocol.Cursor{Epoch: snap.Epoch, Version: snap.Version - 3})
			if err := v.follow(conn, snap.Version); err != nil {
				t.Fatal(err)
			}
			if v.commits != 3 || v.catchUps+v.resets != 0 {
				t.Fatalf("%d commits, %d catch-ups, %d resets; want exactly the 3 commits after the cursor", v.commits, v.catchUps, v.resets)
			}
		})
		t.Run("cursor without epoch", func(t *testing.T) {
			e.t = t
			v := newPushView(coll).at(snap.Epoch, snap.Version-1, nil)
			if err := v.follow(e.open(tr, nil, coll, &protocol.Cursor{Version: snap.Version - 1}), snap.Version); err != nil || v.commits != 1 {
				t.Fatalf("%v, %d commits; want the one commit after the cursor", err, v.commits)
			}
		})
		for name, cur := range map[string]*protocol.Cursor{
			"no cursor":     nil,
			"another epoch": {Epoch: "another", Version: 3},
			"cursor ahead":  {Epoch: snap.Epoch, Version: 1000},
		} {
			t.Run(name, func(t *testing.T) {
				e.t = t
				conn := e.open(tr, nil, coll, cur)
				v := newPushView(coll)
				ev, err := conn.next()
				if err != nil || v.apply(ev) != nil || ev.kind != evReset || ev.cursor() != (protocol.Cursor{Epoch: snap.Epoch, Version: snap.Version}) || !maps.Equal(v.records, state) {
					t.Fatalf("first event %v %v, want a reset at %s:%d with the snapshot's records", ev, err, snap.Epoch, snap.Version)
				}
			})
		}
		t.Run("cursor older than the log", func(t *testing.T) {
			e.t = t
			conn := e.open(tr, nil, coll, &protocol.Cursor{Epoch: snap.Epoch, Version: 1})
			v := newPushView(coll).at(snap.Epoch, 1, at1)
			ev, err := conn.next()
			if err != nil || ev.kind != evCatchUp || v.apply(ev) != nil || v.version != snap.Version {
				t.Fatalf("first event %v %v, want a catch-up to %d", ev, err, snap.Version)
			}
			if !maps.Equal(v.records, state) || len(ev.deleted) != 1 || ev.deleted[0] != "r3" {
				t.Fatalf("after the catch-up (deleted %v): %v, want %v", ev.deleted, v.records, state)
			}
			// Live commits follow.
			for i := range 3 {
				e.put(coll, "live", fmt.Sprint(i))
			}
			if err := v.follow(conn, snap.Version+3); err != nil {
				t.Fatal(err)
			}
			if got := e.snapshot(coll); !maps.Equal(v.records, recordMap(got.Records)) {
				t.Fatalf("state %v, store %v", v.records, recordMap(got.Records))
			}
		})
	})
}

// bigPad is the padding of the suite's large values.
var bigPad = strings.Repeat("x", 8<<10)

func TestPushSlowClient(t *testing.T) {
	e := newPushEnv(t, pushConfig{
		fanout: fanout.Options{BufferBytes: 64 << 10},
		// Slow is not stalled: the client below pauses, and must not be
		// cut off for it.
		stall:      10 * time.Minute,
		sendBuffer: 64 << 10,
	})
	forEachTransport(t, pushTransports, func(t *testing.T, tr pushTransport) {
		e := *e
		e.t = t
		coll := "slow-" + tr.String()
		conn := e.open(tr, narrowClient(t, 64<<10), coll, nil)
		v := newPushView(coll)
		if err := v.follow(conn, 0); err != nil {
			t.Fatal(err)
		}
		// The client reads nothing while 150 commits of 8 KiB (1.2 MB) go
		// out: far more than the socket buffers and the fanout buffer hold.
		const commits = 150
		col, _ := e.hub.Collection(coll)
		exists := map[string]bool{}
		for i := range commits {
			id := fmt.Sprint("k", i%10)
			e.put(coll, id, fmt.Sprintf(`{"i":%d,"pad":%q}`, i, bigPad))
			exists[id] = true
			if del := fmt.Sprint("k", (i+3)%10); i%5 == 4 && exists[del] {
				if _, err := col.Delete(context.Background(), del); err != nil {
					t.Fatal(err)
				}
				delete(exists, del)
			}
		}
		snap := e.snapshot(coll)
		if err := v.follow(conn, snap.Version); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d commits, %d catch-ups to reach version %d", v.commits, v.catchUps, snap.Version)
		if v.catchUps == 0 || v.commits >= int(snap.Version) {
			t.Fatalf("a slow client got %d commits and %d catch-ups: its backlog was not dropped", v.commits, v.catchUps)
		}
		if !maps.Equal(v.records, recordMap(snap.Records)) {
			t.Fatalf("the slow client's state (%d records) differs from the store's (%d)", len(v.records), len(snap.Records))
		}
		if n := e.conns[tr.String()](); n != 1 {
			t.Fatalf("%d connections, want the slow client's still open", n)
		}
	})
}

func TestPushStalledClient(t *testing.T) {
	const bufferBytes = 2 << 20
	e := newPushEnv(t, pushConfig{
		// Long enough that the healthy client, starved of CPU on a loaded
		// machine, is not cut off too.
		stall:      3 * time.Second,
		fanout:     fanout.Options{BufferBytes: bufferBytes},
		store:      store.Config{RetainCommits: 64},
		sendBuffer: 256 << 10,
	})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	forEachTransport(t, pushTransports, func(t *testing.T, tr pushTransport) {
		e := *e
		e.t = t
		coll := "stall-" + tr.String()
		stalled := e.open(tr, narrowClient(t, 4<<10), coll, nil)
		if ev, err := stalled.next(); err != nil || ev.kind != evReset {
			t.Fatalf("stalled client's first event: %v %v", ev, err)
		} // and never reads again

		// The healthy client reads all along, on a goroutine of its own.
		healthy := e.open(tr, nil, coll, nil)
		hv := newPushView(coll)
		var mu sync.Mutex // guards hv and herr
		var herr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				ev, err := healthy.next()
				mu.Lock()
				if err == nil {
					err = hv.apply(ev)
				}
				herr = err
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		defer func() {
			healthy.close()
			<-done
		}()
		e.waitConns(tr, 2)

		base, peak := heap(), uint64(0)
		const total, ids = 50 << 20, 16
		value := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 64<<10))
		deadline := time.Now().Add(pushWait)
		cutAt, pushed := uint64(0), 0
		for i := 0; pushed < total || cutAt == 0; i++ {
			v := e.put(coll, fmt.Sprint("r", i%ids), value)
			pushed += len(value)
			if cutAt == 0 && e.conns[tr.String()]() == 1 {
				cutAt = v
			}
			if i%100 == 99 {
				peak = max(peak, heap())
			}
			if cutAt == 0 && time.Now().After(deadline) {
				t.Fatalf("the stalled client was not cut off within %s (%d MB pushed)", pushWait, pushed>>20)
			}
		}
		peak = max(peak, heap())
		// The other client keeps receiving after the cut.
		var last uint64
		for i := range 10 {
			last = e.put(coll, "after", fmt.Sprint(i))
		}
		deadline = time.Now().Add(pushWait)
		for {
			mu.Lock()
			at, err := hv.version, herr
			mu.Unlock()
			if err != nil {
				t.Fatalf("healthy client: %v", err)
			}
			if at >= last {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the healthy client at version %d, not %d, after %s", at, last, pushWait)
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if snap := e.snapshot(coll); hv.version != snap.Version || !maps.Equal(hv.records, recordMap(snap.Records)) {
			t.Fatalf("healthy client at version %d, store at %d", hv.version, snap.Version)
		}
		if n := e.conns[tr.String()](); n != 1 {
			t.Fatalf("%d connections, want only the healthy client's", n)
		}
		// The bound: the topic keeps at most BufferBytes of frames (2 MiB,
		// counted as twice each commit's JSON), the healthy client holds
		// at most one batch of those same frames, and bbolt's transactions
		// and the parsers add a few MiB; the heap is measured after a GC.
		// 64 MiB is many times that, yet below what keeping the stalled
		// client's backlog would cost: the 50 MB pushed, held as JSON and
		// again encoded.
		const bound = 64 << 20
		growth := int64(peak) - int64(base)
		t.Logf("pushed %d MB; stalled client cut off at version %d; healthy client: %d commits, %d catch-ups; heap growth %d MiB (bound %d MiB)",
			pushed>>20, cutAt, hv.commits, hv.catchUps, growth>>20, bound>>20)
		if growth > bound {
			t.Errorf("heap grew by %d MiB pushing %d MB to a stalled client, bound %d MiB", growth>>20, pushed>>20, bound>>20)
		}
	})
}

func TestPushBusy(t *testing.T) {
	mem := limit.NewMemory(64 << 10)
	e := newPushEnv(t, pushConfig{fanout: fanout.Options{PageBytes: 64 << 10, Memory: mem, MemoryWait: 20 * time.Millisecond}})
	forEachTransport(t, pushTransports, func(t *testing.T, tr pushTransport) {
		e := *e
		e.t = t
		coll := "busy-" + tr.String()
		for i := range 5 {
			e.put(coll, "r", fmt.Sprint(i))
		}
		epoch := e.snapshot(coll).Epoch
		taken, err := mem.Reserve(t.Context(), 64<<10, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := nextEnd(tr, e.open(tr, nil, coll, &protocol.Cursor{Epoch: epoch}))
		taken.Release()
		if err != nil || ev.code != protocol.CodeUnavailable || tr.multiplexes() && ev.status != 1013 {
			t.Fatalf("%v %v, want an end saying unavailable (a WebSocket's close status 1013, try again later)", ev, err)
		}
		v := newPushView(coll).at(epoch, 0, nil)
		if err := v.follow(e.open(tr, nil, coll, &protocol.Cursor{Epoch: epoch}), 5); err != nil || v.commits != 5 {
			t.Fatalf("resumed: %v, %d commits; want 5", err, v.commits)
		}
	})
}

// TestPushTokenExpiry: a stream ends when its token expires, saying why
// (an SSE "error" event and an NDJSON error line of code unauthorized; a
// WebSocket's close status 4401 "token expired"), not before; the expired
// token opens nothing more; a fresh token resumes from the cursor, every
// commit made meanwhile arriving once, in order.
func TestPushTokenExpiry(t *testing.T) {
	e := startAccessServer(t, accessOptions{})
	client := e.client(t, "")
	// Where each transport's browser client puts the token: EventSource in
	// the query, fetch in the header, a WebSocket in the query.
	place := map[string]func(string) func(*http.Request){"sse": withQueryToken, "ndjson": withBearer, "ws": withQueryToken}
	forEachTransport(t, pushTransports, func(t *testing.T, tr pushTransport) {
		t.Parallel()
		coll := "expiry-" + tr.String()
		rights := auth.Rights{Read: []string{coll}}
		ctx, cancel := context.WithTimeout(context.Background(), accessWait)
		defer cancel()
		w := startHubWriter(e, coll, 40*time.Millisecond)
		defer w.halt()
		waitUntil(t, ctx, "the writer has begun", func() bool { return w.version() > 0 })

		exp := shortExpiry()
		short := signHS(t, e.keys.secret, claimsFor("eve", rights, exp), "")
		conn, r, err := tr.open(ctx, client, e.base, place[tr.String()](short), pushFollow{coll: coll})
		if err != nil || conn == nil {
			t.Fatalf("open: %v %s", err, r)
		}
		defer conn.close()
		seq := &sequence{}
		var cur protocol.Cursor
		live := 0
		for {
			ev, err := conn.next()
			if err != nil {
				t.Fatalf("the stream ended without a word: %v", err)
			}
			if ev.kind == evEnd {
				if ev.code != protocol.CodeUnauthorized || !strings.Contains(ev.message, "token expired") || tr.multiplexes() && ev.status != ws.StatusTokenExpired {
					t.Fatalf("%s, want an end of code unauthorized saying the token expired (a WebSocket's close status 4401)", ev)
				}
				break
			}
			switch {
			case ev.kind == evReset && cur.Epoch == "":
				seq.next = ev.version + 1
			case ev.kind == evCommit && ev.epoch == cur.Epoch:
				if err := seq.commit(ev.version, ev.ops); err != nil {
					t.Fatal(err)
				}
				live++
			default:
				t.Fatalf("unexpected %s", ev)
			}
			cur = ev.cursor()
		}
		if now := time.Now(); now.Before(exp.Add(-100 * time.Millisecond)) {
			t.Errorf("the stream ended at %v, before its token expired at %v", now, exp)
		}
		if !tr.multiplexes() {
			if ev, err := conn.next(); !isEnd(err) {
				t.Errorf("after the end: %v %v, want the end of the stream", ev, err)
			}
		}
		conn.close()

		// The expired token opens nothing more.
		if c2, r, err := tr.open(ctx, client, e.base, place[tr.String()](short), pushFollow{coll: coll}); c2 != nil {
			c2.close()
			t.Fatalf("opened with the expired token, want 401")
		} else if rerr := refusalError(r, http.StatusUnauthorized, protocol.CodeUnauthorized, "token expired"); rerr != nil {
			t.Errorf("reopening with the expired token: %v (%v)", rerr, err)
		}

		// Commits are made while the client is away; it comes back with a
		// fresh token and its cursor.
		waitUntil(t, ctx, "5 commits were made meanwhile", func() bool { return w.version() >= cur.Version+5 })
		head, err := w.halt()
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
		fresh := signHS(t, e.keys.secret, claimsFor("eve", rights, time.Now().Add(time.Hour)), "")
		conn, r, err = tr.open(ctx, client, e.base, place[tr.String()](fresh), pushFollow{coll: coll, cur: &cur})
		if err != nil || conn == nil {
			t.Fatalf("open with a fresh token: %v %s", err, r)
		}
		defer conn.close()
		for seq.next <= head {
			ev, err := conn.next()
			if err != nil {
				t.Fatalf("resumed stream at %d of %d: %v", seq.next-1, head, err)
			}
			if ev.kind != evCommit || ev.epoch != cur.Epoch {
				t.Fatalf("resumed from %s: %s, want only commits", cur, ev)
			}
			if err := seq.commit(ev.version, ev.ops); err != nil {
				t.Fatal(err)
			}
		}
		if err := seq.check(w); err != nil {
			t.Error(err)
		}
		t.Logf("%s: %d commits live before the token expired, resumed after %s up to %d", tr, live, cur, head)
	})
}
