package vsclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/client/vsclient"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/server"
	"github.com/viewsync/viewsync/store"
)

var transports = []vsclient.Transport{vsclient.SSE, vsclient.NDJSON, vsclient.WebSocket}

// startServer starts a real server on a bbolt store in a temp dir,
// behind a proxy whose connections the test can cut.
func startServer(t *testing.T, opts *server.Options) (*server.Server, *cutter) {
	t.Helper()
	srv, err := server.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		srv.Close()
	})
	return srv, newCutter(t, hs.Listener.Addr().String())
}

// newClient returns a client of the proxy, with connections of its own.
func newClient(t *testing.T, p *cutter, tr vsclient.Transport) *vsclient.Client {
	t.Helper()
	httpTransport := &http.Transport{}
	t.Cleanup(httpTransport.CloseIdleConnections)
	c, err := vsclient.New(vsclient.Options{URL: "http://" + p.addr(), Transport: tr, HTTPClient: &http.Client{Transport: httpTransport},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cutter is a TCP proxy to the server whose open connections cut closes,
// as a network that drops them would.
type cutter struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	opened atomic.Int64
}

func newCutter(t *testing.T, target string) *cutter {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutter{l: l, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		l.Close()
		p.cut()
	})
	go p.serve()
	return p
}

func (p *cutter) addr() string { return p.l.Addr().String() }

func (p *cutter) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.opened.Add(1)
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(in, out)
		go pipe(out, in)
	}
}

// cut closes every open connection.
func (p *cutter) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// follower reads a view, checking the order of what it gets.
type follower struct {
	t     *testing.T
	v     *vsclient.View
	cur   protocol.Cursor
	kinds map[vsclient.Kind]int
	// filtered: the view's commits skip versions.
	filtered bool
}

func follow(t *testing.T, v *vsclient.View) *follower {
	return &follower{t: t, v: v, kinds: map[vsclient.Kind]int{}}
}

// next reads one change, failing the test on a gap or a repeat.
func (f *follower) next(ctx context.Context) vsclient.Change {
	f.t.Helper()
	ch, err := f.v.Next(ctx)
	if err != nil {
		f.t.Fatalf("Next after %v: %v", f.cur, err)
	}
	f.check(ch)
	return ch
}

// poll reads a change if one comes within d.
func (f *follower) poll(ctx context.Context, d time.Duration) {
	f.t.Helper()
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	ch, err := f.v.Next(pctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
	case err != nil:
		f.t.Fatalf("Next after %v: %v", f.cur, err)
	default:
		f.check(ch)
	}
}

// check checks that ch follows the cursor, and moves it.
func (f *follower) check(ch vsclient.Change) {
	f.t.Helper()
	f.kinds[ch.Kind]++
	switch ch.Kind {
	case vsclient.CommitKind:
		// A filtered view's commit may follow any cursor from After on.
		if ch.Epoch != f.cur.Epoch || ch.After > f.cur.Version || ch.After != f.cur.Version && !f.filtered || ch.Version <= f.cur.Version {
			f.t.Fatalf("commit %s:%d after %d at cursor %v: a gap or a repeat", ch.Epoch, ch.Version, ch.After, f.cur)
		}
	case vsclient.CatchUp, vsclient.Progress:
		if ch.Epoch != f.cur.Epoch || ch.Version < f.cur.Version {
			f.t.Fatalf("%s to %s:%d at cursor %v", ch.Kind, ch.Epoch, ch.Version, f.cur)
		}
	}
	f.cur = protocol.Cursor{Epoch: ch.Epoch, Version: ch.Version}
	if got := f.v.Cursor(); got != f.cur {
		f.t.Fatalf("view cursor %v after a change to %v", got, f.cur)
	}
}

// until reads until the view has head's epoch and version.
func (f *follower) until(ctx context.Context, head protocol.Head) {
	f.t.Helper()
	for f.cur.Epoch != head.Epoch || f.cur.Version < head.Version {
		f.next(ctx)
	}
}

// equalRecords compares the view's records with a snapshot's.
func equalRecords(t *testing.T, what string, got map[string]protocol.Record, want []protocol.Record) {
	t.Helper()
	w := map[string]protocol.Record{}
	for _, r := range want {
		w[r.ID] = r
	}
	if len(got) != len(w) {
		t.Fatalf("%s: %d records %v, want %d %v", what, len(got), slices.Sorted(maps.Keys(got)), len(w), slices.Sorted(maps.Keys(w)))
	}
	for id, r := range w {
		g, ok := got[id]
		if !ok || g.Version != r.Version || string(g.Value) != string(r.Value) {
			t.Fatalf("%s: record %s is %+v (present %v), want %+v", what, id, g, ok, r)
		}
	}
}

