package ws_test

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/ws"
)

// TestIdleConnectionsCostNoGoroutine: a current subscription holds no
// goroutine (it waits in its collection's pump), nor does an idle
// connection where sockets are watched (Linux; elsewhere it holds its
// reader), yet every commit reaches every client, in order.
func TestIdleConnectionsCostNoGoroutine(t *testing.T) {
	e := newEnv(t, nil)
	e.put("a", "k", "1")
	const n = 100
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.dial()
		clients[i].subscribe("a", nil, "")
		clients[i].expect(protocol.TypeReset)
	}
	// The test's clients hold no goroutine while they do not read.
	limit := 2 * n
	if runtime.GOOS == "linux" {
		limit = n / 4
	}
	var g int
	// Let the subscriptions' catch-up goroutines return, within 20 s
	// on a busy machine: connections that held one each would hold it
	// still.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if g = runtime.NumGoroutine(); g < limit {
			break
		}
	}
	if g >= limit {
		t.Fatalf("%d goroutines for %d idle connections; want fewer than %d", g, n, limit)
	}
	for v := range 3 {
		version := e.put("a", "k", "2")
		for i, c := range clients {
			m := c.expect(protocol.TypeCommit)
			if m.Version != version {
				t.Fatalf("client %d, commit %d: version %d, want %d", i, v, m.Version, version)
			}
		}
	}
}

// TestFlushIntervalKeepsEveryCommit: with a flush interval, commits that
// come faster than it reach every live subscription together, each once,
// in order.
func TestFlushIntervalKeepsEveryCommit(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{FlushInterval: 50 * time.Millisecond}})
	base := e.put("a", "k", "0")
	clients := make([]*client, 3)
	for i := range clients {
		clients[i] = e.dial()
		clients[i].subscribe("a", nil, "")
		clients[i].expect(protocol.TypeReset)
	}
	const commits = 40
	for n := range commits {
		e.put("a", fmt.Sprintf("r%d", n%7), strconv.Itoa(n))
	}
	for i, c := range clients {
		for v := base + 1; v <= base+commits; v++ {
			if m := c.expect(protocol.TypeCommit); m.Version != v {
				t.Fatalf("client %d: commit version %d, want %d", i, m.Version, v)
			}
		}
	}
}
