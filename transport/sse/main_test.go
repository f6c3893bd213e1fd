package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/sse"
)

// TestMain fails the run if a test leaves a goroutine behind: every server,
// hub, store, stream and client a test starts must be stopped by it.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// waitTimeout bounds waits for something that must happen. It detects
// hangs; it is not a performance bound.
const waitTimeout = 20 * time.Second

// pattern is where the tests mount the handler, as a server would.
const pattern = "GET /v1/collections/{c}/events"

// config configures newEnv. Its zero value means the defaults.
type config struct {
	// SSE is passed to sse.New.
	SSE sse.Options
	// Store is the store's retention.
	Store store.Config
	// Fanout configures the hub's live delivery.
	Fanout fanout.Options
	// SendBuffer, when set, bounds the server side of every connection's
	// socket send buffer, so that a client that does not read blocks the
	// server's writes soon.
	SendBuffer int
	// Wrap, when set, wraps the store the hub uses.
	Wrap func(store.Store) store.Store
	// HTTP2 serves over TLS with HTTP/2.
	HTTP2 bool
	// TLS serves over TLS with HTTP/1.1.
	TLS bool
	// ReadTimeout is the server's http.Server.ReadTimeout.
	ReadTimeout time.Duration
}

// env is the SSE handler served by httptest over a hub on a real bbolt
// store in a temporary directory, with one collection to play with.
type env struct {
	t    *testing.T
	mux  *http.ServeMux
	srv  *httptest.Server
	hub  *viewsync.Hub
	h    *sse.Handler
	coll *viewsync.Collection
}

// newEnv starts a server. When the test ends it closes the hub (which ends
// every stream), then the server, then the store.
func newEnv(t *testing.T, cfg config) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{Config: cfg.Store, NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	var s store.Store = st
	if cfg.Wrap != nil {
		s = cfg.Wrap(st)
	}
	hub, err := viewsync.New(s, viewsync.WithFanout(cfg.Fanout))
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	h, err := sse.New(hub, &cfg.SSE)
	if err != nil {
		t.Fatalf("sse.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(pattern, h)
	srv := httptest.NewUnstartedServer(mux)
	if n := cfg.SendBuffer; n > 0 {
		srv.Config.ConnState = func(c net.Conn, state http.ConnState) {
			if tc, ok := c.(*net.TCPConn); ok && state == http.StateNew {
				if err := tc.SetWriteBuffer(n); err != nil {
					t.Errorf("set send buffer: %v", err)
				}
			}
		}
	}
	srv.Config.ReadTimeout = cfg.ReadTimeout
	if cfg.HTTP2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else if cfg.TLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	t.Cleanup(func() { hub.Close() })
	coll, err := hub.Collection("items")
	if err != nil {
		t.Fatalf("collection: %v", err)
	}
	return &env{t: t, mux: mux, srv: srv, hub: hub, h: h, coll: coll}
}

// url returns the events URL of collection c, or the path c when it
// starts with a slash, with the query q.
func (e *env) url(c, q string) string {
	u := e.srv.URL + "/v1/collections/" + c + "/events"
	if strings.HasPrefix(c, "/") {
		u = e.srv.URL + c // a whole path
	}
	if q != "" {
		u += "?" + q
	}
	return u
}

// get sends a GET to the events URL of c and returns the response, whose
// body the caller must close.
func (e *env) get(c, q string, hdr http.Header) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url(c, q), nil)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	maps.Copy(req.Header, hdr)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	// The request's context must outlive the stream; only the wait for
	// the headers is bounded.
	req = req.WithContext(context.WithoutCancel(ctx))
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			e.t.Fatalf("GET %s: %v", req.URL, r.err)
		}
		return r.resp
	case <-ctx.Done():
		e.t.Fatalf("GET %s: no response headers within %s", req.URL, waitTimeout)
		return nil
	}
}

// put writes record id with a small JSON value and returns its version.
func (e *env) put(id string, n int) uint64 {
	e.t.Helper()
	rec, err := e.coll.Put(context.Background(), id, json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)))
	if err != nil {
		e.t.Fatalf("put %s: %v", id, err)
	}
	return rec.Version
}

// head returns the collection's head.
func (e *env) head() protocol.Head {
	e.t.Helper()
	hd, err := e.coll.Head(context.Background())
	if err != nil {
		e.t.Fatalf("head: %v", err)
	}
	return hd
}

// snapshot returns the collection's records as id → JSON value.
func (e *env) snapshot() (protocol.Snapshot, map[string]string) {
	e.t.Helper()
	s, err := e.coll.Snapshot(context.Background())
	if err != nil {
		e.t.Fatalf("snapshot: %v", err)
	}
	m := make(map[string]string, len(s.Records))
	for _, r := range s.Records {
		m[r.ID] = string(r.Value)
	}
	return s, m
}

