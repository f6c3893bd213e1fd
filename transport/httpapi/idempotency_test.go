package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/storetest"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// idemServer starts the HTTP API over a hub with idempotency options io
// and a bbolt store with cfg, in front of which wrap (when set) puts a
// middleware of the test's.
func idemServer(t *testing.T, io viewsync.IdempotencyOptions, cfg store.Config, api *httpapi.Options, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{Config: cfg})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return serveHub(t, st, io, api, wrap)
}

// serveHub serves a new hub over st.
func serveHub(t *testing.T, st *boltstore.Store, io viewsync.IdempotencyOptions, api *httpapi.Options, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	hub, err := viewsync.New(st, viewsync.WithIdempotency(io))
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	h, err := httpapi.New(hub, api)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	var hh http.Handler = h
	if wrap != nil {
		hh = wrap(h)
	}
	srv := httptest.NewServer(hh)
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return &testServer{t: t, URL: srv.URL, Hub: hub, Store: st, client: &http.Client{Transport: tr}}
}

// dropFirst is a proxy that loses the first answer to a request carrying
// an Idempotency-Key: the request reaches the server and is served in
// full, then the client's connection is closed before it reads a byte.
func dropFirst(next http.Handler) http.Handler {
	var dropped sync.Map // key → true
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(httpapi.HeaderIdempotencyKey)
		if _, done := dropped.LoadOrStore(key, true); key == "" || done {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
}

// try sends a request that may get no answer; ok is false when it got none.
func (s *testServer) try(method, path, body string, kv ...string) (response, bool) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	// A new connection each time: on a reused one, net/http itself
	// resends a request with an Idempotency-Key whose answer was lost.
	req.Close = true
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, false
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, true
}

// replayed reports whether r says it was replayed.
func replayed(r response) bool { return r.Header.Get(httpapi.HeaderReplayed) == "true" }

// TestIdempotencyLostAnswer: each keyed write and call whose first answer
// a proxy dropped is applied once; its retry gets the answer it would
// have had, marked replayed.
func TestIdempotencyLostAnswer(t *testing.T) {
	var runs atomic.Int64
	s := idemServer(t, viewsync.IdempotencyOptions{}, store.Config{}, nil, dropFirst)
	s.Hub.HandleCall("bump", func(ctx context.Context, c *viewsync.Call) (any, error) {
		runs.Add(1)
		col, _ := c.Collection("calls")
		if _, err := col.Put(ctx, "n", []byte(strconv.FormatInt(runs.Load(), 10))); err != nil {
			return nil, err
		}
		return map[string]int64{"runs": runs.Load()}, nil
	})
	s.put("c", "p", `{"a":1}`)
	s.put("c", "gone", `1`)
	for i, tc := range []struct {
		method, path, body, etag string
		want                     string
	}{
		{"PUT", "/v1/collections/c/records/x", `{"name": "Lamp"}`, `"3"`, `{"version":3,"record":{"id":"x","value":{"name":"Lamp"},"version":3}}`},
		{"PATCH", "/v1/collections/c/records/p", `{"b":2}`, `"4"`, `{"version":4,"record":{"id":"p","value":{"a":1,"b":2},"version":4}}`},
		{"DELETE", "/v1/collections/c/records/gone", ``, ``, `{"version":5}`},
		{"POST", "/v1/collections/c/commits", `{"ops":[{"op":"put","id":"y","value":7}],"if":{"y":0}}`, ``, `{"version":6}`},
		{"POST", "/v1/calls/bump", `{"arg":null}`, ``, `{"result":{"runs":1},"versions":{"calls":1}}`},
	} {
		key := "key-" + strconv.Itoa(i)
		if _, ok := s.try(tc.method, tc.path, tc.body, httpapi.HeaderIdempotencyKey, key); ok {
			t.Fatalf("%s %s: the proxy did not drop the first answer", tc.method, tc.path)
		}
		for range 2 {
			r, ok := s.try(tc.method, tc.path, tc.body, httpapi.HeaderIdempotencyKey, key)
			if !ok || r.Status != http.StatusOK || !replayed(r) || string(r.Body) != tc.want || r.Header.Get("ETag") != tc.etag {
				t.Fatalf("%s %s retried: %d replayed %q ETag %q %s; want 200, replayed, ETag %q, %s", tc.method, tc.path, r.Status, r.Header.Get(httpapi.HeaderReplayed), r.Header.Get("ETag"), r.Body, tc.etag, tc.want)
			}
		}
	}
	if h := s.head("c"); h.Version != 6 {
		t.Errorf("c at version %d after 2 writes and 4 keyed ones retried, want 6", h.Version)
	}
	if runs.Load() != 1 {
		t.Errorf("the call ran %d times, want 1", runs.Load())
	}
	// Without a key nothing is remembered: a retry applies again.
	s.sendJSON("PUT", "/v1/collections/c/records/z", `1`)
	if r := s.sendJSON("PUT", "/v1/collections/c/records/z", `1`); r.Status != 200 || replayed(r) {
		t.Errorf("unkeyed PUT again: %d, replayed %v", r.Status, replayed(r))
	}
}

