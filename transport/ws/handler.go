package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/cors"
	"github.com/viewsync/viewsync/transport/internal/live"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// Handler serves WebSocket connections (GET /v1/ws). Make one with New.
type Handler struct {
	hub *viewsync.Hub
	// nextConnID numbers connections.
	nextConnID atomic.Uint64
	opts       Options
	log        *slog.Logger
	// upgrader answers upgrades that offer no subprotocol we speak,
	// upgraderV1 those that offer viewsync's (it says so in the answer).
	upgrader, upgraderV1 gws.HTTPUpgrader
	// origins are Options.OriginPatterns.
	origins *cors.Matcher

	// mu guards the fields below. It is never held while taking another
	// lock or waiting, so it takes no part in any lock order.
	mu sync.Mutex
	// slots counts the connections being served, from before the upgrade
	// to the end of their goroutines; at most Options.MaxConnections.
	slots int
	// conns holds the upgraded connections.
	conns map[*conn]struct{}
	// shuttingDown is set by Shutdown: no connection is accepted after.
	shuttingDown bool
	// served counts slots too, for Shutdown to wait on. Add is only called
	// under mu with shuttingDown unset, so never after Shutdown's Wait.
	served sync.WaitGroup
	// keeping is set while the keep-alive goroutine runs (it runs while
	// there are connections); keepWake wakes it when the last one goes.
	keeping  bool
	keepWake chan struct{}

	// format is the encoder's, shared by every subscription without an
	// id; formats those of subscriptions with one.
	format  *push.Format
	formats formats
	// pumps holds the current subscriptions of each collection.
	pumps live.Pumps
	// readable tells when a connection has something to read, so that an
	// idle connection holds no goroutine.
	readable live.Watcher
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler serving hub over WebSocket. A nil opts means the
// defaults.
func New(hub *viewsync.Hub, opts *Options) (*Handler, error) {
	if hub == nil {
		return nil, errors.New("ws: nil hub")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.PingInterval < 0 || o.WriteTimeout < 0 || o.MaxMessageBytes < 0 || o.MaxSubscriptions < 0 ||
		o.MaxConnections < 0 || o.MaxBadMessages < 0 || o.FlushInterval < 0 {
		return nil, errors.New("ws: negative option")
	}
	origins, err := cors.ParseOriginPatterns(o.OriginPatterns)
	if err != nil {
		return nil, fmt.Errorf("ws: OriginPatterns: %w", err)
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxBadMessages == 0 {
		o.MaxBadMessages = DefaultMaxBadMessages
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		hub:     hub,
		opts:    o,
		log:     o.Logger,
		origins: origins,
		format:  push.NewFormat(encoder{}),
		// Subscriptions tick only to move filtered views' cursors.
		// Subscriptions tick (a filtered view's progress) four times a
		// ping interval, as the streams' do.
		pumps:    live.Pumps{Tick: max(o.PingInterval/4, 10*time.Millisecond), Interval: o.FlushInterval},
		conns:    map[*conn]struct{}{},
		keepWake: make(chan struct{}, 1),
	}
	h.upgrader, h.upgraderV1 = upgraders(o.WriteTimeout)
	return h, nil
}

// upgraders returns the upgraders of a handler whose writes take up to
// timeout: one for clients that offer no subprotocol we speak, one that
// answers with viewsync's.
func upgraders(timeout time.Duration) (plain, v1 gws.HTTPUpgrader) {
	plain = gws.HTTPUpgrader{Timeout: timeout}
	v1 = plain
	v1.Header = http.Header{"Sec-WebSocket-Protocol": {protocol.WSSubprotocol}}
	return plain, v1
}

// Connections returns how many WebSocket connections are open.
func (h *Handler) Connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// ServeHTTP upgrades the request to a WebSocket connection and returns;
// the connection is served from then on by goroutines started when the
// client sends something (see conn).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, protocol.CodeMethodNotAllowed, r.Method+" is not allowed here; allowed: GET (a WebSocket upgrade)")
		return
	}
	if _, err := protocol.ParseQuery(r.URL.RawQuery); err != nil {
		writeError(w, protocol.CodeBadRequest, err.Error())
		return
	}
	pr, err := h.opts.Policy.Principal(r)
	if err != nil {
		auth.WriteDenied(w, err)
		return
	}
	if err := h.reserve(); err != nil {
		w.Header().Set("Retry-After", strconv.Itoa(5))
		writeError(w, protocol.CodeUnavailable, err.Error())
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			h.release()
		}
	}()

	v1, ok := handshake(w, r)
	if !ok {
		return
	}
	if origin := r.Header.Get("Origin"); !h.originAllowed(origin, r.Host) {
		writeError(w, protocol.CodeForbidden, fmt.Sprintf("origin %q may not open a WebSocket here; allowed: this server's own pages and its configured origins", origin))
		return
	}
	// The subprotocol is negotiated here, not by the upgrader, which
	// would refuse a malformed offer in plain text.
	up := h.upgrader
	if v1 {
		up = h.upgraderV1
	}
	nc, brw, _, err := up.Upgrade(r, w)
	if err != nil {
		// handshake took what the upgrader takes, so the upgrader failed
		// to hijack the connection or to write the answer: it has
		// answered what it could, in plain text.
		h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		if nc != nil {
			nc.Close()
		}
		return
	}
	s := newSock(nc, brw.Reader, h.opts.WriteTimeout)
	if !v1 {
		s.refuse(closeStatus{code: gws.StatusProtocolError, reason: "subprotocol " + protocol.WSSubprotocol + " required"})
		return
	}
	c := newConn(h, s, pr, limit.ClientAddr(r), r.RemoteAddr)
	// The connection is served by no goroutine of its own: a watcher
	// calls it when the client sent something, and this goroutine
	// returns, freeing the HTTP server's state for the request (its
	// buffers, this goroutine's grown stack). The client address's slot in
	// a per-address limit stays taken until the connection ends.
	handedOff = true
	slot := limit.Keep(r.Context())
	c.end = func() {
		h.unregister(c)
		if slot != nil {
			slot()
		}
		h.release()
	}
	if !h.register(c) {
		s.refuse(goingAway)
		c.end()
		return
	}
	c.start()
}

