package guard

import (
	"container/list"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Reasons a connection is refused, passed to ListenerOptions.Refused.
const (
	// RefusedPerAddr: its client address holds MaxConnsPerAddr
	// connections already.
	RefusedPerAddr = "max_conns_per_addr"
	// RefusedTotal: the listener holds MaxConns connections already and
	// none of them is idle.
	RefusedTotal = "max_conns"
)

// Defaults of ListenerOptions.
const (
	// DefaultRefuseTimeout bounds the answer to a refused connection.
	DefaultRefuseTimeout = 2 * time.Second
	// DefaultLogEvery is the least time between two warnings of refused
	// connections for the same reason.
	DefaultLogEvery = 10 * time.Second
)

// DefaultHealthPaths are the paths a connection accepted beyond a limit may
// ask for by default.
var DefaultHealthPaths = []string{"/healthz", "/readyz"}

// maxRefusing bounds the refused connections being answered at once; past
// it, refused connections are closed without an answer.
const maxRefusing = 64

// refuseDrain bounds what is read from a refused connection, waiting for
// the client to read the answer and hang up.
const refuseDrain = 64 << 10

// ListenerOptions configure a Listener. The zero value counts connections
// and limits none.
type ListenerOptions struct {
	// MaxConns is the most connections open at once, idle keep-alive ones
	// included; 0 means no limit. When it is reached, the connection idle
	// the longest is closed to make room (its client reconnects when it
	// needs to); when none is idle, new connections are refused with 503.
	MaxConns int
	// MaxConnsPerAddr is the most connections open at once from one client
	// IP address; 0 means no limit. Past it, new connections from that
	// address are refused with 429.
	MaxConnsPerAddr int
	// HealthConns is the number of connections accepted beyond MaxConns or
	// MaxConnsPerAddr that may each ask for one of HealthPaths, and nothing
	// else, before they are closed; one client address holds at most a
	// quarter of them (at least one). 0: none.
	HealthConns int
	// HealthPaths are the paths those connections may ask for, with GET or
	// HEAD. Default DefaultHealthPaths.
	HealthPaths []string
	// RefuseTimeout bounds the time spent answering a refused connection:
	// writing the error and waiting for the client to hang up. Default
	// DefaultRefuseTimeout.
	RefuseTimeout time.Duration
	// LogEvery is the least time between two warnings of refused
	// connections for the same reason (or of idle connections closed at
	// MaxConns); those in between are counted in the next one. Default
	// DefaultLogEvery.
	LogEvery time.Duration
	// Logger receives those warnings. Default: none.
	Logger *slog.Logger
	// Refused, when set, is called for each connection or request refused
	// by a limit, with the reason (RefusedPerAddr or RefusedTotal).
	Refused func(reason string)
}

// Listener is a net.Listener that counts the connections it accepts per
// client address and in all, idle keep-alive connections included, and
// refuses those past its limits. Hand it to http.Server.Serve with the
// server's ConnState and ConnContext set to the Listener's, and its
// Middleware around the handler. Make one with NewListener.
//
// The connections it returns rewrite the HTTP/1 server's own plain-text
// error answers (431, 400, 501, 505) as the contract's JSON error.
type Listener struct {
	net.Listener
	opts          ListenerOptions
	healthPaths   map[string]bool
	healthPerAddr int
	log           *refusalLog
	refusing      chan struct{}
	// addrOf returns the client address of a connection's remote
	// address; tests give connections other addresses than loopback.
	addrOf func(net.Addr) string

	// mu guards the fields below and every state's released and idle. It
	// is the only lock taken with another held: refusalLog's is taken
	// after it is released, never while.
	mu sync.Mutex
	// open and health count the connections open, as addrs does per
	// client address.
	open, health int
	addrs        map[string]*addrCount
	// idle holds the *state of connections waiting for their next request,
	// the longest waiting first.
	idle list.List
	// answering are the refused connections being answered.
	answering map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// addrCount counts one client address's connections.
type addrCount struct{ open, health int }

// NewListener returns ln guarded by the limits of opts; nil opts count
// connections and limit none.
func NewListener(ln net.Listener, opts *ListenerOptions) (*Listener, error) {
	var o ListenerOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxConns < 0 || o.MaxConnsPerAddr < 0 || o.HealthConns < 0 || o.RefuseTimeout < 0 || o.LogEvery < 0 {
		return nil, errors.New("guard: negative limit")
	}
	if o.HealthPaths == nil {
		o.HealthPaths = DefaultHealthPaths
	}
	if o.RefuseTimeout == 0 {
		o.RefuseTimeout = DefaultRefuseTimeout
	}
	if o.LogEvery == 0 {
		o.LogEvery = DefaultLogEvery
	}
	l := &Listener{
		Listener:      ln,
		opts:          o,
		healthPaths:   map[string]bool{},
		healthPerAddr: max(1, o.HealthConns/4),
		log:           &refusalLog{log: o.Logger, every: o.LogEvery, now: time.Now},
		refusing:      make(chan struct{}, maxRefusing),
		addrs:         map[string]*addrCount{},
		answering:     map[net.Conn]struct{}{},
		addrOf:        hostOf,
	}
	for _, p := range o.HealthPaths {
		l.healthPaths[p] = true
	}
	return l, nil
}

// Accept returns the next connection within the limits. Connections past
// them get a short JSON error (429 or 503, with Retry-After), written
// apart from the accepting goroutine, and are closed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := l.addrOf(c.RemoteAddr())
		st, victim, reason := l.admit(addr)
		if victim != nil {
			victim.Close()
			l.log.evicted(addr, l.opts.MaxConns)
		}
		if st != nil {
			return wrap(c, st), nil
		}
		l.refuse(c, addr, reason)
	}
}