// waitConnections waits until the handler serves n streams.
func (e *env) waitConnections(n int) {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for e.h.Connections() != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("Connections() = %d, want %d", e.h.Connections(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// event is one item of an event stream: an event (ID, Event, Data, Retry)
// or a comment line (Comment).
type event struct {
	ID, Event, Data, Retry string
	// DataLines counts the event's data lines.
	DataLines int
	// Comment is set, alone, for a comment line such as ": ping".
	Comment string
	// IsComment tells a comment from an event.
	IsComment bool
}

// readEvents parses an event stream as a browser does (the server ends
// lines with LF; CRLF is accepted too) and hands each event, and each
// comment line, to emit until it returns false or reading fails. It
// returns the read error (io.EOF at a clean end).
func readEvents(r *bufio.Reader, emit func(event) bool) error {
	var ev event
	fields := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch {
		case line == "":
			if fields > 0 && !emit(ev) {
				return nil
			}
			ev, fields = event{}, 0
		case line[0] == ':':
			if !emit(event{Comment: strings.TrimPrefix(line[1:], " "), IsComment: true}) {
				return nil
			}
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "id":
				ev.ID = value
			case "event":
				ev.Event = value
			case "data":
				if ev.DataLines > 0 {
					ev.Data += "\n"
				}
				ev.Data += value
				ev.DataLines++
			case "retry":
				ev.Retry = value
			}
			fields++
		}
	}
}

// client reads one event stream in a goroutine of its own. In channel mode
// (newClient) it hands every item to Events; in follow mode (follow) it
// applies every event to a view as it arrives.
type client struct {
	t    *testing.T
	resp *http.Response
	// events receives every item in channel mode; it is closed at the end
	// of the stream.
	events chan event
	done   chan struct{}
	// err is the read error that ended the stream; read it after done.
	err error

	// Follow mode: view is the state built from the stream (guarded by
	// mu), version its version, progress signalled after each event.
	mu       sync.Mutex
	view     *view
	version  atomic.Uint64
	progress chan struct{}
}

// connect opens a stream on collection c and checks it is accepted.
func (e *env) connect(c, q string, hdr http.Header) *http.Response {
	e.t.Helper()
	resp := e.get(c, q, hdr)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.t.Fatalf("GET events: status %d: %s", resp.StatusCode, b)
	}
	return resp
}

// newClient opens a stream in channel mode. The stream is closed when the
// test ends.
func (e *env) newClient(c, q string, hdr http.Header) *client {
	e.t.Helper()
	cl := &client{t: e.t, resp: e.connect(c, q, hdr), events: make(chan event, 1<<14), done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		defer close(cl.events)
		cl.err = readEvents(bufio.NewReader(cl.resp.Body), func(ev event) bool {
			cl.events <- ev
			return true
		})
	}()
	e.t.Cleanup(cl.close)
	return cl
}

// follow opens a stream in follow mode, its view (v, or an empty one when
// nil) checking every event's order. The stream is closed when the test
// ends.
func (e *env) follow(c, q string, hdr http.Header, v *view) *client {
	e.t.Helper()
	if v == nil {
		v = newView()
	}
	cl := &client{t: e.t, resp: e.connect(c, q, hdr), done: make(chan struct{}), view: v, progress: make(chan struct{}, 1)}
	cl.version.Store(v.version)
	go func() {
		defer close(cl.done)
		cl.err = readEvents(bufio.NewReader(cl.resp.Body), func(ev event) bool {
			cl.mu.Lock()
			err := cl.view.apply(ev)
			v := cl.view.version
			cl.mu.Unlock()
			if err != nil {
				cl.err = err
				return false
			}
			cl.version.Store(v)
			select {
			case cl.progress <- struct{}{}:
			default:
			}
			return true
		})
	}()
	e.t.Cleanup(cl.close)
	return cl
}

// close closes the stream and waits for its reader.
func (c *client) close() {
	c.resp.Body.Close()
	if c.events != nil {
		for range c.events {
		}
	}
	<-c.done
}

// next returns the next item, comment or event; it fails the test when
// none comes in time or the stream ended.
func (c *client) next() event {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatalf("stream ended: %v", c.err)
		}
		return ev
	case <-time.After(waitTimeout):
		c.t.Fatalf("no event within %s", waitTimeout)
		return event{}
	}
}

// nextEvent returns the next event, skipping comments and the retry hint.
func (c *client) nextEvent() event {
	c.t.Helper()
	for {
		ev := c.next()
		if !ev.IsComment && ev.Event != "" {
			return ev
		}
	}
}

// expectCommits reads the commit events of versions from..to, in order.
func (c *client) expectCommits(epoch string, from, to uint64) {
	c.t.Helper()
	for v := from; v <= to; v++ {
		ev := c.nextEvent()
		want := epoch + ":" + strconv.FormatUint(v, 10)
		if ev.Event != "commit" || ev.ID != want {
			c.t.Fatalf("got event %q id %q, want commit %s", ev.Event, ev.ID, want)
		}
		var cm protocol.Commit
		if err := json.Unmarshal([]byte(ev.Data), &cm); err != nil {
			c.t.Fatalf("commit %s: %v", want, err)
		}
		if cm.Version != v || ev.DataLines != 1 {
			c.t.Fatalf("commit %s: data version %d, %d data lines", want, cm.Version, ev.DataLines)
		}
	}
}

