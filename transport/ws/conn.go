package ws

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/viewsync/viewsync/auth"
)

// conn is one WebSocket connection and the goroutines serving it:
//
//   - the handler's goroutine (serve): pings, then closes and waits;
//   - the reader (readLoop): decodes client messages and answers them;
//     commits are applied here, in the order they arrive;
//   - the writer (writeLoop): the only one writing data messages, from out;
//   - one per subscription (subscription.run), feeding out;
//   - one per running call, at most maxConcurrentCalls.
//
// All of them stop when the connection's context is done: close cancels
// it, recording why first.
type conn struct {
	h   *Handler
	ws  *websocket.Conn
	log *slog.Logger
	// id names the connection in the hub's visibility tracking.
	id string
	// principal is who opened the connection; addr is the client's
	// address (the rate-limit key of anonymous principals).
	principal auth.Principal
	addr      string

	// out is the bounded queue of messages for the writer.
	out chan outMsg
	// callSlots holds one token per running call.
	callSlots chan struct{}
	// tasks counts the subscription and call goroutines.
	tasks sync.WaitGroup

	// mu guards subs. It is never held while taking another lock or
	// waiting.
	mu   sync.Mutex
	subs map[string]*subscription

	// bad counts bad messages; the reader's alone.
	bad int

	// writing is set while the writer is inside a write; writes counts the
	// messages written. keepAlive pings only when neither moved.
	writing atomic.Bool
	writes  atomic.Uint64

	closeOnce sync.Once
	// status says how to close; written once, before cancel.
	status closeStatus
	// cancel ends the connection's context.
	cancel context.CancelFunc
}

// outMsg is one message for the writer.
type outMsg struct {
	data []byte
	// sub is the subscription the message belongs to, nil for answers. A
	// message of a subscription stopped since it was queued is dropped.
	sub *subscription
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

func newConn(h *Handler, ws *websocket.Conn, cancel context.CancelFunc, log *slog.Logger) *conn {
	return &conn{
		h:         h,
		ws:        ws,
		log:       log,
		id:        "ws-" + strconv.FormatUint(h.nextConnID.Add(1), 10),
		out:       make(chan outMsg, h.opts.OutboundQueue),
		callSlots: make(chan struct{}, maxConcurrentCalls),
		subs:      map[string]*subscription{},
		cancel:    cancel,
	}
}

// close asks the connection to end with st; the first request wins.
func (c *conn) close(st closeStatus) {
	c.closeOnce.Do(func() {
		c.status = st
		c.cancel()
	})
}

// serve runs the connection until it ends and every goroutine it started
// has returned. ctx is the connection's context; close cancels it.
func (c *conn) serve(ctx context.Context) {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(ctx)
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.readLoop(ctx)
	}()

	c.keepAlive(ctx, readerDone)
	c.close(closeStatus{cut: true}) // no-op unless the reader ended silently

	// The context is done: once the writer has returned no data message
	// is written, and the close frame can go out.
	<-writerDone
	st := c.status
	if st.cut {
		c.ws.CloseNow()
	} else {
		c.ws.Close(st.code, st.reason)
	}
	<-readerDone
	c.stopSubscriptions()
	c.tasks.Wait()
}

// keepAlive pings the client when nothing was written to it for a whole
// PingInterval, until the reader ends or the context is done. A ping not
// answered within WriteTimeout cuts the connection, unless data went out
// meanwhile. While data flows no ping is needed: it keeps intermediaries
// from timing the connection out, and a client that stops reading it is
// caught by the writer's WriteTimeout. Pinging only idle connections also
// keeps pings from queueing behind big writes (the library gives a control
// frame 5s, and cuts the connection when it cannot be written in time).
func (c *conn) keepAlive(ctx context.Context, readerDone <-chan struct{}) {
	t := time.NewTicker(c.h.opts.PingInterval)
	defer t.Stop()
	last := c.writes.Load()
	for {
		select {
		case <-readerDone:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		written := c.writes.Load()
		busy := c.writing.Load() || written != last
		last = written
		if busy {
			continue
		}
		// Not derived from ctx: cancelling a ping midway through writing
		// its frame would cut the connection before the close handshake.
		pctx, cancel := context.WithTimeout(context.Background(), c.h.opts.WriteTimeout)
		err := c.ws.Ping(pctx)
		cancel()
		if err == nil || ctx.Err() != nil || c.writing.Load() || c.writes.Load() != written {
			continue
		}
		c.log.Info("websocket client did not answer a ping in time; connection cut", "timeout", c.h.opts.WriteTimeout, "err", err)
		c.close(closeStatus{cut: true})
		return
	}
}

// send queues a message for the writer, waiting while the queue is full.
// It returns false when ctx is done first.
func (c *conn) send(ctx context.Context, m outMsg) bool {
	select {
	case c.out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeLoop writes queued messages, each within WriteTimeout, until the
// context is done or a write fails.
func (c *conn) writeLoop(ctx context.Context) {
	for {
		var m outMsg
		select {
		case <-ctx.Done():
			return
		case m = <-c.out:
		}
		if m.sub != nil && m.sub.stopped.Load() {
			continue
		}
		// Not derived from ctx, so that a closing connection finishes the
		// message it is writing and can still send its close frame.
		wctx, cancel := context.WithTimeout(context.Background(), c.h.opts.WriteTimeout)
		c.writing.Store(true)
		err := c.ws.Write(wctx, websocket.MessageText, m.data)
		c.writing.Store(false)
		cancel()
		if err == nil {
			c.writes.Add(1)
		} else {
			if errors.Is(err, context.DeadlineExceeded) {
				c.log.Warn("websocket client stalled: a write took longer than the write timeout; connection cut",
					"timeout", c.h.opts.WriteTimeout, "bytes", len(m.data))
			} else if ctx.Err() == nil {
				c.log.Debug("websocket write failed", "err", err)
			}
			c.close(closeStatus{cut: true})
			return
		}
	}
}

// stopSubscriptions stops every subscription of the connection.
func (c *conn) stopSubscriptions() {
	c.mu.Lock()
	subs := c.subs
	c.subs = map[string]*subscription{}
	c.mu.Unlock()
	for name, s := range subs {
		s.stop()
		c.h.hub.Forget(c.id, name)
	}
}
