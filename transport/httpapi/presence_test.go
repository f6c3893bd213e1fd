package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/ndjson"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

// presenceServer is the API with its three push transports over a hub on
// bbolt, behind a policy reading the principal from the X-User header:
// "eve" may read only the records whose owner is "eve", anyone else
// everything.
type presenceServer struct {
	t   *testing.T
	hub *viewsync.Hub
	srv *httptest.Server
}

func newPresenceServer(t *testing.T, po presence.Options) *presenceServer {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := viewsync.New(st, viewsync.WithPresence(po))
	if err != nil {
		t.Fatal(err)
	}
	pol := &auth.Policy{Authenticate: func(r *http.Request) (auth.Principal, error) {
		u := r.Header.Get("X-User")
		if u == "" {
			u = r.URL.Query().Get("user")
		}
		if u == "" {
			return auth.Principal{}, fmt.Errorf("%w: no user", viewsync.ErrUnauthorized)
		}
		pr := auth.Principal{Subject: u, Rights: auth.All}
		if u == "eve" {
			pr.Rights = auth.Rights{ReadRows: []auth.RowRight{{Collection: "*", Where: filter.MustParse(`{"owner":"eve"}`)}}}
		}
		return pr, nil
	}}
	events, err := sse.New(hub, &sse.Options{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := ndjson.New(hub, &ndjson.Options{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	sockets, err := ws.New(hub, &ws.Options{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(hub, &httpapi.Options{Events: events, Stream: stream, WebSocket: sockets, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		hub.Close()
		sockets.Shutdown(context.Background())
		srv.Close()
		st.Close()
	})
	return &presenceServer{t: t, hub: hub, srv: srv}
}

// presenceClient is one client of one transport, present in collection
// "c" and following its presence.
type presenceClient interface {
	// next returns the next presence message.
	next() protocol.ServerMessage
	// set publishes the client's presence; state "" is a heartbeat,
	// "null" a leave. It returns the error code, "" for none.
	set(record, state string) protocol.Code
	close()
}

// streamClient reads an SSE or NDJSON stream with presence=1 and
// publishes over HTTP with the session the stream gave it.
type streamClient struct {
	s       *presenceServer
	user    string
	resp    *http.Response
	br      *bufio.Reader
	sse     bool
	session string
}

func (s *presenceServer) openStream(path, user string) *streamClient {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+"/v1/collections/c/"+path+"?presence=1", nil)
	req.Header.Set("X-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	c := &streamClient{s: s, user: user, resp: resp, br: bufio.NewReader(resp.Body), sse: path == "events"}
	m := c.next()
	if m.Event != "sync" || m.Session == "" || m.TTL <= 0 {
		s.t.Fatalf("first presence message: %+v", m)
	}
	c.session = m.Session
	return c
}

func (c *streamClient) next() protocol.ServerMessage {
	c.s.t.Helper()
	for {
		line, err := c.br.ReadBytes('\n')
		if err != nil {
			c.s.t.Fatalf("read: %v", err)
		}
		line = bytes.TrimSpace(line)
		if c.sse {
			if !bytes.Equal(line, []byte("event: presence")) {
				continue
			}
			data, err := c.br.ReadBytes('\n')
			if err != nil {
				c.s.t.Fatalf("read: %v", err)
			}
			line = bytes.TrimSpace(bytes.TrimPrefix(data, []byte("data: ")))
		} else if !bytes.Contains(line, []byte(`"type":"presence"`)) {
			continue
		}
		m, err := protocol.DecodeServerMessage(line)
		if err != nil || m.Type != protocol.TypePresence {
			c.s.t.Fatalf("presence message %s: %v", line, err)
		}
		return m
	}
}

func (c *streamClient) set(record, state string) protocol.Code {
	body := map[string]any{"session": c.session}
	if record != "" {
		body["record"] = record
	}
	if state != "" {
		body["state"] = json.RawMessage(state)
	}
	b, _ := json.Marshal(body)
	return c.s.request("PUT", "/v1/collections/c/presence", c.user, string(b))
}

func (c *streamClient) close() { c.resp.Body.Close() }

// request sends a request as user and returns the error code of its
// answer, "" for a 204.
func (s *presenceServer) request(method, path, user, body string) protocol.Code {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	req.Header.Set("X-User", user)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return ""
	}
	var e protocol.ErrorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code.Status() != resp.StatusCode {
		s.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return e.Error.Code
}

// wsClient subscribes to "c" with presence over a WebSocket and publishes
// with presence messages.
type wsClient struct {
	s  *presenceServer
	c  *wstest.Client
	id int
	// pending are presence messages read while waiting for a result.
	pending []protocol.ServerMessage
}

func (s *presenceServer) openWS(user string) *wsClient {
	s.t.Helper()
	url := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/ws"
	c, _, err := wstest.Dial(context.Background(), url, &wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
		Header:       http.Header{"X-User": {user}},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	w := &wsClient{s: s, c: c}
	w.send(`{"type":"subscribe","collection":"c","presence":true}`)
	if m := w.next(); m.Event != "sync" || m.Self == "" {
		s.t.Fatalf("first presence message: %+v", m)
	}
	return w
}

func (w *wsClient) send(msg string) {
	w.s.t.Helper()
	if err := w.c.WriteMessage(context.Background(), gws.OpText, []byte(msg)); err != nil {
		w.s.t.Fatal(err)
	}
}

func (w *wsClient) read() protocol.ServerMessage {
	w.s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, b, err := w.c.ReadMessage(ctx)
	if err != nil {
		w.s.t.Fatalf("read: %v", err)
	}
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		w.s.t.Fatalf("%s: %v", b, err)
	}
	return m
}

func (w *wsClient) next() protocol.ServerMessage {
	w.s.t.Helper()
	if len(w.pending) > 0 {
		m := w.pending[0]
		w.pending = w.pending[1:]
		return m
	}
	for {
		if m := w.read(); m.Type == protocol.TypePresence {
			return m
		}
	}
}

func (w *wsClient) set(record, state string) protocol.Code {
	w.s.t.Helper()
	w.id++
	msg := fmt.Sprintf(`{"type":"presence","id":%d,"collection":"c"`, w.id)
	if record != "" {
		r, _ := json.Marshal(record)
		msg += `,"record":` + string(r)
	}
	if state != "" {
		msg += `,"state":` + state
	}
	w.send(msg + "}")
	for {
		m := w.read()
		if m.Type == protocol.TypePresence {
			w.pending = append(w.pending, m)
		}
		if m.ID.String() != fmt.Sprint(w.id) {
			continue
		}
		if m.Type == protocol.TypeError {
			return m.Code
		}
		return ""
	}
}

func (w *wsClient) close() { w.c.CloseNow() }

// TestPresenceTransports: over each transport, a client present in a
// collection is seen by the others — joins, updates and leaves, its
// heartbeats unseen, its leave at once when its connection ends.
func TestPresenceTransports(t *testing.T) {
	open := map[string]func(s *presenceServer, user string) presenceClient{
		"sse":       func(s *presenceServer, user string) presenceClient { return s.openStream("events", user) },
		"ndjson":    func(s *presenceServer, user string) presenceClient { return s.openStream("stream", user) },
		"websocket": func(s *presenceServer, user string) presenceClient { return s.openWS(user) },
	}
	for name, openA := range open {
		for other, openB := range open {
			t.Run(name+"-sees-"+other, func(t *testing.T) {
				s := newPresenceServer(t, presence.Options{})
				a := openA(s, "bob")
				b := openB(s, "ana")
				if code := b.set("p7", `{"name":"Ana"}`); code != "" {
					t.Fatalf("set: %s", code)
				}
				join := a.next()
				if join.Event != "join" || join.Record != "p7" || string(join.State) != `{"name":"Ana"}` {
					t.Fatalf("join: %+v", join)
				}
				// b sees itself too.
				if m := b.next(); m.Event != "join" || m.Member != join.Member {
					t.Fatalf("b sees %+v", m)
				}
				if code := b.set("", ""); code != "" { // a heartbeat
					t.Fatalf("heartbeat: %s", code)
				}
				if code := b.set("p8", `{"name":"Ana"}`); code != "" {
					t.Fatalf("update: %s", code)
				}
				if m := a.next(); m.Event != "update" || m.Record != "p8" {
					t.Fatalf("after a heartbeat and an update: %+v", m)
				}
				b.close()
				if m := a.next(); m.Event != "leave" || m.Member != join.Member {
					t.Fatalf("leave: %+v", m)
				}
				a.close()
			})
		}
	}
}

// TestPresenceBadInput: malformed or oversized presence is refused with
// the contract's error, and nothing is present after it.
func TestPresenceBadInput(t *testing.T) {
	s := newPresenceServer(t, presence.Options{MaxStateBytes: 32})
	watch := s.openStream("stream", "bob")
	sc := s.openStream("events", "ana")
	w := s.openWS("ana")
	for _, c := range []struct {
		record, state string
		want          protocol.Code
	}{
		{"", `{"name":"` + strings.Repeat("a", 40) + `"}`, protocol.CodeTooLarge},
		{"", `[1]`, protocol.CodeBadRequest},
		{"", `"x"`, protocol.CodeBadRequest},
		{"", `{"a":1,"a":2}`, protocol.CodeBadRequest},
		{"p\u0001", `{}`, protocol.CodeBadRequest},
		{strings.Repeat("x", 300), `{}`, protocol.CodeBadRequest},
		{"", `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}`, protocol.CodeBadRequest},
		{"p1", ``, protocol.CodeBadRequest},     // a heartbeat with a record
		{"", ``, protocol.CodeNotFound},         // a heartbeat, not present
		{"p1", `null`, protocol.CodeBadRequest}, // a leave with a record
	} {
		for name, cl := range map[string]presenceClient{"http": sc, "websocket": w} {
			if got := cl.set(c.record, c.state); got != c.want {
				t.Errorf("%s: record %q state %s: %q, want %q", name, c.record, c.state, got, c.want)
			}
		}
	}
	for _, c := range []struct{ method, path, user, body string }{
		{"PUT", "/v1/collections/c/presence", "ana", `{"state":{}}`},
		{"PUT", "/v1/collections/c/presence", "ana", `{"session":"nope!","state":{}}`},
		{"PUT", "/v1/collections/c/presence", "ana", `{"session":"` + sc.session + `","state":{},"extra":1}`},
		{"PUT", "/v1/collections/c/presence", "ana", `not json`},
		{"DELETE", "/v1/collections/c/presence", "ana", ``},
		{"DELETE", "/v1/collections/c/presence?session=a+b", "ana", ``},
		{"GET", "/v1/collections/c/events?presence=maybe", "ana", ``},
	} {
		if got := s.request(c.method, c.path, c.user, c.body); got != protocol.CodeBadRequest {
			t.Errorf("%s %s %s: %q, want bad_request", c.method, c.path, c.body, got)
		}
	}
	// Another principal cannot publish with ana's session, nor clear it.
	body := `{"session":"` + sc.session + `","state":{}}`
	if got := s.request("PUT", "/v1/collections/c/presence", "mallory", body); got != protocol.CodeNotFound {
		t.Errorf("another principal's session: %q", got)
	}
	if got := s.request("PUT", "/v1/collections/x/presence", "", body); got != protocol.CodeUnauthorized {
		t.Errorf("no credentials: %q", got)
	}
	if m, _ := s.hub.Presence().Present("c"); m != 0 {
		t.Fatalf("%d members after refused input", m)
	}
	// Then a good one is the first thing the watcher sees.
	if got := sc.set("", `{"ok":true}`); got != "" {
		t.Fatal(got)
	}
	if m := watch.next(); m.Event != "join" || string(m.State) != `{"ok":true}` {
		t.Fatalf("watcher: %+v", m)
	}
	if got := s.request("DELETE", "/v1/collections/c/presence?session="+sc.session, "ana", ""); got != "" {
		t.Fatalf("delete: %q", got)
	}
	if m := watch.next(); m.Event != "leave" {
		t.Fatalf("watcher: %+v", m)
	}
	for _, c := range []presenceClient{watch, sc, w} {
		c.close()
	}
}

// TestPresenceRows: a principal that reads some rows sees no presence on
// the others, and cannot publish presence on one.
func TestPresenceRows(t *testing.T) {
	s := newPresenceServer(t, presence.Options{})
	c, _ := s.hub.Collection("c")
	for id, owner := range map[string]string{"mine": "eve", "theirs": "ana"} {
		if _, err := c.Put(context.Background(), id, json.RawMessage(`{"owner":"`+owner+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	eve := s.openStream("events", "eve")
	ana := s.openWS("ana")
	if got := eve.set("theirs", `{}`); got != protocol.CodeNotFound {
		t.Fatalf("eve on a record she may not read: %q", got)
	}
	if got := eve.set("nothere", `{}`); got != protocol.CodeNotFound {
		t.Fatalf("eve on a missing record: %q", got)
	}
	steps := []struct{ record, want string }{
		{"theirs", ""},      // not shown to eve
		{"mine", "join"},    // moves into eve's rows
		{"theirs", "leave"}, // and out
		{"", "join"},        // the collection as a whole
	}
	for _, st := range steps {
		if got := ana.set(st.record, `{"name":"Ana"}`); got != "" {
			t.Fatalf("ana on %q: %s", st.record, got)
		}
		if st.want == "" {
			continue
		}
		m := eve.next()
		if m.Event != st.want || m.Record == "theirs" {
			t.Fatalf("ana on %q: eve sees %+v, want %s", st.record, m, st.want)
		}
	}
	// eve's own presence on her row is seen by ana.
	if got := eve.set("mine", `{"name":"Eve"}`); got != "" {
		t.Fatal(got)
	}
	for {
		m := ana.next()
		if m.Event == "join" && m.Record == "mine" {
			break
		}
	}
	eve.close()
	ana.close()
}
