package ws

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
)

// subscription follows one collection for a connection: its goroutine
// (run) turns the events of a fanout subscription into messages for the
// writer, in order.
type subscription struct {
	c    *conn
	name string
	sub  *fanout.Subscription

	// cancel ends the context run uses.
	cancel context.CancelFunc
	// stopped is set by stop; the writer drops the subscription's
	// messages still queued, so that nothing of it is written after the
	// server has read the unsubscribe (or the replacing subscribe).
	stopped atomic.Bool
	// sent is the version of the latest message queued for the client;
	// an ack may not be ahead of it.
	sent atomic.Uint64
	// acked is the version the client last acknowledged having rendered.
	acked atomic.Uint64
}

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
		c.send(ctx, outMsg{data: protocol.EncodeError("", protocol.CodeRateLimited,
			fmt.Sprintf("cannot subscribe to %q: this connection has %d subscriptions, the most allowed; unsubscribe from one first", m.Collection, n))})
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
	sctx, cancel := context.WithCancel(ctx)
	s := &subscription{c: c, name: m.Collection, sub: fs, cancel: cancel}
	c.mu.Lock()
	c.subs[m.Collection] = s
	c.mu.Unlock()
	c.tasks.Add(1)
	go func() {
		defer c.tasks.Done()
		s.run(sctx)
	}()
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

// stop ends the subscription; its goroutine returns soon after.
func (s *subscription) stop() {
	s.stopped.Store(true)
	s.cancel()
	s.sub.Close()
}

// run queues the subscription's events for the writer until it is
// stopped or the connection closes. When the queue is full it waits; the
// fanout subscription meanwhile falls behind and, past its buffer, turns
// the backlog into one catch-up.
func (s *subscription) run(ctx context.Context) {
	defer s.cancel()
	for {
		ev, err := s.sub.Next(ctx)
		if err != nil {
			s.ended(ctx, err)
			return
		}
		switch ev.Kind {
		case fanout.EventCommits:
			for _, f := range ev.Frames {
				if !s.queue(ctx, f.WS(), f.Version()) {
					return
				}
			}
		case fanout.EventCatchUp:
			b, err := protocol.EncodeCatchUp(ev.CatchUp)
			if err != nil {
				s.ended(ctx, err)
				return
			}
			if !s.queue(ctx, b, ev.CatchUp.Version) {
				return
			}
		case fanout.EventReset:
			b, err := protocol.EncodeReset(ev.Reset)
			if err != nil {
				s.ended(ctx, err)
				return
			}
			if !s.queue(ctx, b, ev.Reset.Version) {
				return
			}
		}
	}
}

// queue hands one message, which brings the client to version, to the
// writer.
func (s *subscription) queue(ctx context.Context, b []byte, version uint64) bool {
	s.sent.Store(version)
	return s.c.send(ctx, outMsg{data: b, sub: s})
}

// ended handles the end of the fanout subscription: quietly when it was
// stopped or the connection is closing; with 1001 (going away) when the hub
// closed; otherwise the stream can no longer be trusted to be gap-free, so
// the connection closes with 1011 and the client resumes from its cursor
// on a new one.
func (s *subscription) ended(ctx context.Context, err error) {
	switch {
	case s.stopped.Load() || ctx.Err() != nil:
	case errors.Is(err, fanout.ErrClosed):
		s.c.close(goingAway)
	default:
		s.c.log.Error("websocket subscription failed; connection closed", "collection", s.name, "err", err)
		s.c.close(closeStatus{code: websocket.StatusInternalError, reason: "subscription to " + s.name + " failed"})
	}
}
