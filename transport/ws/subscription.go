package ws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/live"
)

// subscription follows one collection for a connection. While it is
// current it waits in the collection's pump (package live), which writes
// each commit's frame without blocking; while it is behind — its first
// reset, a catch-up, pages of history, or a socket too full — a goroutine
// of its own (catchUp) writes under the write timeout, and returns it to
// the pump once it is current.
type subscription struct {
	member live.Member

	c    *conn
	name string
	sub  *fanout.Subscription

	// stopped is set by stop, under the socket's write lock: nothing of
	// the subscription is written after the server has read the
	// unsubscribe (or the replacing subscribe).
	stopped atomic.Bool
	// sent is the version of the latest message written to the client;
	// an ack may not be ahead of it.
	sent atomic.Uint64
	// acked is the version the client last acknowledged having rendered.
	acked atomic.Uint64
}

var _ live.Stream = (*subscription)(nil)

// subscription returns the connection's subscription to name, or nil.
func (c *conn) subscription(name string) *subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[name]
}

// subscribe starts a subscription, replacing the one to the same
// collection if any.
func (c *conn) subscribe(ctx context.Context, m *protocol.SubscribeMessage) {
	c.mu.Lock()
	old, n := c.subs[m.Collection], len(c.subs)
	c.mu.Unlock()
	if old == nil && n >= c.h.opts.MaxSubscriptions {
		c.writeMessage(protocol.EncodeError("", protocol.CodeRateLimited,
			fmt.Sprintf("cannot subscribe to %q: this connection has %d subscriptions, the most allowed; unsubscribe from one first", m.Collection, n)))
		return
	}
	if err := c.admit(auth.Read, m.Collection); err != nil {
		c.answerError(ctx, "", err)
		return
	}
	col, err := c.h.hub.Collection(m.Collection)
	if err != nil {
		c.answerError(ctx, "", err)
		return
	}
	fs, err := col.Subscribe(m.Cursor())
	if err != nil {
		if errors.Is(err, viewsync.ErrClosed) || errors.Is(err, fanout.ErrClosed) {
			c.close(goingAway)
			return
		}
		c.answerError(ctx, "", fmt.Errorf("subscribe to %q: %w", m.Collection, err))
		return
	}
	// The old subscription stops after the new one holds the collection's
	// topic, so that the topic is not torn down and rebuilt in between.
	if old != nil {
		old.stop()
	}
	s := &subscription{c: c, name: m.Collection, sub: fs}
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]*subscription{}
	}
	c.subs[m.Collection] = s
	c.mu.Unlock()
	c.spawn(s.catchUp)
}

// unsubscribe stops a subscription.
func (c *conn) unsubscribe(ctx context.Context, m *protocol.UnsubscribeMessage) {
	c.mu.Lock()
	s := c.subs[m.Collection]
	delete(c.subs, m.Collection)
	c.mu.Unlock()
	if s == nil {
		c.answerError(ctx, "", fmt.Errorf("%w: unsubscribe from %q, which this connection does not subscribe to", viewsync.ErrNotFound, m.Collection))
		return
	}
	s.stop()
	c.h.hub.Forget(c.id, m.Collection)
}

// stop ends the subscription: nothing of it is written once stop returns.
func (s *subscription) stop() {
	s.c.sock.mu.Lock()
	s.stopped.Store(true)
	s.c.sock.mu.Unlock()
	s.c.h.pumps.Remove(s)
	s.sub.Close()
}

func (s *subscription) isStopped() bool { return s.stopped.Load() }

// Changed implements live.Stream.
func (s *subscription) Changed() <-chan struct{} { return s.sub.Changed() }

// Member implements live.Stream.
func (s *subscription) Member() *live.Member { return &s.member }

// Tick implements live.Stream; keep-alives are the connection's.
func (s *subscription) Tick(time.Time) func() { return nil }

// Sweep implements live.Stream: it writes the frames of the commits the
// topic's buffer holds after the cursor, in one non-blocking writev.
func (s *subscription) Sweep() (leave func()) {
	if s.stopped.Load() || s.c.ctx.Err() != nil {
		return func() {}
	}
	ev, err := s.sub.TryNext()
	switch {
	case errors.Is(err, fanout.ErrWouldBlock):
		return nil
	case errors.Is(err, fanout.ErrBehind):
		return s.behind(nil)
	case err != nil:
		return func() { s.ended(err) }
	}
	var stack [16][]byte
	bufs := stack[:0]
	for _, f := range ev.Frames {
		bufs = append(bufs, f.WSFrame())
	}
	// Sent before it is written: the client may ack it as soon as it has
	// it.
	s.sent.Store(ev.Frames[len(ev.Frames)-1].Version())
	res, err := s.c.sock.tryWrite(s.isStopped, bufs)
	clear(bufs)
	switch res {
	case written:
		s.c.lastWrite.Store(time.Now().UnixNano())
		clear(ev.Frames)
		return nil
	case skipped:
		return func() {}
	case failed:
		return func() { s.c.writeFailed(err, 0) }
	case partial:
		// The rest is pending on the socket; the catch-up goroutine
		// flushes it under the write timeout.
		clear(ev.Frames)
		return s.behind(nil)
	}
	// busy: another write holds the socket; write these on our own.
	frames := append([]*fanout.Frame(nil), ev.Frames...)
	clear(ev.Frames)
	return s.behind(frames)
}