func value(s string) json.RawMessage { return json.RawMessage(s) }

func TestWrites(t *testing.T) {
	srv, p := startServer(t, nil)
	err := srv.Hub().HandleCall("touch", func(ctx context.Context, call *viewsync.Call) (any, error) {
		col, err := call.Collection("things")
		if err != nil {
			return nil, err
		}
		r, err := col.Put(ctx, "touched", call.Arg)
		return map[string]uint64{"at": r.Version}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, p, vsclient.SSE)
	ctx := t.Context()

	r, err := c.Put(ctx, "things", "a", map[string]any{"n": 1, "owner": "ana"}, vsclient.IfAbsent())
	if err != nil || r.ID != "a" || r.Version != 1 || string(r.Value) != `{"n":1,"owner":"ana"}` {
		t.Fatalf("Put: %+v, %v", r, err)
	}
	if _, err := c.Put(ctx, "things", "a", value(`{}`), vsclient.IfAbsent()); !errors.Is(err, vsclient.ErrPreconditionFailed) {
		t.Errorf("Put IfAbsent of an existing record: %v, want ErrPreconditionFailed", err)
	}
	var e *vsclient.Error
	if _, err := c.Patch(ctx, "things", "a", value(`{"n":2}`), vsclient.IfVersion(7)); !errors.As(err, &e) || e.Status != 412 || e.Message == "" {
		t.Errorf("Patch IfVersion(7): %v, want a 412 *Error with a message", err)
	}
	if r, err := c.Patch(ctx, "things", "a", value(`{"n":2}`), vsclient.IfVersion(1)); err != nil || string(r.Value) != `{"n":2,"owner":"ana"}` || r.Version != 2 {
		t.Errorf("Patch: %+v, %v", r, err)
	}
	if r, err := c.Get(ctx, "things", "a"); err != nil || r.Version != 2 {
		t.Errorf("Get: %+v, %v", r, err)
	}
	if _, err := c.Get(ctx, "things", "nope"); !errors.Is(err, vsclient.ErrNotFound) {
		t.Errorf("Get of a missing record: %v, want ErrNotFound", err)
	}
	v, err := c.Commit(ctx, "things", []protocol.Op{
		{Op: protocol.OpPut, ID: "b", Value: value(`{"owner":"bo"}`)},
		{Op: protocol.OpPut, ID: "c/d", Value: value(`{"owner":"ana"}`)},
	}, map[string]uint64{"b": 0, "a": 2})
	if err != nil || v != 3 {
		t.Fatalf("Commit: %d, %v", v, err)
	}
	if _, err := c.Commit(ctx, "things", []protocol.Op{{Op: protocol.OpDelete, ID: "b"}}, map[string]uint64{"b": 1}); !errors.Is(err, vsclient.ErrPreconditionFailed) {
		t.Errorf("Commit with a failing precondition: %v", err)
	}
	s, err := c.Snapshot(ctx, "things", map[string]string{"owner": "ana"})
	if err != nil || s.Version != 3 || len(s.Records) != 2 || s.Records[0].ID != "a" || s.Records[1].ID != "c/d" {
		t.Errorf("Snapshot where owner=ana: %+v, %v", s, err)
	}
	if _, err := c.Snapshot(ctx, "things", value(`{"owner":{"$near":1}}`)); !errors.Is(err, vsclient.ErrBadRequest) {
		t.Errorf("Snapshot with a bad filter: %v, want ErrBadRequest", err)
	}
	if h, err := c.Head(ctx, "things"); err != nil || h != (protocol.Head{Epoch: s.Epoch, Version: 3}) {
		t.Errorf("Head: %+v, %v; want %s:3", h, err, s.Epoch)
	}
	if h, err := c.Head(ctx, "never-written"); err != nil || h.Version != 0 || h.Epoch == "" {
		t.Errorf("Head of a collection never written: %+v, %v; want version 0 in an epoch", h, err)
	}
	if _, err := c.Head(ctx, "Not A Name"); !errors.Is(err, vsclient.ErrBadRequest) {
		t.Errorf("Head of a bad name: %v, want ErrBadRequest", err)
	}
	if v, err := c.Delete(ctx, "things", "c/d", vsclient.IfExists()); err != nil || v != 4 {
		t.Errorf("Delete of an id with a slash: %d, %v", v, err)
	}
	if _, err := c.Delete(ctx, "things", "c/d"); !errors.Is(err, vsclient.ErrNotFound) {
		t.Errorf("Delete of a missing record: %v", err)
	}
	res, err := c.Call(ctx, "touch", map[string]int{"k": 1})
	if err != nil || res.Versions["things"] != 5 || string(res.Result) != `{"at":5}` {
		t.Errorf("Call: %+v, %v", res, err)
	}
	if _, err := c.Call(ctx, "nope", nil); !errors.Is(err, vsclient.ErrNotFound) {
		t.Errorf("Call of an unknown name: %v", err)
	}
	for _, o := range []vsclient.Options{{URL: "ftp://x"}, {URL: "http://"}, {URL: "http://x", Transport: "carrier-pigeon"}} {
		if _, err := vsclient.New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

// TestViewFollowsAndResumes, over each transport: a view gets a reset,
// then every commit in order; a view resumed from a cursor whose commits
// the log no longer holds gets a catch-up; a drop of the collection gets
// a reset in the new epoch; a call's versions are waited for.
func TestViewFollowsAndResumes(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			srv, p := startServer(t, &server.Options{Store: store.Config{RetainCommits: 10}})
			c := newClient(t, p, tr)
			ctx := t.Context()
			col, err := srv.Hub().Collection("c")
			if err != nil {
				t.Fatal(err)
			}
			put := func(id, v string) uint64 {
				r, err := c.Put(ctx, "c", id, value(v))
				if err != nil {
					t.Fatal(err)
				}
				return r.Version
			}
			put("x", `1`)

			v := c.Subscribe(ctx, "c", vsclient.SubscribeOptions{})
			f := follow(t, v)
			if ch := f.next(ctx); ch.Kind != vsclient.Reset || ch.Version != 1 || len(ch.Records) != 1 || !v.Synced() {
				t.Fatalf("first change %+v, want a reset at 1 with x", ch)
			}
			for i := range 5 {
				put(fmt.Sprintf("r%d", i), fmt.Sprint(i))
			}
			last := put("x", `2`)
			f.until(ctx, protocol.Head{Epoch: f.cur.Epoch, Version: last})
			if f.kinds[vsclient.CommitKind] != 6 {
				t.Errorf("kinds %v, want 6 commits", f.kinds)
			}
			s, _ := c.Snapshot(ctx, "c", nil)
			equalRecords(t, "after commits", v.Records(), s.Records)

			// Closed, then resumed past the log's retention: a catch-up.
			cur := v.Cursor()
			v.Close()
			if _, err := v.Next(ctx); !errors.Is(err, vsclient.ErrClosed) {
				t.Errorf("Next after Close: %v, want ErrClosed", err)
			}
			if len(v.Records()) != 6 {
				t.Errorf("a closed view holds %d records, want its 6", len(v.Records()))
			}
			for i := range 15 {
				put(fmt.Sprintf("r%d", i%8), fmt.Sprint(100+i))
			}
			if _, err := c.Delete(ctx, "c", "x"); err != nil {
				t.Fatal(err)
			}
			v2 := c.Subscribe(ctx, "c", vsclient.SubscribeOptions{From: &cur})
			defer v2.Close()
			f2 := follow(t, v2)
			f2.cur = cur
			if ch := f2.next(ctx); ch.Kind != vsclient.CatchUp || len(ch.Deleted) != 1 || ch.Deleted[0] != "x" {
				t.Fatalf("resumed past the log: %+v, want a catch-up deleting x", ch)
			}

			// A drop: a reset in a new epoch.
			head, err := col.Drop(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ch := f2.next(ctx); ch.Kind != vsclient.Reset || ch.Epoch != head.Epoch || len(ch.Records) != 0 {
				t.Fatalf("after a drop: %+v, want an empty reset in epoch %s", ch, head.Epoch)
			}

			// Read-your-writes: WaitFor a write's version while Next runs.
			go func() {
				for {
					if _, err := v2.Next(ctx); err != nil {
						return
					}
				}
			}()
			r, err := c.Put(ctx, "c", "y", value(`true`))
			if err != nil {
				t.Fatal(err)
			}
			if err := v2.WaitFor(ctx, r.Version); err != nil {
				t.Fatal(err)
			}
			if got, ok := v2.Get("y"); !ok || got.Version != r.Version {
				t.Errorf("after WaitFor(%d): y is %+v (%v)", r.Version, got, ok)
			}
		})
	}
}

// TestViewEnds, over each transport: errors that retrying cannot mend
// end the view, and Next returns them.
func TestViewEnds(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			_, p := startServer(t, nil)
			c := newClient(t, p, tr)
			ctx := t.Context()
			for _, tt := range []struct {
				collection string
				where      any
				want       error
			}{
				{"c", value(`{"price":{"$near":1}}`), vsclient.ErrBadRequest},
				{"c", value(`[1]`), vsclient.ErrBadRequest},
				{"No Such", nil, vsclient.ErrBadRequest},
			} {
				v := c.Subscribe(ctx, tt.collection, vsclient.SubscribeOptions{Where: tt.where})
				if _, err := v.Next(ctx); !errors.Is(err, tt.want) {
					t.Errorf("Subscribe(%q, %s): Next %v, want %v", tt.collection, tt.where, err, tt.want)
				}
				v.Close()
			}
			cctx, cancel := context.WithCancel(ctx)
			v := c.Subscribe(cctx, "c", vsclient.SubscribeOptions{})
			if ch, err := v.Next(ctx); err != nil || ch.Kind != vsclient.Reset {
				t.Fatalf("first change %+v, %v", ch, err)
			}
			cancel()
			if _, err := v.Next(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Next once the subscription's context ended: %v", err)
			}
		})
	}
}