// admit takes a place for a connection from addr: a full one, or a
// health-only one beyond a limit. It returns nil and the reason when there
// is none, and the idle connection to close when one was evicted to make
// room.
func (l *Listener) admit(addr string) (st *state, victim net.Conn, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.addrs[addr]
	if a == nil {
		a = &addrCount{}
	}
	switch {
	case l.opts.MaxConnsPerAddr > 0 && a.open >= l.opts.MaxConnsPerAddr:
		reason = RefusedPerAddr
	case l.opts.MaxConns > 0 && l.open >= l.opts.MaxConns:
		if victim = l.evictLocked(); victim == nil {
			reason = RefusedTotal
		}
	}
	st = &state{l: l, addr: addr}
	if reason != "" {
		if l.health >= l.opts.HealthConns || a.health >= l.healthPerAddr {
			if a.open == 0 && a.health == 0 {
				delete(l.addrs, addr)
			}
			return nil, nil, reason
		}
		st.health, st.reason = true, reason
		l.health++
		a.health++
	} else {
		l.open++
		a.open++
	}
	l.addrs[addr] = a
	return st, victim, ""
}

// evictLocked gives back the place of the connection idle the longest and
// returns it, to be closed; nil when none is idle.
func (l *Listener) evictLocked() net.Conn {
	e := l.idle.Front()
	if e == nil {
		return nil
	}
	st := e.Value.(*state)
	l.releaseLocked(st)
	return st.conn
}

// release gives back the place of a connection being closed, once.
func (l *Listener) release(st *state) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(st)
}

func (l *Listener) releaseLocked(st *state) {
	if st.released {
		return
	}
	st.released = true
	if st.idle != nil {
		l.idle.Remove(st.idle)
		st.idle = nil
	}
	a := l.addrs[st.addr]
	if st.health {
		l.health--
		a.health--
	} else {
		l.open--
		a.open--
	}
	if a.open == 0 && a.health == 0 {
		delete(l.addrs, st.addr)
	}
}

// ConnState tracks which connections are idle, waiting for a next request,
// and which were hijacked. Set it as the http.Server's ConnState (calling
// it from yours if you have one).
func (l *Listener) ConnState(c net.Conn, s http.ConnState) {
	st := stateOf(c)
	if st == nil || st.l != l {
		return
	}
	if s == http.StateHijacked {
		st.hijacked.Store(true)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case s == http.StateIdle && !st.released && !st.health:
		if st.idle == nil {
			st.idle = l.idle.PushBack(st)
		}
	case st.idle != nil:
		l.idle.Remove(st.idle)
		st.idle = nil
	}
}

type stateKey struct{}

// ConnContext puts what the Listener knows of c into ctx, for Middleware.
// Set it as the http.Server's ConnContext (calling it from yours if you
// have one).
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if st := stateOf(c); st != nil && st.l == l {
		return context.WithValue(ctx, stateKey{}, st)
	}
	return ctx
}