// expectEnd waits for the server to end the stream cleanly.
func (c *client) expectEnd() {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				if !errors.Is(c.err, io.EOF) {
					c.t.Fatalf("stream ended with %v, want a clean end (EOF)", c.err)
				}
				return
			}
		case <-deadline:
			c.t.Fatalf("stream still open after %s", waitTimeout)
		}
	}
}

// waitVersion waits, in follow mode, until the view reaches version v.
func (c *client) waitVersion(v uint64) {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for c.version.Load() < v {
		select {
		case <-c.progress:
		case <-c.done:
			if c.version.Load() < v {
				c.t.Fatalf("stream ended at version %d before %d: %v", c.version.Load(), v, c.err)
			}
		case <-deadline:
			c.t.Fatalf("view at version %d, want %d within %s", c.version.Load(), v, waitTimeout)
		}
	}
}

// waitStarted waits, in follow mode, until the view has its first reset
// or catch-up.
func (c *client) waitStarted() {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for !c.state().started {
		select {
		case <-c.progress:
		case <-c.done:
			c.t.Fatalf("stream ended before its first event: %v", c.err)
		case <-deadline:
			c.t.Fatalf("no first event within %s", waitTimeout)
		}
	}
}

// state returns a copy of the follow-mode view.
func (c *client) state() view {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := *c.view
	v.records = maps.Clone(v.records)
	return v
}

// view is a client's state built from a stream's events: what a browser
// holds. apply checks the order guarantees as it goes.
type view struct {
	epoch   string
	version uint64
	// records maps id → compact JSON value.
	records map[string]string
	// started is set by the first reset or catch-up, or by a cursor.
	started bool
	// idsOnly skips decoding data: commits are followed by their ids.
	idsOnly bool

	commits, catchups, resets, pings int
}

func newView() *view { return &view{records: map[string]string{}} }

// at returns a view already at a cursor, as a resuming client is.
func at(epoch string, version uint64, records map[string]string) *view {
	return &view{epoch: epoch, version: version, records: maps.Clone(records), started: true}
}

// apply applies one stream item. Commits must follow the view's version
// exactly; a catch-up may not go back; ids must name the result.
func (v *view) apply(ev event) error {
	if ev.IsComment {
		if ev.Comment == "ping" {
			v.pings++
		}
		return nil
	}
	if ev.Event == "" {
		return nil // the retry hint
	}
	if ev.DataLines != 1 {
		return fmt.Errorf("%s event %s has %d data lines, want 1", ev.Event, ev.ID, ev.DataLines)
	}
	switch ev.Event {
	case "reset":
		var s protocol.Snapshot
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		if !s.Reset || s.Records == nil {
			return fmt.Errorf("reset %s: reset=%v records=%v", ev.ID, s.Reset, s.Records)
		}
		v.epoch, v.version, v.started = s.Epoch, s.Version, true
		clear(v.records)
		for _, r := range s.Records {
			v.records[r.ID] = string(r.Value)
		}
		v.resets++
	case "catchup":
		var cu protocol.CatchUp
		if err := json.Unmarshal([]byte(ev.Data), &cu); err != nil {
			return fmt.Errorf("catchup: %w", err)
		}
		if !v.started || cu.Epoch != v.epoch || cu.Version < v.version || !cu.Compacted || cu.Records == nil || cu.Deleted == nil {
			return fmt.Errorf("catch-up %s at %s:%d: %+v", ev.ID, v.epoch, v.version, cu)
		}
		for _, r := range cu.Records {
			v.records[r.ID] = string(r.Value)
		}
		for _, id := range cu.Deleted {
			delete(v.records, id)
		}
		v.version = cu.Version
		v.catchups++
	case "commit":
		epoch, ver, ok := strings.Cut(ev.ID, ":")
		n, err := strconv.ParseUint(ver, 10, 64)
		if !ok || err != nil || !v.started || epoch != v.epoch || n != v.version+1 {
			return fmt.Errorf("commit id %q after %s:%d: not the next commit", ev.ID, v.epoch, v.version)
		}
		if !v.idsOnly {
			var cm protocol.Commit
			if err := json.Unmarshal([]byte(ev.Data), &cm); err != nil {
				return fmt.Errorf("commit %s: %w", ev.ID, err)
			}
			if cm.Version != n {
				return fmt.Errorf("commit id %s carries version %d", ev.ID, cm.Version)
			}
			for _, op := range cm.Ops {
				if op.Op == protocol.OpDelete {
					delete(v.records, op.ID)
				} else {
					v.records[op.ID] = string(op.Value)
				}
			}
		}
		v.version = n
		v.commits++
	default:
		return fmt.Errorf("unknown event %q", ev.Event)
	}
	if want := v.epoch + ":" + strconv.FormatUint(v.version, 10); ev.ID != want {
		return fmt.Errorf("%s event has id %q, want %q", ev.Event, ev.ID, want)
	}
	return nil
}
