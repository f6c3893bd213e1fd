package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/ws"
)

func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// waitFor bounds every wait of the tests; reaching it means a test hangs.
const waitFor = 30 * time.Second

// config sets up an env.
type config struct {
	ws  ws.Options
	hub []viewsync.Option
	// sendBuffer, when positive, shrinks the socket send buffer of every
	// connection the server accepts, so that a client that does not read
	// blocks the server's writes after a few KiB.
	sendBuffer int
}

// env is a real server: a hub over a bbolt store, the WebSocket handler
// mounted at /v1/ws of an httptest.Server.
type env struct {
	t     *testing.T
	store *boltstore.Store
	hub   *viewsync.Hub
	h     *ws.Handler
	srv   *httptest.Server
}

func newEnv(t *testing.T, cfg *config) *env {
	t.Helper()
	if cfg == nil {
		cfg = &config{}
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := viewsync.New(st, cfg.hub...)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	h, err := ws.New(hub, &cfg.ws)
	if err != nil {
		hub.Close()
		st.Close()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", h)
	srv := httptest.NewUnstartedServer(mux)
	if cfg.sendBuffer > 0 {
		srv.Listener = &smallSendBuffers{Listener: srv.Listener, size: cfg.sendBuffer}
	}
	srv.Start()
	e := &env{t: t, store: st, hub: hub, h: h, srv: srv}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
		hub.Close()
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return e
}

// smallSendBuffers shrinks the send buffer of accepted connections.
type smallSendBuffers struct {
	net.Listener
	size int
}

func (l *smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			err = tc.SetWriteBuffer(l.size)
		}
	}
	return c, err
}

func (e *env) url() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/ws" }

// client is a test's WebSocket client, failing the test when a step it
// takes fails; every read and write is bounded by waitFor.
type client struct {
	*wstest.Client
	t *testing.T
}

// dial connects with the viewsync.v1 subprotocol.
func (e *env) dial() *client {
	e.t.Helper()
	return e.dialWith(&wstest.Options{Subprotocols: []string{protocol.WSSubprotocol}})
}

// dialWith connects as o says, failing the test if it cannot.
func (e *env) dialWith(o *wstest.Options) *client {
	e.t.Helper()
	c, resp, err := e.tryDial(o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial: %v (status %d)", err, status)
	}
	return c
}

// tryDial connects; when the server refuses the upgrade, it returns its
// answer too, the body read whole.
func (e *env) tryDial(o *wstest.Options) (*client, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := wstest.Dial(ctx, e.url(), o)
	if err != nil {
		return nil, resp, err
	}
	e.t.Cleanup(func() { c.CloseNow() })
	return &client{Client: c, t: e.t}, nil, nil
}

// write writes one message (or control frame) of the given type.
func (c *client) write(op gws.OpCode, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return c.WriteMessage(ctx, op, payload)
}

