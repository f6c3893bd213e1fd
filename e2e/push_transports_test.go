package e2e

// The push transports as their clients see them, for the tests every
// transport must pass alike (push_test.go, the soak, the access tests):
// Server-Sent Events, the NDJSON stream and WebSocket behind one small
// interface, each event checked against its transport's own rules (an SSE
// event's id is the cursor after it) and turned into a pushEvent.
//
// Not client/vsclient, which the tests of the guarantees cannot see
// through: its View hands out no repeated commit and reconnects at a gap
// by design, turns the server's last word into a reconnect, and keeps no
// wire detail (an event's id, reset and compacted, a close status). The
// tests' writers and plain reads use it where it fits (the soak's writers,
// TestAccessFlood's good client).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/ndjson"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

// pushTransport is one push transport, as its clients use it.
type pushTransport interface {
	// String names the transport: "sse", "ndjson" or "ws".
	String() string
	// open follows the collections of fs from their cursors over one
	// connection to the server at base, bounded by ctx; prep puts the
	// token where the client sends it (nil: none). A refused request
	// returns the server's answer and no connection.
	open(ctx context.Context, client *http.Client, base string, prep func(*http.Request), fs ...pushFollow) (pushConn, reply, error)
	// multiplexes reports whether one connection follows several
	// collections.
	multiplexes() bool
}

// pushTransports are the transports every push test runs over.
var pushTransports = []pushTransport{sseTransport{}, ndjsonTransport{}, wsTransport{}}

// httpStreams are the transports of one collection per HTTP request.
var httpStreams = []pushTransport{sseTransport{}, ndjsonTransport{}}

// forEachTransport runs f as a subtest for every transport of trs.
func forEachTransport(t *testing.T, trs []pushTransport, f func(t *testing.T, tr pushTransport)) {
	for _, tr := range trs {
		t.Run(tr.String(), func(t *testing.T) { f(t, tr) })
	}
}

// pushFollow is a collection to follow, from cur (nil: from a reset),
// or its filtered view by where (a filter's JSON; empty: the whole
// collection).
type pushFollow struct {
	coll  string
	cur   *protocol.Cursor
	where string
}

// pushConn is one open connection.
type pushConn interface {
	// next returns the next event, pings skipped. An end event is the
	// server's word that it ends the stream; io.EOF is the end of a
	// stream without one (or a connection cut).
	next() (pushEvent, error)
	close()
}

// Kinds of pushEvent.
const (
	evReset   = "reset"
	evCatchUp = "catchup"
	evCommit  = "commit"
	// evProgress: a filtered view's cursor moved past commits that did
	// not concern it.
	evProgress = "progress"
	// evEnd: the server ends the stream and says why (code).
	evEnd = "end"
	// evError: an error message that leaves the connection open (a
	// WebSocket's refused subscribe).
	evError = "error"
)

// pushEvent is what a transport delivered.
type pushEvent struct {
	kind string
	// coll, epoch and version: the collection and the cursor after the
	// event (a reset, catch-up or commit).
	coll    string
	epoch   string
	version uint64
	records []protocol.Record
	deleted []string
	ops     []protocol.Op
	// after is a filtered view's commit's After.
	after *uint64
	// code and message: an end's or error's; status, a WebSocket end's
	// close status.
	code    protocol.Code
	message string
	status  gws.StatusCode
}

func (ev pushEvent) String() string {
	if ev.kind == evEnd || ev.kind == evError {
		return fmt.Sprintf("%s %s: %s", ev.kind, ev.code, ev.message)
	}
	return fmt.Sprintf("%s of %s at %s:%d", ev.kind, ev.coll, ev.epoch, ev.version)
}

// cursor returns the position after ev.
func (ev pushEvent) cursor() protocol.Cursor {
	return protocol.Cursor{Epoch: ev.epoch, Version: ev.version}
}

// withBearer sends token in the Authorization header.
func withBearer(token string) func(*http.Request) {
	return func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+token) }
}

// withQueryToken sends token as the token query parameter.
func withQueryToken(token string) func(*http.Request) {
	return func(req *http.Request) { attach(req, inQuery, token, false, "") }
}

