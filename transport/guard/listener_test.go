package guard

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hold is a handler that answers the health paths at once and holds every
// other request until the test releases them.
type hold struct {
	release chan struct{}
	held    atomic.Int32
}

func newHold(t *testing.T) *hold {
	h := &hold{release: make(chan struct{})}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(h.release) }) })
	return h
}

func (h *hold) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/quick":
		w.Write([]byte("ok"))
		return
	}
	h.held.Add(1)
	defer h.held.Add(-1)
	select {
	case <-h.release:
	case <-r.Context().Done():
	}
	w.Write([]byte("released"))
}

// idleConn opens a connection posing as from, makes one request on it and
// leaves it idle, kept alive.
func (s *testServer) idleConn(from string) *rawConn {
	s.t.Helper()
	c := s.dial(from)
	c.get("/quick")
	if resp, _ := c.response(); resp.StatusCode != http.StatusOK || resp.Close {
		s.t.Fatalf("GET /quick from %s: %d, close %v", from, resp.StatusCode, resp.Close)
	}
	return c
}

func TestListenerCountsIdleConnectionsPerAddress(t *testing.T) {
	var refused []string
	var mu sync.Mutex
	s := newTestServer(t, &ListenerOptions{MaxConnsPerAddr: 2, Refused: func(r string) {
		mu.Lock()
		refused = append(refused, r)
		mu.Unlock()
	}}, newHold(t), nil)
	a1 := s.idleConn("10.0.0.1")
	s.idleConn("10.0.0.1")
	waitFor(t, "two idle connections", func() bool { _, _, idle := s.counts(); return idle == 2 })

	// A third connection from the address is refused at once, before it
	// sends anything.
	c := s.dial("10.0.0.1")
	resp, body := c.response()
	wantError(t, resp, body, http.StatusTooManyRequests, "rate_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if !c.closed() {
		t.Error("the refused connection stays open")
	}
	mu.Lock()
	if len(refused) != 1 || refused[0] != RefusedPerAddr {
		t.Errorf("Refused called with %v, want [%s]", refused, RefusedPerAddr)
	}
	mu.Unlock()

	// Other addresses are not affected.
	s.idleConn("10.0.0.2")

	// Once one of its connections closes, the address may open another.
	a1.Close()
	waitFor(t, "the closed connection's release", func() bool { open, _, _ := s.counts(); return open == 2 })
	s.idleConn("10.0.0.1")
}

func TestListenerEvictsTheLongestIdle(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	s := newTestServer(t, &ListenerOptions{MaxConns: 2, Logger: log}, newHold(t), nil)
	first := s.idleConn("10.0.0.1")
	waitFor(t, "the first connection idle", func() bool { _, _, idle := s.counts(); return idle == 1 })
	second := s.idleConn("10.0.0.1")
	waitFor(t, "two idle connections", func() bool { _, _, idle := s.counts(); return idle == 2 })

	// At the total, a new client is served and the connection idle the
	// longest is closed to make room.
	s.idleConn("10.0.0.2")
	if !first.closed() {
		t.Fatal("the longest idle connection was not closed")
	}
	second.get("/quick")
	if resp, _ := second.response(); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other idle connection: %d", resp.StatusCode)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "idle the longest was closed") || !strings.Contains(out, "max_conns=2") {
		t.Errorf("no warning of the eviction:\n%s", out)
	}
}

func TestListenerRefusesWhenNoneIsIdle(t *testing.T) {
	h := newHold(t)
	s := newTestServer(t, &ListenerOptions{MaxConns: 2}, h, nil)
	for _, from := range []string{"10.0.0.1", "10.0.0.2"} {
		s.dial(from).get("/hold")
	}
	waitFor(t, "two held requests", func() bool { return h.held.Load() == 2 })
	c := s.dial("10.0.0.3")
	resp, body := c.response()
	wantError(t, resp, body, http.StatusServiceUnavailable, "unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if !c.closed() {
		t.Error("the refused connection stays open")
	}
}