// TestViewRandomCuts, over each transport: a writer makes random puts and
// deletes while the network drops every connection at random moments;
// the view, and a filtered view, get every change once and in order, and
// end equal to the collection (its filtered part).
func TestViewRandomCuts(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			// Keep-alives every 100 ms carry the filtered view's progress.
			srv, p := startServer(t, &server.Options{Store: store.Config{RetainCommits: 25}, BufferBytes: 4 << 10, PingInterval: 100 * time.Millisecond})
			col, err := srv.Hub().Collection("c")
			if err != nil {
				t.Fatal(err)
			}
			c := newClient(t, p, tr)
			ctx := t.Context()
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 7))

			all := follow(t, c.Subscribe(ctx, "c", vsclient.SubscribeOptions{}))
			mine := follow(t, c.Subscribe(ctx, "c", vsclient.SubscribeOptions{Where: map[string]string{"owner": "a"}}))
			mine.filtered = true
			defer func() { all.v.Close() }()
			defer mine.v.Close()

			stop := make(chan struct{})
			cutterDone := make(chan struct{})
			go func() {
				defer close(cutterDone)
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Duration(5+rand.IntN(40)) * time.Millisecond):
						p.cut()
					}
				}
			}()
			// The followers read on the test's goroutine in turns with
			// the writes, so that the checks of follow stay on it.
			var closedAt protocol.Cursor
			for i := range 200 {
				switch i {
				case 100: // the whole view goes away for longer than the log keeps
					closedAt = all.v.Cursor()
					all.v.Close()
				case 140: // and comes back from its cursor: a catch-up
					kinds := all.kinds
					all = follow(t, c.Subscribe(ctx, "c", vsclient.SubscribeOptions{From: &closedAt}))
					all.cur, all.kinds = closedAt, kinds
					if ch := all.next(ctx); ch.Kind != vsclient.CatchUp {
						t.Fatalf("resumed 40 commits back with 25 kept: %s, want a catch-up", ch.Kind)
					}
				case 170: // a new history: resets
					if _, err := col.Drop(ctx); err != nil {
						t.Fatal(err)
					}
				}
				id := fmt.Sprintf("r%d", rng.IntN(12))
				owner := []string{"a", "b"}[rng.IntN(2)]
				var err error
				for attempt := 0; ; attempt++ {
					if rng.IntN(5) == 0 {
						_, err = c.Delete(ctx, "c", id)
						if errors.Is(err, vsclient.ErrNotFound) {
							err = nil
							break
						}
					} else {
						_, err = c.Put(ctx, "c", id, value(fmt.Sprintf(`{"owner":%q,"i":%d}`, owner, i)))
					}
					if err == nil || attempt == 20 {
						break
					}
				}
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				if rng.IntN(4) == 0 {
					for range rng.IntN(4) {
						if i < 100 || i >= 140 {
							all.poll(ctx, 5*time.Millisecond)
						}
						mine.poll(ctx, 5*time.Millisecond)
					}
				}
			}
			close(stop)
			<-cutterDone
			s, err := c.Snapshot(ctx, "c", nil)
			if err != nil {
				t.Fatal(err)
			}
			all.until(ctx, protocol.Head{Epoch: s.Epoch, Version: s.Version})
			equalRecords(t, "whole view", all.v.Records(), s.Records)
			mine.until(ctx, protocol.Head{Epoch: s.Epoch, Version: s.Version})
			ms, err := c.Snapshot(ctx, "c", map[string]string{"owner": "a"})
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, "filtered view", mine.v.Records(), ms.Records)
			if all.kinds[vsclient.CatchUp] == 0 || all.kinds[vsclient.Reset] < 2 || mine.kinds[vsclient.Reset] < 2 {
				t.Errorf("whole view %v, filtered view %v: want a catch-up and two resets, and two resets", all.kinds, mine.kinds)
			}
			if p.opened.Load() < 3 {
				t.Errorf("only %d connections: the cuts did not make the views reconnect", p.opened.Load())
			}
			t.Logf("%d connections; whole view %v; filtered view %v", p.opened.Load(), all.kinds, mine.kinds)
		})
	}
}