// sendRaw writes one message of the given type.
func (c *client) sendRaw(op gws.OpCode, b []byte) {
	c.t.Helper()
	if err := c.write(op, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes one client message.
func (c *client) send(m protocol.ClientMessage) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(gws.OpText, b)
}

// sendText writes one text message as is.
func (c *client) sendText(s string) {
	c.t.Helper()
	c.sendRaw(gws.OpText, []byte(s))
}

// read returns the next server message, or the read error.
func (c *client) read() (protocol.ServerMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	op, b, err := c.ReadMessage(ctx)
	if err != nil {
		return protocol.ServerMessage{}, err
	}
	if op != gws.OpText {
		return protocol.ServerMessage{}, fmt.Errorf("server sent a %v message", op)
	}
	return protocol.DecodeServerMessage(b)
}

// next returns the next server message.
func (c *client) next() protocol.ServerMessage {
	c.t.Helper()
	m, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// expect reads the next message and checks its type.
func (c *client) expect(typ string) protocol.ServerMessage {
	c.t.Helper()
	m := c.next()
	if m.Type != typ {
		c.t.Fatalf("got a %q message (%+v), want %q", m.Type, m, typ)
	}
	return m
}

// stringID returns the string id id, or no id for "".
func stringID(id string) protocol.MessageID {
	if id == "" {
		return protocol.MessageID{}
	}
	return protocol.StringID(id)
}

// expectError reads the next message and checks it is an error with the
// string id id ("": none) and code.
func (c *client) expectError(id string, code protocol.Code) protocol.ServerMessage {
	c.t.Helper()
	m := c.expect(protocol.TypeError)
	if m.ID != stringID(id) || m.Code != code || m.Message == "" {
		c.t.Fatalf("got error %+v, want id %q, code %q and a message", m, id, code)
	}
	return m
}

// expectResult reads the next message and checks it is a result with the
// string id id.
func (c *client) expectResult(id string) protocol.ServerMessage {
	c.t.Helper()
	m := c.expect(protocol.TypeResult)
	if m.ID != protocol.StringID(id) {
		c.t.Fatalf("got result %+v, want id %q", m, id)
	}
	return m
}

// expectClosed reads until the connection ends and checks the close
// status (wstest.Cut: ended without a close frame).
func (c *client) expectClosed(code gws.StatusCode) error {
	c.t.Helper()
	for {
		_, err := c.read()
		if err == nil {
			continue
		}
		if errors.Is(err, protocol.ErrBadMessage) {
			c.t.Fatalf("read: %v", err)
		}
		if got := wstest.CloseStatus(err); got != code {
			c.t.Fatalf("connection ended with %v (status %d), want status %d", err, got, code)
		}
		return err
	}
}

// subscribe sends a subscribe message.
func (c *client) subscribe(collection string, after *uint64, epoch string) {
	c.t.Helper()
	c.send(&protocol.SubscribeMessage{Collection: collection, After: after, Epoch: epoch})
}

func u64(v uint64) *uint64 { return &v }

// view is a client's copy of one collection, built from the messages it
// receives; apply checks the stream's guarantees as it goes.
type view struct {
	name    string
	epoch   string
	version uint64
	records map[string]protocol.Record
	// commits, catchUps and resets count the messages applied.
	commits, catchUps, resets int
}

func newView(name string) *view {
	return &view{name: name, records: map[string]protocol.Record{}}
}

// apply applies one message for the view's collection: a reset replaces
// it; a commit must be the next version of the same epoch; a catch-up
// must move forward in the same epoch.
func (v *view) apply(t *testing.T, m protocol.ServerMessage) {
	t.Helper()
	if m.Collection != v.name {
		t.Fatalf("view of %q got a message for %q: %+v", v.name, m.Collection, m)
	}
	switch m.Type {
	case protocol.TypeReset:
		if !m.Reset {
			t.Fatalf("reset without reset:true: %+v", m)
		}
		v.epoch, v.version = m.Epoch, m.Version
		v.records = map[string]protocol.Record{}
		for _, r := range m.Records {
			v.records[r.ID] = r
		}
		v.resets++
	case protocol.TypeCommit:
		if v.epoch == "" || m.Epoch != v.epoch || m.Version != v.version+1 {
			t.Fatalf("commit %s:%d does not follow %s:%d", m.Epoch, m.Version, v.epoch, v.version)
		}
		if m.At.IsZero() || len(m.Ops) == 0 {
			t.Fatalf("commit without time or ops: %+v", m)
		}
		for _, op := range m.Ops {
			switch op.Op {
			case protocol.OpPut:
				v.records[op.ID] = protocol.Record{ID: op.ID, Value: op.Value, Version: m.Version}
			case protocol.OpDelete:
				delete(v.records, op.ID)
			default:
				t.Fatalf("unknown op %+v", op)
			}
		}
		v.version = m.Version
		v.commits++
	case protocol.TypeCatchUp:
		if !m.Compacted || m.Epoch != v.epoch || m.Version <= v.version {
			t.Fatalf("catch-up %s:%d (compacted %v) does not move %s:%d forward", m.Epoch, m.Version, m.Compacted, v.epoch, v.version)
		}
		for _, r := range m.Records {
			if r.Version <= v.version || r.Version > m.Version {
				t.Fatalf("catch-up to %d carries record %q at version %d, outside (%d, %d]", m.Version, r.ID, r.Version, v.version, m.Version)
			}
			v.records[r.ID] = r
		}
		for _, id := range m.Deleted {
			delete(v.records, id)
		}
		v.version = m.Version
		v.catchUps++
	default:
		t.Fatalf("view got a %q message: %+v", m.Type, m)
	}
}

// checkEqual checks that the view is the collection's snapshot.
func (v *view) checkEqual(t *testing.T, hub *viewsync.Hub) {
	t.Helper()
	col, err := hub.Collection(v.name)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := col.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]protocol.Record{}
	for _, r := range snap.Records {
		want[r.ID] = r
	}
	if v.epoch != snap.Epoch || v.version != snap.Version {
		t.Fatalf("view at %s:%d, snapshot at %s:%d", v.epoch, v.version, snap.Epoch, snap.Version)
	}
	if !maps.EqualFunc(v.records, want, func(a, b protocol.Record) bool {
		return a.ID == b.ID && a.Version == b.Version && string(a.Value) == string(b.Value)
	}) {
		t.Fatalf("view differs from the snapshot:\nview     %v\nsnapshot %v", v.records, want)
	}
}

// collection returns a hub collection or fails the test.
func (e *env) collection(name string) *viewsync.Collection {
	e.t.Helper()
	c, err := e.hub.Collection(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// put writes one record through the hub and returns the commit's version.
func (e *env) put(collection, id, value string) uint64 {
	e.t.Helper()
	r, err := e.collection(collection).Put(context.Background(), id, json.RawMessage(value))
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Version
}

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
