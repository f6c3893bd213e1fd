package limit

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/viewsync/viewsync/protocol"
)

// Conns counts concurrent requests (streams and WebSocket connections
// included: they are requests that last) per client address, and refuses
// those past a maximum. It is safe for concurrent use.
//
// It counts requests, not connections: idle keep-alive connections hold
// descriptors without a request in progress. A server that must bound
// those too counts connections at its listener (transport/guard's
// Listener, which viewsync serve uses in place of this middleware).
type Conns struct {
	max int
	// Refused, when set, is called for each request refused.
	Refused func(r *http.Request)

	mu    sync.Mutex
	count map[string]int
}

// NewConns returns a counter allowing max concurrent requests per address.
func NewConns(max int) *Conns {
	return &Conns{max: max, count: map[string]int{}}
}

// Acquire takes one slot of addr, reporting false when it has none left.
func (c *Conns) Acquire(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.count[addr]
	if n >= c.max {
		return false
	}
	c.count[addr] = n + 1
	return true
}

// Release gives back a slot of addr taken by Acquire.
func (c *Conns) Release(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.count[addr]; n > 1 {
		c.count[addr] = n - 1
	} else {
		delete(c.count, addr)
	}
}

// Open returns the number of requests in progress from addr.
func (c *Conns) Open(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[addr]
}

// Middleware counts every request to next against its client's address
// (the host of RemoteAddr) and answers those over the limit with 429
// rate_limited and Retry-After: 1, without calling next.
func (c *Conns) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := ClientAddr(r)
		if !c.Acquire(addr) {
			if c.Refused != nil {
				c.Refused(r)
			}
			b := protocol.MarshalError(protocol.CodeRateLimited,
				"too many concurrent requests and streams from "+addr+" (limit "+strconv.Itoa(c.max)+"); close some or retry later")
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			h.Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write(b)
			return
		}
		sl := &slot{release: func() { c.Release(addr) }}
		defer func() {
			if !sl.kept.Load() {
				sl.release()
			}
		}()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), slotKey{}, sl)))
	})
}

// slot is a request's place in a Conns count.
type slot struct {
	kept    atomic.Bool
	release func()
}

type slotKey struct{}

// Keep is for handlers that keep serving a connection after they return
// (a hijacked stream): it keeps the request's slot of its client address
// taken and returns the function that gives it back, to be called once the
// connection ends. It returns nil when the request holds no slot.
func Keep(ctx context.Context) (release func()) {
	sl, ok := ctx.Value(slotKey{}).(*slot)
	if !ok || !sl.kept.CompareAndSwap(false, true) {
		return nil
	}
	var once sync.Once
	return func() { once.Do(sl.release) }
}

// ClientAddr returns the IP address r came from: the host part of
// RemoteAddr.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
