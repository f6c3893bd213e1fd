package sse_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/memstore"
	"github.com/viewsync/viewsync/transport/sse"
)

// wantError checks that resp is the contract's JSON error with the given
// status and code.
func wantError(t *testing.T, resp *http.Response, status int, code protocol.Code) {
	t.Helper()
	if resp.StatusCode != status {
		// Not read: it may be a stream, which never ends.
		t.Fatalf("status %d (%s), want %d", resp.StatusCode, resp.Header.Get("Content-Type"), status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var body protocol.ErrorBody
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil {
		t.Fatalf("body %s is not an error envelope: %v", b, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Fatalf("error %+v, want code %s with a message", body.Error, code)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, config{})
	e.put("a", 1)
	long := strings.Repeat("e", protocol.MaxEpochLen+1)
	for _, tc := range []struct {
		name, coll, query, lastEventID string
		lastEventIDs                   []string
	}{
		{name: "bad name: upper case", coll: "Items"},
		{name: "bad name: leading dot", coll: ".items"},
		{name: "bad name: too long", coll: strings.Repeat("a", protocol.MaxCollectionLen+1)},
		{name: "after not a number", coll: "items", query: "after=abc"},
		{name: "after negative", coll: "items", query: "after=-1"},
		{name: "after empty", coll: "items", query: "after="},
		{name: "after with sign", coll: "items", query: "after=%2B1"},
		{name: "after overflows", coll: "items", query: "after=18446744073709551616"},
		{name: "after twice", coll: "items", query: "after=1&after=2"},
		{name: "epoch with a bad character", coll: "items", query: "after=1&epoch=a:b"},
		{name: "epoch too long", coll: "items", query: "after=1&epoch=" + long},
		{name: "epoch twice", coll: "items", query: "after=1&epoch=a&epoch=b"},
		{name: "epoch without after", coll: "items", query: "epoch=abc"},
		{name: "Last-Event-ID not a cursor", coll: "items", lastEventID: "abc:xyz"},
		{name: "Last-Event-ID bad epoch", coll: "items", lastEventID: "ab!c:3"},
		{name: "Last-Event-ID negative", coll: "items", lastEventID: "abc:-3"},
		{name: "Last-Event-ID no version", coll: "items", lastEventID: "abc:"},
		{name: "Last-Event-ID with spaces inside", coll: "items", lastEventID: "abc: 3"},
		{name: "Last-Event-ID twice", coll: "items", lastEventIDs: []string{"abc:1", "abc:2"}},
		{name: "good Last-Event-ID, bad query", coll: "items", query: "after=x", lastEventID: "abc:1"},
		{name: "after a malformed escape", coll: "items", query: "after=%zz"},
		{name: "a malformed escape in another parameter", coll: "items", query: "after=1&cb=%zz"},
		{name: "a malformed escape in a name", coll: "items", query: "%zz=1"},
		{name: "a truncated escape", coll: "items", query: "after=%3"},
		{name: "a semicolon separator", coll: "items", query: "after=1;epoch=abc"},
		{name: "good Last-Event-ID, malformed query", coll: "items", query: "after=%zz", lastEventID: "abc:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.lastEventID != "" {
				hdr.Set("Last-Event-ID", tc.lastEventID)
			}
			for _, v := range tc.lastEventIDs {
				hdr.Add("Last-Event-ID", v)
			}
			resp := e.get(tc.coll, tc.query, hdr)
			defer resp.Body.Close()
			wantError(t, resp, http.StatusBadRequest, protocol.CodeBadRequest)
			if n := e.h.Connections(); n != 0 {
				t.Fatalf("Connections() = %d after a refused request", n)
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	e := newEnv(t, config{SSE: sse.Options{MaxConnections: 2}})
	a := e.newClient("items", "", nil)
	e.newClient("other", "", nil)
	e.waitConnections(2)
	resp := e.get("items", "", nil)
	wantError(t, resp, http.StatusServiceUnavailable, protocol.CodeUnavailable)
	resp.Body.Close()
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Fatalf("Retry-After %q, want 2 (the default retry hint)", ra)
	}
	if n := e.h.Connections(); n != 2 {
		t.Fatalf("Connections() = %d after a refused stream, want 2", n)
	}
	a.close()
	e.waitConnections(1)
	c := e.newClient("items", "", nil)
	if ev := c.nextEvent(); ev.Event != "reset" {
		t.Fatalf("event %+v, want a reset", ev)
	}
}

// TestMethodNotAllowed and TestUnmounted serve the handler without a mux,
// as a server that routes by other means might.
func TestMethodNotAllowed(t *testing.T) {
	h := newBareHandler(t)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req := httptest.NewRequest(m, "/v1/collections/items/events", nil)
		req.SetPathValue("c", "items")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		wantError(t, rec.Result(), http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed)
		if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
			t.Fatalf("%s: Allow %q", m, allow)
		}
	}
}

func TestHead(t *testing.T) {
	h := newBareHandler(t)
	req := httptest.NewRequest(http.MethodHead, "/v1/collections/items/events", nil)
	req.SetPathValue("c", "items")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}

func TestUnmounted(t *testing.T) {
	h := newBareHandler(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/events", nil))
	wantError(t, rec.Result(), http.StatusBadRequest, protocol.CodeBadRequest)
}

// TestNotFlushable: a ResponseWriter that cannot flush cannot stream.
func TestNotFlushable(t *testing.T) {
	h := newBareHandler(t)
	req := httptest.NewRequest(http.MethodGet, "/v1/collections/items/events", nil)
	req.SetPathValue("c", "items")
	rec := httptest.NewRecorder()
	h.ServeHTTP(plainWriter{rec}, req)
	wantError(t, rec.Result(), http.StatusInternalServerError, protocol.CodeInternal)
}

// plainWriter hides every ability of the writer it wraps.
type plainWriter struct{ w http.ResponseWriter }

func (p plainWriter) Header() http.Header         { return p.w.Header() }
func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }

func newBareHandler(t *testing.T) *sse.Handler {
	t.Helper()
	hub, err := viewsync.New(memstore.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	h, err := sse.New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNewRefusesBadOptions(t *testing.T) {
	hub, err := viewsync.New(memstore.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	if _, err := sse.New(nil, nil); err == nil {
		t.Error("New(nil hub) succeeded")
	}
	for _, o := range []sse.Options{
		{PingInterval: -1}, {WriteTimeout: -time.Second}, {Retry: -1}, {MaxConnections: -1},
	} {
		if _, err := sse.New(hub, &o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