// streamURL is the URL of the one-collection stream at path (events or
// stream) of f, its cursor in the query.
func streamURL(base, path string, f pushFollow) string {
	u := base + "/v1/collections/" + f.coll + "/" + path
	q := url.Values{}
	if f.cur != nil {
		q.Set("after", strconv.FormatUint(f.cur.Version, 10))
		q.Set("epoch", f.cur.Epoch)
	}
	if f.where != "" {
		q.Set("where", f.where)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// getStream GETs url and returns the response of a stream of contentType,
// or the whole answer of a refusal.
func getStream(ctx context.Context, client *http.Client, url, contentType string, prep func(*http.Request)) (*http.Response, reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, reply{}, err
	}
	if prep != nil {
		prep(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, reply{}, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return nil, reply{status: resp.StatusCode, header: resp.Header, body: b}, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentType {
		resp.Body.Close()
		return nil, reply{}, fmt.Errorf("a stream of Content-Type %q, want %q", ct, contentType)
	}
	return resp, reply{status: http.StatusOK, header: resp.Header}, nil
}

// sseTransport is Server-Sent Events: GET /v1/collections/{c}/events.
type sseTransport struct{}

func (sseTransport) String() string    { return "sse" }
func (sseTransport) multiplexes() bool { return false }

func (sseTransport) open(ctx context.Context, client *http.Client, base string, prep func(*http.Request), fs ...pushFollow) (pushConn, reply, error) {
	if len(fs) != 1 {
		return nil, reply{}, errors.New("an event stream follows one collection")
	}
	// The cursor travels as a resuming EventSource sends it.
	f := pushFollow{coll: fs[0].coll, where: fs[0].where}
	s, r, err := openSSE(ctx, client, streamURL(base, "events", f), func(req *http.Request) {
		if fs[0].cur != nil {
			req.Header.Set("Last-Event-ID", fs[0].cur.String())
		}
		if prep != nil {
			prep(req)
		}
	})
	if s == nil {
		return nil, r, err
	}
	return &sseConn{s: s, coll: f.coll}, r, nil
}

type sseConn struct {
	s    *sseStream
	coll string
}

func (c *sseConn) next() (pushEvent, error) {
	m, err := c.s.next()
	if err != nil {
		return pushEvent{}, err
	}
	ev := pushEvent{kind: m.event, coll: c.coll}
	switch m.event {
	case "error":
		var body protocol.ErrorBody
		if err := json.Unmarshal([]byte(m.data), &body); err != nil || body.Error == nil {
			return ev, fmt.Errorf("error event %q: %v", m.data, err)
		}
		if m.id != "" {
			return ev, fmt.Errorf("the error event has id %q; it must not move the cursor", m.id)
		}
		return pushEvent{kind: evEnd, coll: c.coll, code: body.Error.Code, message: body.Error.Message}, nil
	case "reset":
		var s protocol.Snapshot
		if err := json.Unmarshal([]byte(m.data), &s); err != nil || !s.Reset || s.Records == nil {
			return ev, fmt.Errorf("reset %s: %v in %.200s", m.id, err, m.data)
		}
		ev.epoch, ev.version, ev.records = s.Epoch, s.Version, s.Records
	case "catchup":
		var cu protocol.CatchUp
		if err := json.Unmarshal([]byte(m.data), &cu); err != nil || !cu.Compacted {
			return ev, fmt.Errorf("catch-up %s: %v in %.200s", m.id, err, m.data)
		}
		ev.epoch, ev.version, ev.records, ev.deleted = cu.Epoch, cu.Version, cu.Records, cu.Deleted
	case "commit":
		var cm protocol.Commit
		if err := json.Unmarshal([]byte(m.data), &cm); err != nil {
			return ev, fmt.Errorf("commit %s: %v in %.200s", m.id, err, m.data)
		}
		id, err := protocol.ParseCursor(m.id)
		if err != nil {
			return ev, fmt.Errorf("commit with id %q: %w", m.id, err)
		}
		ev.epoch, ev.version, ev.ops, ev.after = id.Epoch, cm.Version, cm.Ops, cm.After
	case "progress":
		var p struct {
			Epoch   string `json:"epoch"`
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal([]byte(m.data), &p); err != nil {
			return ev, fmt.Errorf("progress %s: %v in %.200s", m.id, err, m.data)
		}
		ev.epoch, ev.version = p.Epoch, p.Version
	default:
		return ev, fmt.Errorf("unknown event %q", m.event)
	}
	// Every event's id is the cursor after it.
	if m.id != ev.cursor().String() {
		return ev, fmt.Errorf("%s event with id %q is at %s", m.event, m.id, ev.cursor())
	}
	return ev, nil
}

func (c *sseConn) close() { c.s.close() }

// ndjsonTransport is the stream of newline-delimited JSON: GET
// /v1/collections/{c}/stream.
type ndjsonTransport struct{}

func (ndjsonTransport) String() string    { return "ndjson" }
func (ndjsonTransport) multiplexes() bool { return false }

func (ndjsonTransport) open(ctx context.Context, client *http.Client, base string, prep func(*http.Request), fs ...pushFollow) (pushConn, reply, error) {
	if len(fs) != 1 {
		return nil, reply{}, errors.New("a stream follows one collection")
	}
	ctx, cancel := context.WithCancel(ctx)
	resp, r, err := getStream(ctx, client, streamURL(base, "stream", fs[0]), ndjson.ContentType, prep)
	if resp == nil {
		cancel()
		return nil, r, err
	}
	return &lineConn{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}, r, nil
}

type lineConn struct {
	resp   *http.Response
	br     *bufio.Reader
	cancel context.CancelFunc
}

func (c *lineConn) next() (pushEvent, error) {
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return pushEvent{}, io.EOF
			}
			return pushEvent{}, fmt.Errorf("reading the stream: %w (partial line %q)", err, line)
		}
		if line == `{"type":"ping"}`+"\n" {
			continue
		}
		m, err := protocol.DecodeServerMessage([]byte(line))
		if err != nil {
			return pushEvent{}, fmt.Errorf("line %.200q: %w", line, err)
		}
		if m.Type == protocol.TypeError {
			return pushEvent{kind: evEnd, code: m.Code, message: m.Message}, nil
		}
		return messageEvent(m, []byte(line))
	}
}

func (c *lineConn) close() {
	c.cancel()
	c.resp.Body.Close()
}

// messageEvent turns a WebSocket server message (an NDJSON line) of a
// collection into its event.
func messageEvent(m protocol.ServerMessage, b []byte) (pushEvent, error) {
	ev := pushEvent{kind: m.Type, coll: m.Collection, epoch: m.Epoch, version: m.Version, records: m.Records, deleted: m.Deleted, ops: m.Ops, after: m.After}
	switch m.Type {
	case protocol.TypeProgress:
	case protocol.TypeReset:
		if !m.Reset || m.Records == nil {
			return ev, fmt.Errorf("reset without reset or records: %.200s", b)
		}
	case protocol.TypeCatchUp:
		if !m.Compacted {
			return ev, fmt.Errorf("catch-up without compacted: %.200s", b)
		}
	case protocol.TypeCommit:
	default:
		return ev, fmt.Errorf("unexpected %s message: %.200s", m.Type, b)
	}
	return ev, nil
}

// wsTransport is WebSocket: GET /v1/ws, a subscribe per collection.
type wsTransport struct{}

func (wsTransport) String() string    { return "ws" }
func (wsTransport) multiplexes() bool { return true }

func (wsTransport) open(ctx context.Context, client *http.Client, base string, prep func(*http.Request), fs ...pushFollow) (pushConn, reply, error) {
	req, err := http.NewRequest(http.MethodGet, wsURL(base), nil)
	if err != nil {
		return nil, reply{}, err
	}
	if prep != nil {
		prep(req)
	}
	c, resp, err := wstest.Dial(ctx, req.URL.String(), &wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
		Header:       req.Header,
		NetDial:      wstest.NetDialOf(client),
		ReadLimit:    64 << 20,
	})
	if err != nil {
		var r reply
		if resp != nil {
			r = reply{status: resp.StatusCode, header: resp.Header}
			r.body, _ = io.ReadAll(resp.Body)
		}
		return nil, r, err
	}
	for _, f := range fs {
		m := &protocol.SubscribeMessage{Collection: f.coll}
		if f.where != "" {
			m.Where = json.RawMessage(f.where)
		}
		if f.cur != nil {
			v := f.cur.Version
			m.After, m.Epoch = &v, f.cur.Epoch
		}
		if err := wsSend(ctx, c, m); err != nil {
			c.CloseNow()
			return nil, reply{}, fmt.Errorf("subscribe: %w", err)
		}
	}
	return &wsConn{ctx: ctx, c: c}, reply{status: http.StatusSwitchingProtocols}, nil
}

