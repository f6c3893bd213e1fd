package ws

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// conn is one WebSocket connection. No goroutine waits on it while it is
// idle. Its goroutines:
//
//   - read, started by the handler's watcher when the client has sent
//     something: it answers every message that arrived, in order (commits
//     are applied there, one at a time), then watches the connection
//     again. Where sockets cannot be watched, one goroutine reads all
//     along instead;
//   - one per running call, at most maxConcurrentCalls;
//   - one per subscription only while it is behind (a reset, a catch-up,
//     pages of history, or a socket too full to take a commit at once):
//     once current, a subscription waits in its collection's pump, which
//     writes each commit's frame, encoded once for all, without blocking;
//   - finish, once the connection is closing: the close handshake, then
//     the end of everything above.
//
// Every write goes through sock, which serializes them. All goroutines
// stop when the connection's context is done: close cancels it, recording
// why first.
type conn struct {
	h    *Handler
	sock *sock
	// remote is the client's address, for the logs.
	remote string
	// id names the connection in the hub's visibility tracking.
	id string
	// principal is who opened the connection; addr is the client's
	// address (the rate-limit key of anonymous principals).
	principal auth.Principal
	addr      string
	// end is called once the connection and all its goroutines are done.
	end func()

	// ctx ends when the connection closes.
	ctx    context.Context
	cancel context.CancelFunc

	// callSlots holds one token per running call.
	callSlots chan struct{}
	// tasks counts the goroutines of the connection but finish; spawnMu
	// and spawnClosed keep any from starting once finish waits for them.
	tasks       sync.WaitGroup
	spawnMu     sync.Mutex
	spawnClosed bool

	// watchMu guards unwatched, set by finish once the socket is no longer
	// watched, so that no reader watches it again.
	watchMu   sync.Mutex
	unwatched bool

	// mu guards subs (nil until the first subscribe) and presence (nil
	// until the connection publishes or follows presence). It is never
	// held while taking another lock or waiting, but the presence
	// registry's (Open).
	mu       sync.Mutex
	subs     map[string]*subscription
	presence *presence.Session

	// bad counts bad messages; the reader's alone (one reads at a time).
	bad int

	// pingSent is when the unanswered ping went (unix nanoseconds; 0:
	// none), lastRead when the client last sent something, a pong
	// included. When data last went to the client, the sock knows.
	pingSent atomic.Int64
	lastRead atomic.Int64

	closeOnce sync.Once
	// peerGone is closed once nothing more will be read from the client:
	// its close frame arrived, or reading failed.
	peerGone     chan struct{}
	peerGoneOnce sync.Once
}

// closeStatus says how a connection ends.
type closeStatus struct {
	code   gws.StatusCode
	reason string
	// cut means: close without a handshake (the peer is gone, stalled or
	// has already closed).
	cut bool
}

var goingAway = closeStatus{code: gws.StatusGoingAway, reason: "server shutting down"}

// StatusTokenExpired is the close status of a connection whose token
// expired: the client fetches a fresh token and reconnects.
const StatusTokenExpired = 4401

var tokenExpired = closeStatus{code: StatusTokenExpired, reason: "token expired"}

// closeWait bounds the close handshake: how long a closing connection waits
// for the client's close frame before it is cut.
const closeWait = 5 * time.Second

