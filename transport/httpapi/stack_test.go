package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

// nested returns v inside n arrays.
func nested(n int, v string) string {
	return strings.Repeat("[", n) + v + strings.Repeat("]", n)
}

// stack is the whole API as the binary mounts it (records, changes, calls,
// the event streams and WebSockets) over a hub on st, with a call "store"
// that writes its arg as record "fromcall" of collection c.
type stack struct {
	*testServer
	srv *httptest.Server
	ws  *ws.Handler
	// sockets are the WebSockets dialed, closed first by close.
	sockets []*wstest.Client
}

func newStack(t *testing.T, st *boltstore.Store) *stack {
	t.Helper()
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	err = hub.HandleCall("store", func(ctx context.Context, call *viewsync.Call) (any, error) {
		c, err := call.Collection("c")
		if err != nil {
			return nil, err
		}
		return c.Put(ctx, "fromcall", call.Arg)
	})
	if err != nil {
		t.Fatal(err)
	}
	events, err := sse.New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	sockets, err := ws.New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(hub, &httpapi.Options{Events: events, WebSocket: sockets})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tr := &http.Transport{}
	s := &stack{
		testServer: &testServer{t: t, URL: srv.URL, Hub: hub, Store: st, client: &http.Client{Transport: tr}},
		srv:        srv,
		ws:         sockets,
	}
	t.Cleanup(s.close)
	return s
}

// in returns s for subtest t: its helpers fail t.
func (s *stack) in(t *testing.T) *stack {
	ts := *s.testServer
	ts.t = t
	c := *s
	c.testServer = &ts
	return &c
}

// close stops the server and its hub; the store stays open.
func (s *stack) close() {
	for _, c := range s.sockets {
		c.CloseNow()
	}
	s.sockets = nil
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s.Hub.Close()
	if err := s.ws.Shutdown(ctx); err != nil {
		s.t.Errorf("ws shutdown: %v", err)
	}
	s.client.Transport.(*http.Transport).CloseIdleConnections()
	s.srv.Close()
}

// firstEvent opens the event stream of collection c at query q and
// returns its first event's name and data.
func (s *stack) firstEvent(c, q string) (name, data string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/collections/"+c+"/events?"+q, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("events?%s: status %d", q, resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("events?%s: the stream ended before an event: %v", q, err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && name != "":
			return name, data
		}
	}
}

// dial opens a WebSocket.
func (s *stack) dial() *wstest.Client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), waitTimeout)
	defer cancel()
	c, _, err := wstest.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws", &wstest.Options{Subprotocols: []string{protocol.WSSubprotocol}})
	if err != nil {
		s.t.Fatal(err)
	}
	s.sockets = append(s.sockets, c)
	return c
}

// exchange sends a WebSocket message and returns the answer.
func (s *stack) exchange(c *wstest.Client, msg string) protocol.ServerMessage {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), waitTimeout)
	defer cancel()
	if err := c.WriteMessage(ctx, gws.OpText, []byte(msg)); err != nil {
		s.t.Fatalf("send: %v", err)
	}
	_, b, err := c.ReadMessage(ctx)
	if err != nil {
		s.t.Fatalf("answer to %.60s…: %v", msg, err)
	}
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		s.t.Fatalf("answer %.80s: %v", b, err)
	}
	return m
}