// Middleware serves the requests of connections accepted beyond a limit:
// a GET or HEAD of a health path is passed to next, anything else is
// answered 429 (or 503 past MaxConns) with Retry-After; either way the
// connection is closed after the answer. Other requests go to next.
func (l *Listener) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, _ := r.Context().Value(stateKey{}).(*state)
		if st == nil || !st.health {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && l.healthPaths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		l.refused(st.addr, st.reason)
		status, code, msg := l.refusal(st.addr, st.reason)
		w.Header().Set("Retry-After", "1")
		protocol.WriteError(w, status, code, msg)
	})
}

// refusal returns the answer to a connection from addr refused for reason.
func (l *Listener) refusal(addr, reason string) (int, protocol.Code, string) {
	if reason == RefusedPerAddr {
		return http.StatusTooManyRequests, protocol.CodeRateLimited,
			"too many connections from " + addr + " (limit " + strconv.Itoa(l.opts.MaxConnsPerAddr) + "); close some or retry later"
	}
	return http.StatusServiceUnavailable, protocol.CodeUnavailable,
		"the server holds as many connections as it may (" + strconv.Itoa(l.opts.MaxConns) + "); retry later"
}

// refused counts and logs a refusal.
func (l *Listener) refused(addr, reason string) {
	if l.opts.Refused != nil {
		l.opts.Refused(reason)
	}
	l.mu.Lock()
	open, total := 0, l.open
	if a := l.addrs[addr]; a != nil {
		open = a.open
	}
	l.mu.Unlock()
	l.log.refused(addr, reason, open, total, l.opts)
}

// refuse answers a refused connection with the error, apart from the
// accepting goroutine, and closes it; with too many being answered
// already, it only closes it.
func (l *Listener) refuse(c net.Conn, addr, reason string) {
	l.refused(addr, reason)
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.refusing
		c.Close()
		return
	}
	l.answering[c] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	status, code, msg := l.refusal(addr, reason)
	resp := errorResponse(status, code, msg, []string{"Retry-After: 1\r\n"})
	go func() {
		defer l.wg.Done()
		answer(c, resp, l.opts.RefuseTimeout)
		l.mu.Lock()
		delete(l.answering, c)
		l.mu.Unlock()
		<-l.refusing
	}()
}

// Close closes the listener and the refused connections still being
// answered, and waits for their goroutines.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.answering {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

// answer writes resp to c and closes it, within timeout: it shuts down the
// writing side and reads what the client still sends (up to a bound) until
// it hangs up, so that the answer is not lost to a reset.
func answer(c net.Conn, resp []byte, timeout time.Duration) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(resp); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(c, refuseDrain))
}

// hostOf returns the IP address of a client address: its host part.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	s := a.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// refusalLog warns of refused connections, and of idle ones closed to make
// room, at most once per reason every so often, counting those it did not
// tell.
type refusalLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	last   map[string]time.Time
	unsaid map[string]int
}

// reasonEvicted is refusalLog's reason for idle connections closed at
// MaxConns.
const reasonEvicted = "evicted"

// evicted warns that an idle connection was closed to make room for one
// from addr.
func (r *refusalLog) evicted(addr string, maxConns int) {
	r.refused(addr, reasonEvicted, 0, maxConns, ListenerOptions{MaxConns: maxConns})
}

func (r *refusalLog) refused(addr, reason string, open, total int, o ListenerOptions) {
	if r.log == nil {
		return
	}
	r.mu.Lock()
	now := r.now()
	if r.last == nil {
		r.last, r.unsaid = map[string]time.Time{}, map[string]int{}
	}
	if last, ok := r.last[reason]; ok && now.Sub(last) < r.every {
		r.unsaid[reason]++
		r.mu.Unlock()
		return
	}
	n := r.unsaid[reason] + 1
	r.last[reason], r.unsaid[reason] = now, 0
	r.mu.Unlock()
	switch reason {
	case reasonEvicted:
		r.log.Warn("connection limit reached: the connection idle the longest was closed to make room",
			"closed_since_last_warning", n, "addr", addr, "max_conns", o.MaxConns)
	case RefusedPerAddr:
		r.log.Warn("connections refused: too many from one client address",
			"refused_since_last_warning", n, "reason", reason, "addr", addr, "open_from_addr", open, "max_conns_per_addr", o.MaxConnsPerAddr)
	default:
		r.log.Warn("connections refused: as many open as allowed, none idle",
			"refused_since_last_warning", n, "reason", reason, "addr", addr, "open", total, "max_conns", o.MaxConns)
	}
}