type wsConn struct {
	// ctx bounds the connection, as open's did.
	ctx context.Context
	c   *wstest.Client
}

func (c *wsConn) next() (pushEvent, error) {
	op, b, err := c.c.ReadMessage(c.ctx)
	if err != nil {
		var ce *wstest.CloseError
		if !errors.As(err, &ce) {
			if c.ctx.Err() == nil && wstest.CloseStatus(err) == wstest.Cut {
				return pushEvent{}, io.EOF
			}
			return pushEvent{}, err
		}
		// The close status is the server's word.
		code := protocol.Code(strconv.Itoa(int(ce.Code)))
		switch ce.Code {
		case ws.StatusTokenExpired:
			code = protocol.CodeUnauthorized
		case gws.StatusGoingAway, 1013:
			code = protocol.CodeUnavailable
		}
		return pushEvent{kind: evEnd, code: code, message: ce.Reason, status: ce.Code}, nil
	}
	if op != gws.OpText {
		return pushEvent{}, fmt.Errorf("server sent a message of opcode %d", op)
	}
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		return pushEvent{}, fmt.Errorf("%w: %.200s", err, b)
	}
	if m.Type == protocol.TypeError {
		return pushEvent{kind: evError, code: m.Code, message: m.Message}, nil
	}
	return messageEvent(m, b)
}