// behind returns the leave function that moves s to its own goroutine,
// writing frames first.
func (s *subscription) behind(frames []*fanout.Frame) func() {
	return func() { s.c.spawn(func() { s.catchUpFrom(frames) }) }
}

// catchUp brings the client up to date on the subscription's own
// goroutine, then hands it to the pump.
func (s *subscription) catchUp() { s.catchUpFrom(nil) }

func (s *subscription) catchUpFrom(frames []*fanout.Frame) {
	c := s.c
	if err := c.sock.flush(); err != nil {
		c.writeFailed(err, 0)
		return
	}
	if len(frames) > 0 && !s.writeFrames(frames) {
		return
	}
	for {
		if s.stopped.Load() || c.ctx.Err() != nil {
			return
		}
		ev, err := s.sub.NextNow(c.ctx)
		switch {
		case errors.Is(err, fanout.ErrWouldBlock):
			c.h.pumps.Add(s.name, s) // does nothing once stopped
			return
		case err != nil:
			s.ended(err)
			return
		}
		switch ev.Kind {
		case fanout.EventCommits:
			ok := s.writeFrames(ev.Frames)
			clear(ev.Frames)
			if !ok {
				return
			}
		case fanout.EventCatchUp:
			b, err := protocol.EncodeCatchUp(ev.CatchUp)
			if err != nil {
				s.ended(err)
				return
			}
			if !s.writeMessage(b, ev.CatchUp.Version) {
				return
			}
		case fanout.EventReset:
			b, err := protocol.EncodeReset(ev.Reset)
			if err != nil {
				s.ended(err)
				return
			}
			if !s.writeMessage(b, ev.Reset.Version) {
				return
			}
		}
	}
}

// writeFrames writes commit frames, blocking, unless stopped: each frame's
// head, then the commit's fields as the frame holds them, so that a page
// read from the store for this client is written without a copy of its
// values.
func (s *subscription) writeFrames(frames []*fanout.Frame) bool {
	heads := make([]byte, 0, 96*len(frames))
	bufs := make([][]byte, 0, 2*len(frames))
	for _, f := range frames {
		start := len(heads)
		heads = f.AppendWSHead(heads)
		bufs = append(bufs, heads[start:len(heads):len(heads)], f.WSBody())
	}
	s.sent.Store(frames[len(frames)-1].Version())
	if err := s.c.sock.write(s.isStopped, bufs...); err != nil {
		s.c.writeFailed(err, 0)
		return false
	}
	s.c.lastWrite.Store(time.Now().UnixNano())
	return true
}

// writeMessage writes one message that brings the client to version.
func (s *subscription) writeMessage(b []byte, version uint64) bool {
	s.sent.Store(version)
	return s.c.writeFrame(s.isStopped, b)
}

// ended handles the end of the fanout subscription: quietly when it was
// stopped or the connection is closing; with 1001 (going away) when the hub
// closed; otherwise the stream can no longer be trusted to be gap-free, so
// the connection closes with 1011 and the client resumes from its cursor
// on a new one.
func (s *subscription) ended(err error) {
	switch {
	case s.stopped.Load() || s.c.ctx.Err() != nil:
	case errors.Is(err, fanout.ErrClosed):
		s.c.close(goingAway)
	case errors.Is(err, fanout.ErrBusy):
		// 1013 Try Again Later: the client resumes from its cursors.
		s.c.close(closeStatus{code: statusTryAgainLater, reason: "too many clients reading history; resume later"})
	default:
		s.c.logger().Error("websocket subscription failed; connection closed", "collection", s.name, "err", err)
		s.c.close(closeStatus{code: gws.StatusInternalServerError, reason: "subscription to " + s.name + " failed"})
	}
}

// statusTryAgainLater is the WebSocket close code 1013 (RFC 6455's
// registry: Try Again Later).
const statusTryAgainLater = 1013

// isTimeout reports whether err is a write deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