// TestIdempotencyConcurrent: many retries of one keyed request at once,
// the first still in flight, apply it once and all get the same answer.
func TestIdempotencyConcurrent(t *testing.T) {
	s := idemServer(t, viewsync.IdempotencyOptions{}, store.Config{}, nil, nil)
	release := make(chan struct{})
	var runs atomic.Int64
	s.Hub.HandleCall("slow", func(ctx context.Context, c *viewsync.Call) (any, error) {
		runs.Add(1)
		<-release
		col, _ := c.Collection("c")
		r, err := col.Put(ctx, "n", []byte("1"))
		return r.Version, err
	})
	const n = 32
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/calls/slow", `{"arg":1}`},
		{"PUT", "/v1/collections/c/records/x", `{"v":1}`},
		{"POST", "/v1/collections/c/commits", `{"ops":[{"op":"put","id":"y","value":1}]}`},
	} {
		var wg sync.WaitGroup
		answers := make([]response, n)
		for i := range n {
			wg.Go(func() {
				answers[i], _ = s.try(tc.method, tc.path, tc.body, httpapi.HeaderIdempotencyKey, "same")
			})
		}
		if tc.path == "/v1/calls/slow" {
			waitFor(t, "the call to start", func() bool { return runs.Load() == 1 })
			time.Sleep(50 * time.Millisecond) // let the others arrive
			close(release)
		}
		wg.Wait()
		fresh := 0
		for i, r := range answers {
			if r.Status != http.StatusOK || !bytes.Equal(r.Body, answers[0].Body) {
				t.Fatalf("%s %s answer %d: %d %s, want 200 %s", tc.method, tc.path, i, r.Status, r.Body, answers[0].Body)
			}
			if !replayed(r) {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("%s %s: %d answers not replayed, want 1", tc.method, tc.path, fresh)
		}
	}
	if runs.Load() != 1 {
		t.Errorf("the call ran %d times, want 1", runs.Load())
	}
	if h := s.head("c"); h.Version != 3 {
		t.Errorf("version %d, want 3: one commit each", h.Version)
	}
}

