package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/server"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/memstore"
)

// wait bounds every wait of these tests: a hang guard.
const wait = 30 * time.Second

// running is a Server serving on a loopback port until the test ends.
type running struct {
	srv  *server.Server
	url  string
	stop context.CancelFunc
	done chan error // Serve's result
}

// start serves srv on a free loopback port; t.Cleanup stops it.
func start(t *testing.T, srv *server.Server) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &running{srv: srv, url: "http://" + ln.Addr().String(), stop: stop, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Error("Serve did not return after its context ended")
		}
	})
	return r
}

// do sends a request and returns its status and body.
func do(t *testing.T, method, url, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: wait}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// readUntil reads lines of the stream at url until one contains want,
// calling then once after the stream's reset (the subscription is live).
func readUntil(t *testing.T, url, want string, then func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	live := false
	for sc.Scan() {
		switch line := sc.Text(); {
		case !live && strings.Contains(line, "reset"):
			live = true
			then()
		case live && strings.Contains(line, want):
			return
		}
	}
	t.Fatalf("GET %s: the stream ended (%v) without %q", url, sc.Err(), want)
}

// TestSurface: one Server serves every route of the contract: writes
// and reads, the three push transports live, calls, the browser client,
// health and metrics.
func TestSurface(t *testing.T) {
	srv, err := server.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Hub().HandleCall("echo", func(ctx context.Context, c *viewsync.Call) (any, error) { return c.Arg, nil })
	r := start(t, srv)
	coll := r.url + "/v1/collections/c"

	if code, _, body := do(t, "PUT", coll+"/records/a", `{"n":1}`); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, _, body := do(t, "GET", coll, ""); code != http.StatusOK || !strings.Contains(body, `"n":1`) {
		t.Fatalf("GET snapshot: %d %s", code, body)
	}
	if code, _, body := do(t, "POST", r.url+"/v1/calls/echo", `{"arg":{"x":2}}`); code != http.StatusOK || !strings.Contains(body, `"result":{"x":2}`) {
		t.Fatalf("POST call: %d %s", code, body)
	}
	for _, tc := range []struct{ path, want string }{
		{"/viewsync.js", "text/javascript"},
		{"/healthz", "application/json"},
		{"/readyz", "application/json"},
		{"/metrics", "text/plain"},
	} {
		code, h, body := do(t, "GET", r.url+tc.path, "")
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), tc.want) {
			t.Errorf("GET %s: %d %s %.80q, want 200 %s", tc.path, code, h.Get("Content-Type"), body, tc.want)
		}
	}
	if code, _, body := do(t, "GET", r.url+"/nope", ""); code != http.StatusNotFound || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("GET /nope: %d %s, want a JSON 404", code, body)
	}

	// Each push transport delivers a commit made after it opened.
	put := func(v string) func() {
		return func() {
			if code, _, body := do(t, "PUT", coll+"/records/live", v); code != http.StatusOK {
				t.Errorf("PUT: %d %s", code, body)
			}
		}
	}
	readUntil(t, coll+"/events", `"value":"sse"`, put(`"sse"`))
	readUntil(t, coll+"/stream", `"value":"ndjson"`, put(`"ndjson"`))

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := wstest.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/v1/ws", &wstest.Options{Subprotocols: []string{"viewsync.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.WriteMessage(ctx, 0x1, []byte(`{"type":"subscribe","collection":"c"}`)); err != nil {
		t.Fatal(err)
	}
	for wrote := false; ; {
		_, b, err := c.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("WebSocket: %v", err)
		}
		m, err := protocol.DecodeServerMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == protocol.TypeCommit && strings.Contains(string(b), `"value":"ws"`) {
			break
		}
		if !wrote && m.Type == protocol.TypeReset { // subscribed
			put(`"ws"`)()
			wrote = true
		}
	}
}

