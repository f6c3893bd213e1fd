package sse_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/transport/sse"
)

// rawStream is an event stream read by hand from a TCP connection, with no
// goroutine of its own, so that the test can count the server's.
type rawStream struct {
	conn net.Conn
	r    *bufio.Reader
}

func openRaw(t *testing.T, e *env, c string) *rawStream {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /v1/collections/%s/events HTTP/1.1\r\nHost: test\r\n\r\n", c)
	s := &rawStream{conn: conn, r: bufio.NewReader(conn)}
	status := s.line(t)
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("status line %q", status)
	}
	return s
}

// line reads one line, bounded by waitTimeout.
func (s *rawStream) line(t *testing.T) string {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	l, err := s.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the stream: %v (after %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// event reads up to the next "event: kind" line and returns kind.
func (s *rawStream) event(t *testing.T) string {
	t.Helper()
	for {
		if kind, ok := strings.CutPrefix(s.line(t), "event: "); ok {
			return kind
		}
	}
}

// TestLiveStreamsCostNoGoroutine: on HTTP/1.1 an idle stream that is
// current holds no goroutine (its connection waits in its collection's
// pump), it still receives every commit, and a client that hangs up is
// noticed without any write to it.
func TestLiveStreamsCostNoGoroutine(t *testing.T) {
	e := newEnv(t, config{})
	e.put("a", 1)
	const n = 200
	streams := make([]*rawStream, n)
	for i := range streams {
		streams[i] = openRaw(t, e, "items")
		if kind := streams[i].event(t); kind != "reset" {
			t.Fatalf("stream %d: first event %q, want reset", i, kind)
		}
	}
	e.waitConnections(n)
	var before int
	// Let the handler goroutines finish returning, within 20 s on a busy
	// machine: streams that held one each would hold it still.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if before = runtime.NumGoroutine(); before < n {
			break
		}
	}
	if before >= n {
		t.Fatalf("%d goroutines with %d idle streams open: streams hold goroutines", before, n)
	}

	v := e.put("b", 2)
	for i, s := range streams {
		if kind := s.event(t); kind != "commit" {
			t.Fatalf("stream %d: event %q after commit %d, want commit", i, kind, v)
		}
	}

	for _, s := range streams[:n/2] {
		s.conn.Close()
	}
	e.waitConnections(n - n/2)
	for _, s := range streams[n/2:] {
		s.conn.Close()
	}
	e.waitConnections(0)
}

// TestFlushIntervalKeepsEveryCommit: with a flush interval, commits that
// come faster than it reach every live stream together, each once, in
// order.
func TestFlushIntervalKeepsEveryCommit(t *testing.T) {
	e := newEnv(t, config{SSE: sse.Options{FlushInterval: 50 * time.Millisecond}})
	base := e.put("a", 0)
	epoch := e.head().Epoch
	clients := make([]*client, 3)
	for i := range clients {
		clients[i] = e.newClient("items", "", nil)
		if ev := clients[i].nextEvent(); ev.Event != "reset" {
			t.Fatalf("client %d: first event %q, want reset", i, ev.Event)
		}
	}
	e.waitConnections(len(clients))
	const commits = 40
	for n := range commits {
		e.put(fmt.Sprintf("r%d", n%7), n)
	}
	for _, c := range clients {
		c.expectCommits(epoch, base+1, base+commits)
	}
}
