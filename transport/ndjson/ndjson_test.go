package ndjson_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/memstore"
	"github.com/viewsync/viewsync/transport/ndjson"
)

func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// env is the handler mounted as a server mounts it, over a hub on a
// memory store.
type env struct {
	t   *testing.T
	hub *viewsync.Hub
	h   *ndjson.Handler
	srv *httptest.Server
}

func newEnv(t *testing.T, o *ndjson.Options) *env {
	t.Helper()
	hub, err := viewsync.New(memstore.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ndjson.New(hub, o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/collections/{c}/stream", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return &env{t: t, hub: hub, h: h, srv: srv}
}

// put writes a record and returns the collection's new version.
func (e *env) put(coll, id, value string) uint64 {
	e.t.Helper()
	c, err := e.hub.Collection(coll)
	if err != nil {
		e.t.Fatal(err)
	}
	rec, err := c.Put(context.Background(), id, json.RawMessage(value))
	if err != nil {
		e.t.Fatal(err)
	}
	return rec.Version
}

// stream is an open stream read line by line.
type stream struct {
	t    *testing.T
	resp *http.Response
	br   *bufio.Reader
}

// open GETs the stream of coll with query q and header hdr and checks
// that it is one.
func (e *env) open(method, coll, q string, hdr http.Header) *stream {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/v1/collections/"+coll+"/stream?"+q, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return &stream{t: e.t, resp: resp, br: bufio.NewReader(resp.Body)}
}

// line returns the next line, without its line feed.
func (s *stream) line() string {
	s.t.Helper()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			s.resp.Body.Close() // a hang guard
		}
	}()
	l, err := s.br.ReadString('\n')
	if err != nil {
		s.t.Fatalf("reading the stream: %v (after %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

// TestLines: the stream is application/x-ndjson, each line one WebSocket
// server message: a reset without a cursor, then each commit, the same
// bytes as the WebSocket commit message.
func TestLines(t *testing.T) {
	e := newEnv(t, nil)
	e.put("items", "a", `{"n":1}`)
	s := e.open(http.MethodGet, "items", "", nil)
	for name, want := range map[string]string{"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := s.resp.Header.Get(name); s.resp.StatusCode != http.StatusOK || got != want {
			t.Errorf("status %d, %s %q, want 200 and %q", s.resp.StatusCode, name, got, want)
		}
	}
	coll, _ := e.hub.Collection("items")
	snap, err := coll.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap.Collection, snap.Reset = "items", true
	want, err := protocol.EncodeReset(&snap, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.line(); got != string(want) {
		t.Fatalf("first line %s, want the reset %s", got, want)
	}
	v := e.put("items", "b", "[1, 2,\n 3]")
	line := s.line()
	prefix := fmt.Sprintf(`{"type":"commit","collection":"items","epoch":"%s","version":%d,"at":"`, snap.Epoch, v)
	m, err := protocol.DecodeServerMessage([]byte(line))
	if !strings.HasPrefix(line, prefix) || err != nil || len(m.Ops) != 1 || string(m.Ops[0].Value) != "[1,2,3]" {
		t.Fatalf("commit line %s (%v), want a commit message beginning %s with the value compacted", line, err, prefix)
	}
	if e.h.Connections() != 1 {
		t.Fatalf("Connections() = %d, want 1", e.h.Connections())
	}
}

// TestCursors: the query's cursor, and Last-Event-ID overriding it, as SSE.
func TestCursors(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 5 {
		e.put("items", "a", fmt.Sprint(i))
	}
	coll, _ := e.hub.Collection("items")
	hd, _ := coll.Head(context.Background())
	for _, tc := range []struct {
		q    string
		hdr  http.Header
		from uint64
	}{
		{"after=2&epoch=" + hd.Epoch, nil, 3},
		{"after=3", nil, 4},
		{"after=1", http.Header{"Last-Event-ID": {hd.Epoch + ":4"}}, 5},
	} {
		s := e.open(http.MethodGet, "items", tc.q, tc.hdr)
		for v := tc.from; v <= hd.Version; v++ {
			m, err := protocol.DecodeServerMessage([]byte(s.line()))
			if err != nil || m.Type != protocol.TypeCommit || m.Version != v {
				t.Fatalf("%s %v: %+v %v, want commit %d", tc.q, tc.hdr, m, err, v)
			}
		}
	}
}

// TestPing: an idle stream gets {"type":"ping"} lines.
func TestPing(t *testing.T) {
	e := newEnv(t, &ndjson.Options{PingInterval: 50 * time.Millisecond})
	s := e.open(http.MethodGet, "items", "after=0", nil)
	for range 3 {
		if l := s.line(); l != `{"type":"ping"}` {
			t.Fatalf("line %s, want a ping", l)
		}
	}
}

// TestShutdownLine: a stream the server ends says why in its last line.
func TestShutdownLine(t *testing.T) {
	e := newEnv(t, nil)
	s := e.open(http.MethodGet, "items", "", nil)
	s.line() // the reset
	e.hub.Close()
	var m struct {
		Type, Code, Message string
	}
	if l := s.line(); json.Unmarshal([]byte(l), &m) != nil || m.Type != "error" || m.Code != "unavailable" || m.Message == "" {
		t.Fatalf("last line %s, want an error of code unavailable", l)
	}
	if _, err := s.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the error line: %v, want the end of the stream", err)
	}
}

// TestRefusals: what cannot stream gets the contract's JSON error.
func TestRefusals(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		method, coll, q string
		status          int
	}{
		{http.MethodGet, "items", "after=x", http.StatusBadRequest},
		{http.MethodGet, "items", "epoch=E", http.StatusBadRequest},
		{http.MethodGet, "items", "after=%zz", http.StatusBadRequest},
		{http.MethodGet, "Not-A-Name", "", http.StatusBadRequest},
		{http.MethodPost, "items", "", http.StatusMethodNotAllowed},
	} {
		s := e.open(tc.method, tc.coll, tc.q, nil)
		var body protocol.ErrorBody
		if s.resp.StatusCode != tc.status || s.resp.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(s.resp.Body).Decode(&body) != nil || body.Error == nil || body.Error.Code == "" {
			t.Errorf("%s %s?%s: %d %s, want %d with the contract's error", tc.method, tc.coll, tc.q, s.resp.StatusCode, s.resp.Header.Get("Content-Type"), tc.status)
		}
	}
	s := e.open(http.MethodHead, "items", "", nil)
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != ndjson.ContentType {
		t.Errorf("HEAD: %d %s", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	hub, err := viewsync.New(memstore.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	if _, err := ndjson.New(nil, nil); err == nil {
		t.Error("New(nil hub) succeeded")
	}
	for _, o := range []ndjson.Options{{PingInterval: -1}, {WriteTimeout: -1}, {FlushInterval: -1}, {MaxConnections: -1}} {
		if _, err := ndjson.New(hub, &o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