// wantReadable checks that every reader of collection c answers: the
// changes after 0 hold n commits, SSE and WebSocket resumes from 0 start
// with commit 1, and a snapshot and a subscription without a cursor
// answer. It returns the changes' body.
func (s *stack) wantReadable(c string, n int) []byte {
	s.t.Helper()
	r := s.get("/v1/collections/" + c + "/changes?after=0")
	var ch protocol.Changes
	if err := json.Unmarshal(r.Body, &ch); r.Status != http.StatusOK || err != nil || len(ch.Commits) != n {
		s.t.Fatalf("changes: status %d, %d commits (%v), want 200 with %d", r.Status, len(ch.Commits), err, n)
	}
	if r := s.get("/v1/collections/" + c); r.Status != http.StatusOK {
		s.t.Fatalf("snapshot: status %d", r.Status)
	}
	if name, data := s.firstEvent(c, "after=0"); name != "commit" || !strings.HasPrefix(data, `{"version":1,`) {
		s.t.Fatalf("SSE resume: event %q %.40s, want commit 1", name, data)
	}
	if name, _ := s.firstEvent(c, ""); name != "reset" {
		s.t.Fatalf("SSE without a cursor: event %q, want reset", name)
	}
	ws := s.dial()
	if m := s.exchange(ws, `{"type":"subscribe","collection":"`+c+`","after":0}`); m.Type != protocol.TypeCommit || m.Version != 1 {
		s.t.Fatalf("WebSocket resume: %s %d (%s %s), want commit 1", m.Type, m.Version, m.Code, m.Message)
	}
	ws2 := s.dial()
	if m := s.exchange(ws2, `{"type":"subscribe","collection":"`+c+`"}`); m.Type != protocol.TypeReset {
		s.t.Fatalf("WebSocket subscribe: %s (%s %s), want reset", m.Type, m.Code, m.Message)
	}
	return r.Body
}

// openBolt opens a bbolt store at path, closed when the test ends unless
// it already is.
func openBolt(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// httpWrite returns a write through the HTTP API, giving its status and
// error.
func httpWrite(method, path, ct, body string) func(s *stack) (int, protocol.Code, string) {
	return func(s *stack) (int, protocol.Code, string) {
		r := s.do(method, path, []byte(body), "Content-Type", ct)
		var eb errorBody
		if err := json.Unmarshal(r.Body, &eb); err != nil || eb.Error == nil {
			return r.Status, "", string(r.Body)
		}
		return r.Status, protocol.Code(eb.Error.Code), eb.Error.Message
	}
}

// TestMalformedQuery: a query string that does not parse is refused with
// 400 on every endpoint, the streams and WebSockets included, and nothing
// is changed or streamed; read with url.URL.Query its bad pairs were
// dropped and the request served as if they had not been sent.
func TestMalformedQuery(t *testing.T) {
	s := newStack(t, openBolt(t, filepath.Join(t.TempDir(), "viewsync.db")))
	s.put("c", "a", `1`)
	for _, tt := range []struct{ method, path, ct, body string }{
		{"GET", "/v1/collections/c/changes?after=%zz", "", ""},
		{"GET", "/v1/collections/c/changes?after=0&wait=1s;x", "", ""},
		{"GET", "/v1/collections/c?x=%zz", "", ""},
		{"GET", "/v1/collections/c/version?%", "", ""},
		{"GET", "/v1/collections/c/records/a?x=%zz", "", ""},
		{"GET", "/v1/collections/c/events?after=%zz", "", ""},
		{"GET", "/v1/collections/c/events?after=0&epoch=%E", "", ""},
		{"GET", "/v1/ws?token=%zz", "", ""},
		{"PUT", "/v1/collections/c/records/a?x=%zz", "application/json", `2`},
		{"PATCH", "/v1/collections/c/records/a?x=%zz", "application/merge-patch+json", `{"n":2}`},
		{"DELETE", "/v1/collections/c/records/a?x=%zz", "", ""},
		{"POST", "/v1/collections/c/commits?x=%zz", "application/json", `{"ops":[{"op":"delete","id":"a"}]}`},
		{"POST", "/v1/calls/store?x=%zz", "application/json", `{"arg":3}`},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			s := s.in(t)
			before := s.state("c")
			var kv []string
			if tt.ct != "" {
				kv = []string{"Content-Type", tt.ct}
			}
			if strings.HasPrefix(tt.path, "/v1/ws") {
				kv = []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
					"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol", protocol.WSSubprotocol}
			}
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			r := s.doContext(ctx, tt.method, tt.path, body, kv...)
			wantError(t, r, http.StatusBadRequest, protocol.CodeBadRequest)
			if !strings.Contains(string(r.Body), "invalid") {
				t.Errorf("the error does not say what is wrong: %s", r.Body)
			}
			if after := s.state("c"); !equalState(before, after) {
				t.Fatalf("the store changed: before %+v, after %+v", before, after)
			}
		})
	}
}
