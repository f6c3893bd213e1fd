package guard

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/internal/leakcheck"
	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind. One is
// let be: net/http's connection goroutine lingers for 500 ms after it
// closes a connection whose request body went unread (so that the client
// reads the answer before a reset), and a closed http.Server does not
// wait for it; on a loaded machine that outlasts goleak's retries.
func TestMain(m *testing.M) {
	leakcheck.Main(m, goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"))
}

// waitTimeout bounds waits for something that must happen. It detects
// hangs; it is not a performance bound.
const waitTimeout = 20 * time.Second

// testServer is an http.Server on a Listener, on 127.0.0.1, whose clients
// may pose as other addresses.
type testServer struct {
	t    *testing.T
	l    *Listener
	srv  *http.Server
	addr string

	mu   sync.Mutex
	fake map[int]string // client port → the address it poses as
}

// newTestServer serves h (behind the Listener's Middleware) on a Listener
// with opts, until the test ends. edit, when not nil, adjusts the server.
func newTestServer(t *testing.T, opts *ListenerOptions, h http.Handler, edit func(*http.Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(ln, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, l: l, addr: ln.Addr().String(), fake: map[int]string{}}
	l.addrOf = s.addrOf
	s.srv = &http.Server{
		Handler:           l.Middleware(h),
		ConnState:         l.ConnState,
		ConnContext:       l.ConnContext,
		ReadHeaderTimeout: waitTimeout,
	}
	if edit != nil {
		edit(s.srv)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-done
	})
	return s
}

// addrOf returns the address a client poses as; it waits for the client
// to say which, since the server may accept before the dial returns.
func (s *testServer) addrOf(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return hostOf(a)
	}
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		f, ok := s.fake[ta.Port]
		s.mu.Unlock()
		if ok {
			return f
		}
		time.Sleep(time.Millisecond)
	}
	return hostOf(a)
}

// dial connects a client posing as address from.
func (s *testServer) dial(from string) *rawConn {
	s.t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.fake[c.LocalAddr().(*net.TCPAddr).Port] = from
	s.mu.Unlock()
	s.t.Cleanup(func() { c.Close() })
	return &rawConn{t: s.t, Conn: c, br: bufio.NewReader(c)}
}

// counts returns the Listener's full and health-only connections, and the
// idle ones.
func (s *testServer) counts() (open, health, idle int) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	return s.l.open, s.l.health, s.l.idle.Len()
}

// waitFor polls cond until it holds, failing the test past waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawConn is a client connection speaking raw HTTP/1.1.
type rawConn struct {
	t *testing.T
	net.Conn
	br *bufio.Reader
}

// send writes s.
func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// get sends a keep-alive GET of path.
func (c *rawConn) get(path string) {
	c.send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n")
}

// response reads the next response and its body.
func (c *rawConn) response() (*http.Response, []byte) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading a response body: %v", err)
	}
	return resp, b
}

// closed reports whether the server closed the connection: a read ends
// with EOF or a reset (not a timeout) once what was sent before is read.
func (c *rawConn) closed() bool {
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// wantError checks that resp is the contract's JSON error with status and
// code, and that the connection is to be closed.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error *struct{ Code, Message string }
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil {
		t.Fatalf("body %q is not the contract's error: %v", body, err)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("error %+v, want code %q and a message", *e.Error, code)
	}
	if !resp.Close {
		t.Errorf("no Connection: close (headers %v)", resp.Header)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Content-Length")); err != nil || n != len(body) {
		t.Errorf("Content-Length %q for a body of %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
}