// TestOptions: the access policy, CORS and a private /metrics apply to
// every route.
func TestOptions(t *testing.T) {
	srv, err := server.New(memstore.New(nil), &server.Options{
		Policy: &auth.Policy{Authenticate: func(r *http.Request) (auth.Principal, error) {
			if r.Header.Get("Authorization") != "Bearer good" {
				return auth.Principal{}, errors.New("no token")
			}
			return auth.Anonymous(), nil
		}},
		CORSOrigins:    []string{"https://app.example.com"},
		PrivateMetrics: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, srv)
	for _, path := range []string{"/v1/collections/c", "/v1/collections/c/events", "/v1/collections/c/stream", "/v1/ws"} {
		if code, _, body := do(t, "GET", r.url+path, ""); code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthorized"`) {
			t.Errorf("GET %s without a token: %d %s, want 401 unauthorized", path, code, body)
		}
	}
	if code, _, _ := do(t, "GET", r.url+"/v1/collections/c", "", "Authorization", "Bearer good"); code != http.StatusOK {
		t.Errorf("GET with a token: %d, want 200", code)
	}
	_, h, _ := do(t, "OPTIONS", r.url+"/v1/collections/c", "", "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET")
	if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("preflight from an allowed origin: Access-Control-Allow-Origin %q", h.Get("Access-Control-Allow-Origin"))
	}
	if code, _, _ := do(t, "GET", r.url+"/metrics", ""); code != http.StatusNotFound {
		t.Errorf("GET /metrics with PrivateMetrics: %d, want 404", code)
	}
}

// TestAnonymousPublic: anonymous access is served on loopback only,
// unless allowed.
func TestAnonymousPublic(t *testing.T) {
	srv, err := server.New(memstore.New(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:80"} {
		if err := srv.ListenAndServe(context.Background(), addr); !errors.Is(err, server.ErrAnonymousPublic) {
			t.Errorf("ListenAndServe(%s) = %v, want ErrAnonymousPublic", addr, err)
		}
	}
	for _, tt := range []struct {
		addr string
		want bool
	}{{"127.0.0.1:1", true}, {"[::1]:1", true}, {"localhost:1", true}, {":1", false}, {"10.0.0.1:1", false}} {
		if got, err := server.Loopback(tt.addr); err != nil || got != tt.want {
			t.Errorf("Loopback(%s) = %v, %v; want %v", tt.addr, got, err, tt.want)
		}
	}
	if _, err := server.Loopback("nope"); err == nil {
		t.Error("Loopback(nope): no error")
	}
}

// TestShutdown: when Serve's context ends, /readyz turns unavailable for
// the drain delay, streams end, Serve returns nil, and the store Open
// opened is closed (the folder can be opened again).
func TestShutdown(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.Open(dir, &server.Options{DrainDelay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	req, _ := http.NewRequest("GET", url+"/v1/collections/c/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stop()
	// During the drain, the server still answers, not ready.
	if code, _, body := do(t, "GET", url+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz while draining: %d %s, want 503", code, body)
	}
	rest, _ := io.ReadAll(resp.Body) // ends when the server does
	if !strings.Contains(string(rest), `"code":"unavailable"`) {
		t.Errorf("the stream ended with %q, want a last unavailable line", rest)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	st, err := boltstore.Open(filepath.Join(dir, server.StoreFile), nil)
	if err != nil {
		t.Fatalf("the store is still held after Serve returned: %v", err)
	}
	st.Close()
}

// TestOpenFolder: Open creates missing folders, and a folder another
// Server holds fails with an error that says so.
func TestOpenFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	srv, err := server.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := os.Stat(filepath.Join(dir, server.StoreFile)); err != nil {
		t.Fatal(err)
	}
	_, err = server.Open(dir, nil)
	if !errors.Is(err, boltstore.ErrLocked) || !strings.Contains(err.Error(), "another viewsync process") {
		t.Fatalf("Open of a held folder = %v, want ErrLocked saying so", err)
	}
}