func newConn(h *Handler, s *sock, pr auth.Principal, addr, remote string) *conn {
	// The principal travels in the context, for call handlers.
	ctx, cancel := context.WithCancel(auth.NewContext(context.Background(), pr))
	c := &conn{
		h:         h,
		sock:      s,
		remote:    remote,
		principal: pr,
		addr:      addr,
		id:        "ws-" + strconv.FormatUint(h.nextConnID.Add(1), 10),
		ctx:       ctx,
		cancel:    cancel,
		callSlots: make(chan struct{}, maxConcurrentCalls),
		peerGone:  make(chan struct{}),
	}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// logger returns the handler's logger naming the client. It is made when
// needed: connections log rarely, and an idle one should cost little.
func (c *conn) logger() *slog.Logger { return c.h.log.With("remote", c.remote) }

// start serves the connection: what the client sent with its upgrade
// request is read at once; then the connection is watched.
func (c *conn) start() {
	if len(c.sock.pre) == 0 && c.watch() {
		return
	}
	c.spawn(func() { c.read(len(c.sock.pre) > 0) })
}

// readable is the watcher's callback: the client has sent something.
func (c *conn) readable() {
	if !c.enter() {
		return
	}
	defer c.tasks.Done()
	c.read(true)
}

// read reads and answers what the client sent, then watches the connection
// again. ready says bytes are known to be there; where the connection
// cannot be watched, read goes on reading, waiting for the client.
func (c *conn) read(ready bool) {
	for c.readAvailable(ready) {
		if c.watch() {
			return
		}
		ready = false
	}
}

// watch asks the handler's watcher to call readable when the client sends
// something. It reports false when the connection cannot be watched; true
// too once the connection is no longer read (finish).
func (c *conn) watch() bool {
	if c.sock.Raw() == nil {
		return false
	}
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	return c.unwatched || c.h.readable.Watch(c.sock.Raw(), c.readable)
}

// close asks the connection to end with st; the first request wins. The
// close handshake runs on a goroutine of its own (finish), so that no
// caller (a pump among them) waits for the client.
func (c *conn) close(st closeStatus) {
	c.closeOnce.Do(func() {
		c.cancel()
		go c.finish(st)
	})
}

// noMoreReads records that nothing more will be read from the client.
func (c *conn) noMoreReads() {
	c.peerGoneOnce.Do(func() { close(c.peerGone) })
}

// finish ends the connection: it sends the close frame of st and waits, up
// to closeWait, for the client's (unless st cuts), closes the socket, then
// stops the subscriptions and waits for every goroutine of the
// connection before calling end.
func (c *conn) finish(st closeStatus) {
	if !st.cut {
		if c.sock.WriteBuffers(nil, closeFrame(st)) == nil {
			t := time.NewTimer(closeWait)
			select {
			case <-c.peerGone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	c.watchMu.Lock()
	c.unwatched = true
	if c.sock.Raw() != nil {
		c.h.readable.Unwatch(c.sock.Raw())
	}
	c.watchMu.Unlock()
	c.sock.Close()
	c.stopSubscriptions()
	c.closePresence()
	c.spawnMu.Lock()
	c.spawnClosed = true
	c.spawnMu.Unlock()
	c.tasks.Wait()
	c.end()
}

// enter counts the calling goroutine among the connection's tasks, unless
// the connection is past that point; it reports whether it did (the
// caller then calls tasks.Done when it returns).
func (c *conn) enter() bool {
	c.spawnMu.Lock()
	defer c.spawnMu.Unlock()
	if c.spawnClosed {
		return false
	}
	c.tasks.Add(1)
	return true
}

// spawn runs f on a goroutine finish waits for, unless the connection is
// past that point; it reports whether f runs.
func (c *conn) spawn(f func()) bool {
	if !c.enter() {
		return false
	}
	go func() {
		defer c.tasks.Done()
		f()
	}()
	return true
}

// writeMessage writes one message, framed, under the write timeout. A
// failed write cuts the connection.
func (c *conn) writeMessage(data []byte) bool { return c.writeFrame(nil, data) }

// writeFrame writes payload as one text frame unless skip says not to; it
// reports whether the connection goes on.
func (c *conn) writeFrame(skip func() bool, payload []byte) bool {
	if c.ctx.Err() != nil {
		return false
	}
	header := protocol.AppendWSFrameHeader(make([]byte, 0, 10), len(payload))
	if err := c.sock.WriteBuffers(skip, header, payload); err != nil {
		c.writeFailed(err, len(header)+len(payload))
		return false
	}
	return true
}

// writeFailed cuts a connection whose write failed, saying why.
func (c *conn) writeFailed(err error, n int) {
	if c.ctx.Err() == nil {
		if isTimeout(err) {
			c.logger().Warn("websocket client stalled: a write took longer than the write timeout; connection cut",
				"timeout", c.h.opts.WriteTimeout, "bytes", n)
		} else {
			c.logger().Debug("websocket write failed", "err", err)
		}
	}
	c.close(closeStatus{cut: true})
}

// keepAlive pings the connection when nothing was written to it for a
// ping interval, cuts it when a ping went unanswered (nothing read since)
// for the write timeout, and closes it when its token expired. It never
// blocks: a socket busy with other writes needs no ping.
func (c *conn) keepAlive(now time.Time) {
	if !c.principal.Expires.IsZero() && !now.Before(c.principal.Expires) {
		c.close(tokenExpired)
		return
	}
	n := now.UnixNano()
	if sent := c.pingSent.Load(); sent != 0 {
		if c.lastRead.Load() >= sent {
			c.pingSent.Store(0)
		} else if n-sent > int64(c.h.opts.WriteTimeout) {
			c.logger().Info("websocket client did not answer a ping in time; connection cut", "timeout", c.h.opts.WriteTimeout)
			c.close(closeStatus{cut: true})
			return
		}
	}
	if now.Sub(c.sock.LastWrite()) < c.h.opts.PingInterval || c.pingSent.Load() != 0 {
		return
	}
	switch res, err := c.sock.TryWrite(nil, [][]byte{protocol.WSPingFrame}); res {
	case push.Written:
		c.pingSent.Store(n)
	case push.Partial:
		c.pingSent.Store(n)
		c.spawn(func() {
			if err := c.sock.Flush(); err != nil {
				c.writeFailed(err, len(protocol.WSPingFrame))
			}
		})
	case push.Failed:
		c.writeFailed(err, len(protocol.WSPingFrame))
	}
}

// stopSubscriptions stops every subscription of the connection.
func (c *conn) stopSubscriptions() {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for name, s := range subs {
		s.stop()
		c.h.hub.Forget(c.id, name)
	}
}
