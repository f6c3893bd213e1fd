package limit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConnsAcquireRelease(t *testing.T) {
	c := NewConns(2)
	for i := range 2 {
		if !c.Acquire("a") {
			t.Fatalf("Acquire %d of 2 failed", i+1)
		}
	}
	if c.Acquire("a") {
		t.Fatal("a third Acquire succeeded with max 2")
	}
	if n := c.Open("a"); n != 2 {
		t.Errorf("Open(a) = %d, want 2 (a refused Acquire takes nothing)", n)
	}
	if !c.Acquire("b") || c.Open("b") != 1 {
		t.Error("addresses are not independent")
	}
	c.Release("a")
	if n := c.Open("a"); n != 1 {
		t.Errorf("Open(a) = %d after a release, want 1", n)
	}
	if !c.Acquire("a") {
		t.Error("Acquire failed after a release")
	}
	c.Release("a")
	c.Release("a")
	c.Release("b")
	if c.Open("a") != 0 || c.Open("b") != 0 {
		t.Errorf("Open after releasing all: a %d, b %d", c.Open("a"), c.Open("b"))
	}
	c.mu.Lock()
	n := len(c.count)
	c.mu.Unlock()
	if n != 0 {
		t.Errorf("%d addresses remembered with nothing open", n)
	}
	// A stray release does not go negative or let more in.
	c.Release("z")
	if c.Open("z") != 0 {
		t.Errorf("Open(z) = %d after a stray Release", c.Open("z"))
	}
	first, second, third := c.Acquire("z"), c.Acquire("z"), c.Acquire("z")
	if !first || !second || third {
		t.Error("a stray Release changed the limit")
	}
	// Max 0 refuses everything.
	if NewConns(0).Acquire("a") {
		t.Error("NewConns(0) let a request in")
	}
	if NewConns(-1).Acquire("a") {
		t.Error("NewConns(-1) let a request in")
	}
}

func TestConnsConcurrent(t *testing.T) {
	const maxOpen = 3
	c := NewConns(maxOpen)
	var inFlight [2]atomic.Int32
	var peak atomic.Int32
	var wg sync.WaitGroup
	addrs := [2]string{"10.0.0.1", "::1"}
	for g := range 32 {
		wg.Go(func() {
			for i := range 300 {
				a := (g + i) % 2
				if !c.Acquire(addrs[a]) {
					continue
				}
				n := inFlight[a].Add(1)
				if n > maxOpen {
					t.Errorf("%d in flight from %s, max %d", n, addrs[a], maxOpen)
				}
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				inFlight[a].Add(-1)
				c.Release(addrs[a])
			}
		})
	}
	wg.Wait()
	for _, a := range addrs {
		if n := c.Open(a); n != 0 {
			t.Errorf("Open(%s) = %d after all released", a, n)
		}
	}
	if peak.Load() < 1 {
		t.Error("nothing ever acquired")
	}
}

func TestConnsMiddleware(t *testing.T) {
	c := NewConns(2)
	var refused []string
	var refusedMu sync.Mutex
	c.Refused = func(r *http.Request) {
		refusedMu.Lock()
		refused = append(refused, r.URL.Path)
		refusedMu.Unlock()
	}
	entered := make(chan string, 8) // the client address of each held request
	release := make(chan struct{})
	var served atomic.Int32
	srv := httptest.NewServer(c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path == "/hold" {
			entered <- ClientAddr(r)
			<-release
		}
		io.WriteString(w, "ok "+r.URL.Path)
	})))
	defer srv.Close()
	client := srv.Client()

	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: body: %v", path, err)
		}
		return res, string(b)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	held := make(chan result, 2)
	for range 2 {
		go func() {
			res, err := client.Get(srv.URL + "/hold")
			if err != nil {
				held <- result{err: err}
				return
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			held <- result{res.StatusCode, string(b), err}
		}()
	}
	addr := <-entered
	if a2 := <-entered; a2 != addr {
		t.Fatalf("two client addresses: %s and %s", addr, a2)
	}
	if n := c.Open(addr); n != 2 {
		t.Fatalf("Open(%s) = %d with two requests held, want 2", addr, n)
	}

	// Over the limit: 429 without reaching the handler.
	for range 3 {
		res, body := get("/over")
		if res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d, want 429 (body %q)", res.StatusCode, body)
		}
		if ra := res.Header.Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After %q, want 1", ra)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "rate_limited" || e.Error.Message == "" {
			t.Errorf("body %q (%v), want a rate_limited error", body, err)
		}
	}
	if n := served.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2 (the refused requests must not reach it)", n)
	}
	refusedMu.Lock()
	if len(refused) != 3 || refused[0] != "/over" {
		t.Errorf("Refused saw %q, want three /over", refused)
	}
	refusedMu.Unlock()
	if n := c.Open(addr); n != 2 {
		t.Errorf("Open = %d after refusals, want 2", n)
	}

	// The held requests finish normally.
	close(release)
	for range 2 {
		r := <-held
		if r.err != nil || r.status != http.StatusOK || r.body != "ok /hold" {
			t.Errorf("held request: %d %q %v", r.status, r.body, r.err)
		}
	}
	// Their slots come back (the release runs as the handler returns; wait
	// for it without bounding the time).
	for c.Open(addr) != 0 {
		time.Sleep(time.Millisecond)
	}
	for range 4 { // sequential: never more than one open
		if res, body := get("/after"); res.StatusCode != http.StatusOK || body != "ok /after" {
			t.Errorf("after release: %d %q", res.StatusCode, body)
		}
	}
	refusedMu.Lock()
	if len(refused) != 3 {
		t.Errorf("Refused called %d times, want 3", len(refused))
	}
	refusedMu.Unlock()
}