func TestListenerHealthConnections(t *testing.T) {
	h := newHold(t)
	s := newTestServer(t, &ListenerOptions{MaxConnsPerAddr: 1, HealthConns: 4}, h, nil)
	s.dial("10.0.0.1").get("/hold")
	waitFor(t, "the held request", func() bool { return h.held.Load() == 1 })

	// The address is at its limit: its health checks are still answered,
	// each on a connection of its own, closed after the answer.
	for _, path := range []string{"/healthz", "/readyz"} {
		c := s.dial("10.0.0.1")
		c.get(path)
		resp, body := c.response()
		if resp.StatusCode != http.StatusOK || string(body) != "ok" || !resp.Close {
			t.Errorf("GET %s at the limit: %d %q, close %v; want 200 ok and Connection: close", path, resp.StatusCode, body, resp.Close)
		}
		if !c.closed() {
			t.Errorf("GET %s: the health-only connection stays open", path)
		}
	}
	waitFor(t, "the health-only connections released", func() bool { _, health, _ := s.counts(); return health == 0 })

	// Anything else on such a connection is refused.
	c := s.dial("10.0.0.1")
	c.get("/hold")
	resp, body := c.response()
	wantError(t, resp, body, http.StatusTooManyRequests, "rate_limited")
	if !c.closed() {
		t.Error("the refused health-only connection stays open")
	}

	// An address holds at most a quarter of them (here one): while one is
	// held, another connection is refused at accept.
	held := s.dial("10.0.0.1")
	waitFor(t, "the health-only connection", func() bool { _, health, _ := s.counts(); return health == 1 })
	c = s.dial("10.0.0.1")
	resp, body = c.response()
	wantError(t, resp, body, http.StatusTooManyRequests, "rate_limited")
	held.get("/healthz")
	if resp, _ := held.response(); resp.StatusCode != http.StatusOK {
		t.Errorf("the held health-only connection: %d", resp.StatusCode)
	}
}

func TestListenerRefusalsLoggedAtARate(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	s := newTestServer(t, &ListenerOptions{MaxConnsPerAddr: 1, Logger: log}, newHold(t), nil)
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	s.l.log.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	s.idleConn("10.0.0.1")
	for range 5 {
		c := s.dial("10.0.0.1")
		resp, _ := c.response()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("status %d, want 429", resp.StatusCode)
		}
	}
	clock.Lock()
	now = now.Add(DefaultLogEvery)
	clock.Unlock()
	c := s.dial("10.0.0.1")
	c.response()

	mu.Lock()
	out := logs.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines for 6 refusals over one interval, want 2:\n%s", len(lines), out)
	}
	for i, want := range []string{"refused_since_last_warning=1", "refused_since_last_warning=5"} {
		if !strings.Contains(lines[i], "level=WARN") || !strings.Contains(lines[i], want) ||
			!strings.Contains(lines[i], "addr=10.0.0.1") || !strings.Contains(lines[i], "max_conns_per_addr=1") {
			t.Errorf("log line %d %q, want a warning with %s, the address and the limit", i, lines[i], want)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestListenerKeepsTCPAbilities: the connections handed to the server and
// to hijackers still offer what streams use: the socket itself (for
// non-blocking writes and hang-up watching) and CloseWrite.
func TestListenerKeepsTCPAbilities(t *testing.T) {
	got := make(chan net.Conn, 1)
	s := newTestServer(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		got <- c
	}), nil)
	c := s.dial("10.0.0.1")
	c.get("/")
	hc := <-got
	defer hc.Close()
	if _, ok := hc.(syscall.Conn); !ok {
		t.Errorf("%T is not a syscall.Conn", hc)
	}
	if _, ok := hc.(interface{ CloseWrite() error }); !ok {
		t.Errorf("%T has no CloseWrite", hc)
	}
	// A hijacker's writes are its own, even when they look like the
	// server's plain-text errors.
	const canned = "HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request"
	if _, err := hc.Write([]byte(canned)); err != nil {
		t.Fatal(err)
	}
	hc.Close()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	var got2 bytes.Buffer
	got2.ReadFrom(c.br)
	if got2.String() != canned {
		t.Errorf("a hijacked connection's write was changed: %q", got2.String())
	}
	waitFor(t, "the hijacked connection's release", func() bool { open, _, _ := s.counts(); return open == 0 })
}

func TestNewListenerRefusesNegativeLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, o := range []ListenerOptions{{MaxConns: -1}, {MaxConnsPerAddr: -1}, {HealthConns: -1}, {RefuseTimeout: -1}, {LogEvery: -1}} {
		if _, err := NewListener(ln, &o); err == nil {
			t.Errorf("NewListener(%+v) succeeded", o)
		}
	}
}