// TestIdempotencyKeyReused: the same key with another request is refused
// with 422 and nothing is applied; the first request's retry still
// replays.
func TestIdempotencyKeyReused(t *testing.T) {
	s := idemServer(t, viewsync.IdempotencyOptions{}, store.Config{}, nil, nil)
	k := []string{httpapi.HeaderIdempotencyKey, "k1"}
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", `{"v":1}`, k...); r.Status != 200 {
		t.Fatalf("first PUT: %d %s", r.Status, r.Body)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/collections/c/records/x", `{"v":2}`},
		{"PATCH", "/v1/collections/c/records/x", `{"v":1}`},
		{"DELETE", "/v1/collections/c/records/x", ``},
	} {
		wantError(t, s.sendJSON(tc.method, tc.path, tc.body, k...), http.StatusUnprocessableEntity, protocol.CodeIdempotencyKeyReused)
	}
	// Another precondition is another request.
	wantError(t, s.sendJSON("PUT", "/v1/collections/c/records/x", `{"v":1}`, append(k, "If-Match", `"1"`)...), http.StatusUnprocessableEntity, protocol.CodeIdempotencyKeyReused)
	// Whitespace is not a difference.
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", "{ \"v\" : 1 }", k...); r.Status != 200 || !replayed(r) {
		t.Errorf("the same value spaced differently: %d replayed %v", r.Status, replayed(r))
	}
	// Another target is another key.
	if r := s.sendJSON("PUT", "/v1/collections/c/records/y", `{"v":2}`, k...); r.Status != 200 || replayed(r) {
		t.Errorf("the key on another record: %d replayed %v", r.Status, replayed(r))
	}
	// A call and a commit under keys used for calls and commits.
	s.Hub.HandleCall("echo", func(ctx context.Context, c *viewsync.Call) (any, error) { return c.Arg, nil })
	s.sendJSON("POST", "/v1/calls/echo", `{"arg":1}`, k...)
	wantError(t, s.sendJSON("POST", "/v1/calls/echo", `{"arg":2}`, k...), http.StatusUnprocessableEntity, protocol.CodeIdempotencyKeyReused)
	s.sendJSON("POST", "/v1/collections/c/commits", `{"ops":[{"op":"put","id":"z","value":1}]}`, k...)
	wantError(t, s.sendJSON("POST", "/v1/collections/c/commits", `{"ops":[{"op":"put","id":"z","value":2}]}`, k...), http.StatusUnprocessableEntity, protocol.CodeIdempotencyKeyReused)
	if h := s.head("c"); h.Version != 3 {
		t.Errorf("version %d, want 3", h.Version)
	}
}

// TestIdempotencyFailuresRemembered: a failed precondition is a result,
// answered again to a retry even once the write would succeed; a server
// failure is not.
func TestIdempotencyFailuresRemembered(t *testing.T) {
	s := idemServer(t, viewsync.IdempotencyOptions{}, store.Config{}, nil, nil)
	k := []string{httpapi.HeaderIdempotencyKey, "k"}
	s.put("c", "x", "1")
	first := s.sendJSON("PUT", "/v1/collections/c/records/x", `2`, append(k, "If-Match", `"2"`)...)
	wantError(t, first, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
	s.put("c", "x", "1") // now at version 2: the write would pass
	r := s.sendJSON("PUT", "/v1/collections/c/records/x", `2`, append(k, "If-Match", `"2"`)...)
	if r.Status != http.StatusPreconditionFailed || !replayed(r) || !bytes.Equal(r.Body, first.Body) {
		t.Errorf("retry of a failed precondition: %d replayed %v %s, want the first answer %s", r.Status, replayed(r), r.Body, first.Body)
	}
	// A call that fails with 503 is run again.
	var runs atomic.Int64
	s.Hub.HandleCall("flaky", func(ctx context.Context, c *viewsync.Call) (any, error) {
		if runs.Add(1) == 1 {
			return nil, &viewsync.CallError{Code: protocol.CodeUnavailable, Message: "try later"}
		}
		return "ok", nil
	})
	wantError(t, s.sendJSON("POST", "/v1/calls/flaky", `{}`, k...), http.StatusServiceUnavailable, protocol.CodeUnavailable)
	if r := s.sendJSON("POST", "/v1/calls/flaky", `{}`, k...); r.Status != 200 || replayed(r) {
		t.Errorf("retry after a 503: %d replayed %v %s", r.Status, replayed(r), r.Body)
	}
	if r := s.sendJSON("POST", "/v1/calls/flaky", `{}`, k...); r.Status != 200 || !replayed(r) {
		t.Errorf("retry after the success: %d replayed %v", r.Status, replayed(r))
	}
}

// TestIdempotencyExpiry: past the TTL (a test clock, no sleeping) a key is
// forgotten in memory and in the store, and a retry applies again.
func TestIdempotencyExpiry(t *testing.T) {
	clk := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := idemServer(t, viewsync.IdempotencyOptions{TTL: time.Hour, Now: clk.Now}, store.Config{KeyTTL: time.Hour, Now: clk.Now}, nil, nil)
	k := []string{httpapi.HeaderIdempotencyKey, "k"}
	s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, k...)
	clk.Advance(time.Hour - time.Second)
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, k...); !replayed(r) {
		t.Fatalf("retry within the TTL not replayed: %d %s", r.Status, r.Body)
	}
	clk.Advance(time.Second)
	r := s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, k...)
	if r.Status != 200 || replayed(r) {
		t.Fatalf("retry after the TTL: %d replayed %v", r.Status, replayed(r))
	}
	if h := s.head("c"); h.Version != 2 {
		t.Errorf("version %d, want 2: applied again after the TTL", h.Version)
	}
	// And the key is remembered again from then on.
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, k...); !replayed(r) {
		t.Errorf("retry of the new use not replayed")
	}
}

