package ws_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestIdleConnectionsCostOneGoroutine: a current subscription holds no
// goroutine (it waits in its collection's pump) and a connection only its
// reader, yet every commit reaches every client, in order.
func TestIdleConnectionsCostOneGoroutine(t *testing.T) {
	e := newEnv(t, nil)
	e.put("a", "k", "1")
	const n = 100
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.dial()
		clients[i].subscribe("a", nil, "")
		clients[i].expect(protocol.TypeReset)
	}
	var g int
	for range 50 { // let the subscriptions' catch-up goroutines return
		g = runtime.NumGoroutine()
		if g < 2*n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g >= 2*n {
		t.Fatalf("%d goroutines for %d idle connections: more than one each", g, n)
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