func (c *wsConn) close() { c.c.CloseNow() }

// pushConfig configures a push server. The zero value means defaults.
type pushConfig struct {
	store  store.Config
	fanout fanout.Options
	// stall is every transport's write timeout (--stall-timeout).
	stall time.Duration
	// sendBuffer, when set, bounds the server side of every connection's
	// socket send buffer, so that a client that does not read blocks the
	// server's writes soon.
	sendBuffer int
	// durable makes the store fsync every commit.
	durable bool
	policy  *auth.Policy
}

// pushServer is a real server with every push transport mounted by the
// HTTP API, over a hub on a bbolt store.
type pushServer struct {
	base string
	hub  *viewsync.Hub
	// conns counts each transport's connections, by its name.
	conns map[string]func() int
}

// startPushServer starts a push server; it is stopped, in the order a
// server stops, when the test ends.
func startPushServer(t *testing.T, cfg pushConfig) *pushServer {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{Config: cfg.store, NoSync: !cfg.durable})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	hub, err := viewsync.New(st, viewsync.WithFanout(cfg.fanout))
	if err != nil {
		st.Close()
		t.Fatalf("hub: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			hub.Close()
			st.Close()
			t.Fatal(err)
		}
	}
	events, err := sse.New(hub, &sse.Options{WriteTimeout: cfg.stall, Policy: cfg.policy})
	must(err)
	lines, err := ndjson.New(hub, &ndjson.Options{WriteTimeout: cfg.stall, Policy: cfg.policy})
	must(err)
	sockets, err := ws.New(hub, &ws.Options{WriteTimeout: cfg.stall, Policy: cfg.policy})
	must(err)
	api, err := httpapi.New(hub, &httpapi.Options{Events: events, Stream: lines, WebSocket: sockets, Policy: cfg.policy})
	must(err)
	srv := httptest.NewUnstartedServer(api)
	if n := cfg.sendBuffer; n > 0 {
		srv.Config.ConnState = func(c net.Conn, state http.ConnState) {
			if tc, ok := c.(*net.TCPConn); ok && state == http.StateNew {
				if err := tc.SetWriteBuffer(n); err != nil {
					t.Errorf("set send buffer: %v", err)
				}
			}
		}
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sockets.Shutdown(ctx); err != nil {
			t.Errorf("WebSocket shutdown: %v", err)
		}
		hub.Close()
		srv.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &pushServer{base: srv.URL, hub: hub, conns: map[string]func() int{
		"sse": events.Connections, "ndjson": lines.Connections, "ws": sockets.Connections,
	}}
}

// narrowClient is an HTTP client whose connections have a receive buffer
// of n bytes, so that a client that stops reading stops the server's
// writes soon.
func narrowClient(t *testing.T, n int) *http.Client {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetReadBuffer(n)
			}
			return c, err
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// isEnd reports whether err ends a stream as a server that ended it
// without a word does (and a cut connection).
func isEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(fmt.Sprint(err), "connection reset")
}