// TestIdempotencyPrincipals: keys are per principal: B never gets A's
// answer, and uses the same key for a request of its own.
func TestIdempotencyPrincipals(t *testing.T) {
	policy := &auth.Policy{Authenticate: func(r *http.Request) (auth.Principal, error) {
		return auth.Principal{Subject: r.Header.Get("X-User"), Rights: auth.All}, nil
	}}
	s := idemServer(t, viewsync.IdempotencyOptions{}, store.Config{}, &httpapi.Options{Policy: policy}, nil)
	a := s.sendJSON("PUT", "/v1/collections/c/records/x", `"ana"`, httpapi.HeaderIdempotencyKey, "k", "X-User", "ana")
	b := s.sendJSON("PUT", "/v1/collections/c/records/x", `"ana"`, httpapi.HeaderIdempotencyKey, "k", "X-User", "ben")
	if a.Status != 200 || b.Status != 200 || replayed(b) || bytes.Equal(a.Body, b.Body) {
		t.Fatalf("ana then ben, same key and body: %d %s, %d replayed %v %s; want two writes", a.Status, a.Body, b.Status, replayed(b), b.Body)
	}
	c := s.sendJSON("PUT", "/v1/collections/c/records/x", `"other"`, httpapi.HeaderIdempotencyKey, "k", "X-User", "cid")
	if c.Status != 200 || replayed(c) {
		t.Fatalf("cid with ana's key and another body: %d %s, want a write of its own", c.Status, c.Body)
	}
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", `"ana"`, httpapi.HeaderIdempotencyKey, "k", "X-User", "ana"); !replayed(r) || !bytes.Equal(r.Body, a.Body) {
		t.Errorf("ana's retry: replayed %v %s, want %s", replayed(r), r.Body, a.Body)
	}
	if h := s.head("c"); h.Version != 3 {
		t.Errorf("version %d, want 3", h.Version)
	}
}