// originAllowed reports whether a page of origin may connect to host: no
// Origin (not a browser), the server's own host (cors.SameOrigin), or an
// origin the OriginPatterns admit (cors.Matcher.Allow), by the rules of
// the CORS middleware.
func (h *Handler) originAllowed(origin, host string) bool {
	return origin == "" || cors.SameOrigin(origin, host) || h.origins.Allow(origin)
}

// Shutdown makes the handler refuse new connections (503 unavailable) and
// closes every open one with status 1001 (going away); clients reconnect,
// to this server or another, and resume from their cursors. It waits until
// every connection's goroutines have ended, or ctx is done; a client that
// does not answer the close handshake holds its connection up to
// closeWait (5s) before it is cut.
//
// Hub.Close alone closes, with the same status, the connections that have
// a subscription (their subscriptions end); Shutdown also reaches those
// that only commit and call, and those still being upgraded. A server
// calls both when it stops, e.g. from http.Server.RegisterOnShutdown:
//
//	srv.RegisterOnShutdown(func() {
//		hub.Close()
//		wsHandler.Shutdown(context.Background())
//	})
//
// http.Server.Shutdown does not wait for hijacked connections such as
// these: call Shutdown with a deadline where the server must wait for them.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.shuttingDown = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.close(goingAway)
	}
	done := make(chan struct{})
	go func() {
		h.served.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	errShuttingDown = errors.New("server shutting down")
	errTooMany      = errors.New("too many WebSocket connections; try again later")
)

// reserve takes a connection slot.
func (h *Handler) reserve() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.shuttingDown:
		return errShuttingDown
	case h.slots >= h.opts.MaxConnections:
		return errTooMany
	}
	h.slots++
	h.served.Add(1)
	return nil
}

func (h *Handler) release() {
	h.mu.Lock()
	h.slots--
	h.mu.Unlock()
	h.served.Done()
}

// register records an upgraded connection, unless shutting down.
func (h *Handler) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return false
	}
	h.conns[c] = struct{}{}
	if !h.keeping {
		h.keeping = true
		go h.keepAlive()
	}
	return true
}

// keepAlive pings idle connections, cuts unresponsive ones and closes
// those whose token expired: one goroutine for all, running while there
// are connections.
func (h *Handler) keepAlive() {
	t := time.NewTicker(max(min(h.opts.PingInterval, h.opts.WriteTimeout)/4, 10*time.Millisecond))
	defer t.Stop()
	var conns []*conn
	for {
		var now time.Time
		select {
		case now = <-t.C:
		case <-h.keepWake:
			now = time.Now()
		}
		h.mu.Lock()
		if len(h.conns) == 0 {
			h.keeping = false
			h.mu.Unlock()
			return
		}
		conns = conns[:0]
		for c := range h.conns {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		for _, c := range conns {
			c.keepAlive(now)
		}
		clear(conns)
	}
}

func (h *Handler) unregister(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	if len(h.conns) == 0 {
		select {
		case h.keepWake <- struct{}{}:
		default:
		}
	}
}

// writeError answers a plain HTTP request with the contract's error body,
// with the status of code.
func writeError(w http.ResponseWriter, code protocol.Code, msg string) {
	protocol.WriteError(w, 0, code, msg)
}
