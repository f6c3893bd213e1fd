package ws

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
)

// conn is one WebSocket connection. Its goroutines:
//
//   - the handler's goroutine reads and answers client messages (readLoop);
//     commits are applied there, in the order they arrive;
//   - one per running call, at most maxConcurrentCalls;
//   - one per subscription only while it is behind (a reset, a catch-up,
//     pages of history, or a socket too full to take a commit at once):
//     once current, a subscription waits in its collection's pump, which
//     writes each commit's frame, encoded once for all, without blocking.
//
// Every write goes through sock, which serializes them. All goroutines
// stop when the connection's context is done: close cancels it, recording
// why first.
type conn struct {
	h    *Handler
	ws   *websocket.Conn
	sock *sock
	// remote is the client's address, for the logs.
	remote string
	// id names the connection in the hub's visibility tracking.
	id string
	// principal is who opened the connection; addr is the client's
	// address (the rate-limit key of anonymous principals).
	principal auth.Principal
	addr      string

	// ctx ends when the connection closes.
	ctx    context.Context
	cancel context.CancelFunc

	// callSlots holds one token per running call.
	callSlots chan struct{}
	// tasks counts the call and subscription goroutines; spawnMu and
	// spawnClosed keep any from starting once serve waits for them.
	tasks       sync.WaitGroup
	spawnMu     sync.Mutex
	spawnClosed bool

	// mu guards subs (nil until the first subscribe). It is never held
	// while taking another lock or waiting.
	mu   sync.Mutex
	subs map[string]*subscription

	// bad counts bad messages; the reader's alone.
	bad int

	// lastWrite is when data last went to the client (unix nanoseconds);
	// pingSent when the unanswered ping went (0: none), lastRead when the
	// client last sent something, a pong included.
	lastWrite atomic.Int64
	pingSent  atomic.Int64
	lastRead  atomic.Int64

	closeOnce sync.Once
	// status says how to close; written once, before cancel.
	status closeStatus
	// closed is closed once the close handshake (or cut) is done.
	closed chan struct{}
}

// closeStatus says how a connection ends.
type closeStatus struct {
	code   websocket.StatusCode
	reason string
	// cut means: close without a handshake (the peer is gone, stalled or
	// has already closed).
	cut bool
}

var goingAway = closeStatus{code: websocket.StatusGoingAway, reason: "server shutting down"}

// StatusTokenExpired is the close status of a connection whose token
// expired: the client fetches a fresh token and reconnects.
const StatusTokenExpired websocket.StatusCode = 4401

var tokenExpired = closeStatus{code: StatusTokenExpired, reason: "token expired"}

func newConn(h *Handler, ws *websocket.Conn, s *sock, pr auth.Principal, addr, remote string) *conn {
	// The principal travels in the context, for call handlers.
	ctx, cancel := context.WithCancel(auth.NewContext(context.Background(), pr))
	c := &conn{
		h:         h,
		ws:        ws,
		sock:      s,
		remote:    remote,
		principal: pr,
		addr:      addr,
		id:        "ws-" + strconv.FormatUint(h.nextConnID.Add(1), 10),
		ctx:       ctx,
		cancel:    cancel,
		callSlots: make(chan struct{}, maxConcurrentCalls),
		closed:    make(chan struct{}),
	}
	now := time.Now().UnixNano()
	c.lastWrite.Store(now)
	c.lastRead.Store(now)
	return c
}

// logger returns the handler's logger naming the client. It is made when
// needed: connections log rarely, and an idle one should cost little.
func (c *conn) logger() *slog.Logger { return c.h.log.With("remote", c.remote) }

// close asks the connection to end with st; the first request wins. The
// close handshake runs on a goroutine of its own, so that no caller (a
// pump among them) waits for the client.
func (c *conn) close(st closeStatus) {
	c.closeOnce.Do(func() {
		c.status = st
		c.cancel()
		go func() {
			defer close(c.closed)
			if st.cut {
				c.ws.CloseNow()
			} else {
				c.ws.Close(st.code, st.reason)
			}
		}()
	})
}

// serve reads and answers the client until the connection ends, then waits
// for everything the connection started. ctx is the connection's context.
func (c *conn) serve() {
	c.readLoop(c.ctx)
	c.close(closeStatus{cut: true}) // no-op unless the reader ended silently
	<-c.closed
	c.stopSubscriptions()
	c.spawnMu.Lock()
	c.spawnClosed = true
	c.spawnMu.Unlock()
	c.tasks.Wait()
}

// spawn runs f on a goroutine serve waits for, unless the connection is
// past that point; it reports whether f runs.
func (c *conn) spawn(f func()) bool {
	c.spawnMu.Lock()
	defer c.spawnMu.Unlock()
	if c.spawnClosed {
		return false
	}
	c.tasks.Add(1)
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
	if err := c.sock.write(skip, header, payload); err != nil {
		c.writeFailed(err, len(header)+len(payload))
		return false
	}
	c.lastWrite.Store(time.Now().UnixNano())
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
	if n-c.lastWrite.Load() < int64(c.h.opts.PingInterval) || c.pingSent.Load() != 0 {
		return
	}
	switch res, err := c.sock.tryWrite(nil, [][]byte{protocol.WSPingFrame}); res {
	case written:
		c.pingSent.Store(n)
		c.lastWrite.Store(n)
	case partial:
		c.pingSent.Store(n)
		c.lastWrite.Store(n)
		c.spawn(func() {
			if err := c.sock.flush(); err != nil {
				c.writeFailed(err, len(protocol.WSPingFrame))
			}
		})
	case failed:
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