// TestIdempotencyLimits: bad keys are refused with 400 and nothing is
// applied; past MaxKeys the oldest key is forgotten.
func TestIdempotencyLimits(t *testing.T) {
	s := idemServer(t, viewsync.IdempotencyOptions{MaxKeys: 2, MaxKeyBytes: 16}, store.Config{MaxKeys: 2}, nil, nil)
	for _, key := range []string{strings.Repeat("k", 17), "caf\u00e9", "tab\there"} {
		r := s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, httpapi.HeaderIdempotencyKey, key)
		wantError(t, r, http.StatusBadRequest, protocol.CodeBadIdempotencyKey)
	}
	req, _ := http.NewRequest("PUT", s.URL+"/v1/collections/c/records/x", strings.NewReader("1"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add(httpapi.HeaderIdempotencyKey, "a")
	req.Header.Add(httpapi.HeaderIdempotencyKey, "b")
	if resp, err := s.client.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("two keys: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if h := s.head("c"); h.Version != 0 {
		t.Fatalf("version %d after bad keys, want 0", h.Version)
	}
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, httpapi.HeaderIdempotencyKey, strings.Repeat("k", 16)); r.Status != 200 {
		t.Fatalf("a key of the longest length: %d %s", r.Status, r.Body)
	}
	for i := range 20 {
		s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, httpapi.HeaderIdempotencyKey, fmt.Sprint("n", i))
	}
	if n := s.Hub.IdempotencyKeys(); n > 2 {
		t.Errorf("%d answers kept in memory, want at most 2", n)
	}
	before := s.head("c").Version
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, httpapi.HeaderIdempotencyKey, "n0"); replayed(r) {
		t.Errorf("the oldest of 20 keys with MaxKeys 2 was replayed")
	}
	if r := s.sendJSON("PUT", "/v1/collections/c/records/x", `1`, httpapi.HeaderIdempotencyKey, "n19"); !replayed(r) {
		t.Errorf("the newest key was not replayed")
	}
	if h := s.head("c"); h.Version != before+1 {
		t.Errorf("version %d, want %d", h.Version, before+1)
	}
}

// TestIdempotencyInFlight: a duplicate that waits longer than it may for
// the first gets 409 idempotency_in_flight; once the first is answered
// the retry replays it.
func TestIdempotencyInFlight(t *testing.T) {
	s := idemServer(t, viewsync.IdempotencyOptions{MaxWait: 50 * time.Millisecond}, store.Config{}, nil, nil)
	release := make(chan struct{})
	started := make(chan struct{})
	s.Hub.HandleCall("slow", func(ctx context.Context, c *viewsync.Call) (any, error) {
		close(started)
		<-release
		return "done", nil
	})
	k := []string{httpapi.HeaderIdempotencyKey, "k"}
	first := make(chan response, 1)
	go func() { r, _ := s.try("POST", "/v1/calls/slow", `{}`, k...); first <- r }()
	<-started
	wantError(t, s.sendJSON("POST", "/v1/calls/slow", `{}`, k...), http.StatusConflict, protocol.CodeIdempotencyInFlight)
	close(release)
	if r := <-first; r.Status != 200 || replayed(r) {
		t.Fatalf("first: %d %s", r.Status, r.Body)
	}
	if r := s.sendJSON("POST", "/v1/calls/slow", `{}`, k...); r.Status != 200 || !replayed(r) || string(r.Body) != `{"result":"done","versions":{}}` {
		t.Errorf("retry: %d replayed %v %s", r.Status, replayed(r), r.Body)
	}
}

// TestIdempotencyRestart: the key is recorded with the commit in bbolt,
// so that after the hub (its memory) is gone and the store reopened, a
// retry replays instead of applying again.
func TestIdempotencyRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "viewsync.db")
	st, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := serveHub(t, st, viewsync.IdempotencyOptions{}, nil, nil)
	k := []string{httpapi.HeaderIdempotencyKey, "k"}
	first := s.sendJSON("PUT", "/v1/collections/c/records/x", `{"v":1}`, k...)
	s.Hub.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s = serveHub(t, st, viewsync.IdempotencyOptions{}, nil, nil)
	r := s.sendJSON("PUT", "/v1/collections/c/records/x", `{"v":1}`, k...)
	if r.Status != 200 || !replayed(r) || !bytes.Equal(r.Body, first.Body) || r.Header.Get("ETag") != first.Header.Get("ETag") {
		t.Fatalf("retry after a restart: %d replayed %v ETag %q %s, want %s ETag %q", r.Status, replayed(r), r.Header.Get("ETag"), r.Body, first.Body, first.Header.Get("ETag"))
	}
	wantError(t, s.sendJSON("PUT", "/v1/collections/c/records/x", `{"v":2}`, k...), http.StatusUnprocessableEntity, protocol.CodeIdempotencyKeyReused)
	if h := s.head("c"); h.Version != 1 {
		t.Errorf("version %d, want 1", h.Version)
	}
}