func TestConnsMiddlewareAddresses(t *testing.T) {
	c := NewConns(1)
	var inner func(r *http.Request)
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inner != nil {
			inner(r)
		}
	}))
	serve := func(remote string) int {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	// While one request from 1.2.3.4 is in the handler, another from the
	// same address (another port) is refused; other addresses pass.
	var got []int
	inner = func(*http.Request) {
		inner = nil
		got = append(got,
			serve("1.2.3.4:2000"),
			serve("5.6.7.8:1000"),
			serve("[2001:db8::1]:1000"),
			serve("1.2.3.4"), // no port: the same address
		)
	}
	if code := serve("1.2.3.4:1000"); code != http.StatusOK {
		t.Fatalf("outer request: %d", code)
	}
	want := []int{429, 200, 200, 429}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
	if c.Open("1.2.3.4") != 0 {
		t.Errorf("Open = %d after the request", c.Open("1.2.3.4"))
	}

	// A panicking handler still gives its slot back.
	inner = func(*http.Request) { panic("boom") }
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic was swallowed")
			}
		}()
		serve("9.9.9.9:1")
	}()
	if n := c.Open("9.9.9.9"); n != 0 {
		t.Errorf("Open = %d after a panic, want 0", n)
	}
}

func TestClientAddr(t *testing.T) {
	for _, tt := range []struct{ remote, want string }{
		{"1.2.3.4:5678", "1.2.3.4"},
		{"127.0.0.1:80", "127.0.0.1"},
		{"[::1]:8080", "::1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[fe80::1%eth0]:443", "fe80::1%eth0"},
		{"1.2.3.4", "1.2.3.4"},
		{"::1", "::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"example.com:80", "example.com"},
		{"", ""},
		{"@", "@"},
	} {
		r := &http.Request{RemoteAddr: tt.remote}
		if got := ClientAddr(r); got != tt.want {
			t.Errorf("ClientAddr(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

// TestKeep: a handler that keeps serving its connection after it returns
// (a hijacked stream) keeps its address's slot until it releases it.
func TestKeep(t *testing.T) {
	c := NewConns(1)
	var release func()
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release = Keep(r.Context())
		if again := Keep(r.Context()); again != nil {
			t.Error("a second Keep returned a release function")
		}
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.7:1234"
	h.ServeHTTP(httptest.NewRecorder(), r)
	if release == nil {
		t.Fatal("Keep inside the middleware returned nil")
	}
	if n := c.Open("192.0.2.7"); n != 1 {
		t.Fatalf("Open = %d after the handler returned with its slot kept, want 1", n)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("second request while the slot is kept: %d, want 429", rec.Code)
	}
	release()
	release() // idempotent
	if n := c.Open("192.0.2.7"); n != 0 {
		t.Fatalf("Open = %d after release, want 0", n)
	}
	if Keep(context.Background()) != nil {
		t.Fatal("Keep outside the middleware returned a release function")
	}
}
