package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// TestMain fails the run if a test leaves a goroutine behind: every server,
// hub, store and client connection a test starts must be stopped by it.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// waitTimeout bounds waits for something that must happen. It detects
// hangs; it is not a performance bound.
const waitTimeout = 20 * time.Second

// testServer is the HTTP API served by httptest over a hub on a real bbolt
// store in a temporary directory.
type testServer struct {
	t      *testing.T
	URL    string
	Hub    *viewsync.Hub
	Store  *boltstore.Store
	client *http.Client
}

// serverConfig configures newTestServerWith.
type serverConfig struct {
	// API is passed to httpapi.New; nil means the defaults.
	API *httpapi.Options
	// Limits are the hub's write limits.
	Limits viewsync.Limits
	// Store is the store's retention and clock.
	Store store.Config
}

// newTestServer starts a server with the given API options.
func newTestServer(t *testing.T, opts *httpapi.Options) *testServer {
	t.Helper()
	return newTestServerWith(t, serverConfig{API: opts})
}

// newTestServerWith starts a server and stops it, its hub and its store
// when the test ends.
func newTestServerWith(t *testing.T, cfg serverConfig) *testServer {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{Config: cfg.Store})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	hub, err := viewsync.New(st, viewsync.WithLimits(cfg.Limits))
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	h, err := httpapi.New(hub, cfg.API)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	srv := httptest.NewServer(h)
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return &testServer{
		t:     t,
		URL:   srv.URL,
		Hub:   hub,
		Store: st,
		client: &http.Client{
			Transport: tr,
			// Redirects are answers under test, not something to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request with an optional body and header key/value pairs and
// reads the whole answer. A nil body sends none.
func (s *testServer) do(method, path string, body []byte, kv ...string) response {
	s.t.Helper()
	return s.doContext(s.t.Context(), method, path, body, kv...)
}

func (s *testServer) doContext(ctx context.Context, method, path string, body []byte, kv ...string) response {
	s.t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		s.t.Fatalf("new request %s %s: %v", method, path, err)
	}
	if len(kv)%2 != 0 {
		s.t.Fatalf("odd header list %q", kv)
	}
	for i := 0; i < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// get sends a GET with header key/value pairs.
func (s *testServer) get(path string, kv ...string) response {
	s.t.Helper()
	return s.do(http.MethodGet, path, nil, kv...)
}

// sendJSON sends body as application/json with extra header pairs.
func (s *testServer) sendJSON(method, path, body string, kv ...string) response {
	s.t.Helper()
	return s.do(method, path, []byte(body), append([]string{"Content-Type", "application/json"}, kv...)...)
}

// coll returns a collection of the hub.
func (s *testServer) coll(name string) *viewsync.Collection {
	s.t.Helper()
	c, err := s.Hub.Collection(name)
	if err != nil {
		s.t.Fatalf("collection %q: %v", name, err)
	}
	return c
}

// put writes a record through the Go API and returns its version.
func (s *testServer) put(coll, id, value string) uint64 {
	s.t.Helper()
	rec, err := s.coll(coll).Put(s.t.Context(), id, json.RawMessage(value))
	if err != nil {
		s.t.Fatalf("put %s/%s: %v", coll, id, err)
	}
	return rec.Version
}

// del deletes a record through the Go API and returns the version.
func (s *testServer) del(coll, id string) uint64 {
	s.t.Helper()
	v, err := s.coll(coll).Delete(s.t.Context(), id)
	if err != nil {
		s.t.Fatalf("delete %s/%s: %v", coll, id, err)
	}
	return v
}

// head reads a collection's head from the store itself.
func (s *testServer) head(coll string) protocol.Head {
	s.t.Helper()
	hd, err := s.Store.Head(s.t.Context(), coll)
	if err != nil {
		s.t.Fatalf("head %s: %v", coll, err)
	}
	return hd
}

// storeState is what must not change when a request is refused.
type storeState struct {
	Commits uint64
	Heads   map[string]protocol.Head
	Snaps   map[string]protocol.Snapshot
}

// state reads the store's commit count and the heads and snapshots of the
// named collections, from the store itself (not the hub's cache).
func (s *testServer) state(colls ...string) storeState {
	s.t.Helper()
	st := storeState{
		Commits: s.Store.Stats().Commits,
		Heads:   map[string]protocol.Head{},
		Snaps:   map[string]protocol.Snapshot{},
	}
	for _, c := range colls {
		st.Heads[c] = s.head(c)
		snap, err := s.Store.Snapshot(s.t.Context(), c)
		if err != nil {
			s.t.Fatalf("snapshot %s: %v", c, err)
		}
		st.Snaps[c] = snap
	}
	return st
}

// errorBody is the contract's error envelope.
type errorBody struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks that r is the contract's error with the given status
// and code: a JSON body {"error":{"code","message"}} with a non-empty
// message and nothing else.
func wantError(t *testing.T, r response, status int, code protocol.Code) {
	t.Helper()
	if r.Status != status {
		t.Errorf("status %d, want %d (body %s)", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var eb errorBody
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error == nil {
		t.Fatalf("body %q is not the contract's error: %v", r.Body, err)
	}
	if eb.Error.Code != string(code) {
		t.Errorf("error code %q, want %q (message %q)", eb.Error.Code, code, eb.Error.Message)
	}
	if strings.TrimSpace(eb.Error.Message) == "" {
		t.Errorf("error %q has an empty message", eb.Error.Code)
	}
}

// wantJSON checks a 200 JSON answer and decodes its body strictly into v.
func wantJSON(t *testing.T, r response, v any) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200 (body %s)", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", r.Body, v, err)
	}
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("decode %q: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

// waiters counts the goroutines blocked in Collection.Wait: the long-polls
// that are holding.
func waiters() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "viewsync.(*Collection).Wait(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitForWaiters waits until n long-polls are holding.
func waitForWaiters(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "long-polls are waiting", func() bool { return waiters() >= n })
}
