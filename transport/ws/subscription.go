package ws

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// subscription follows one collection for a connection: a push.Sub,
// which waits in the collection's pump while it is current and has a
// goroutine of its own (the connection's) while it is behind — its first
// reset, a catch-up, pages of history, or a socket too full.
type subscription struct {
	c    *conn
	name string
	// sub is the client's id of the subscription, empty when it is known
	// by its collection's name.
	sub string
	p   *push.Sub
	// pres follows the collection's presence, when the client asked.
	pres *push.Presence

	// acked is the version the client last acknowledged having rendered.
	acked atomic.Uint64
}

var _ push.Owner = (*subscription)(nil)

// subKey is the key of a subscription in a connection's map: its
// collection's name, or the client's id of it.
func subKey(collection, sub string) string {
	if sub != "" {
		return "#" + sub
	}
	return collection
}

// subscription returns the connection's subscription to collection named
// sub (or by the collection alone), or nil.
func (c *conn) subscription(collection, sub string) *subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[subKey(collection, sub)]; s != nil && s.name == collection {
		return s
	}
	return nil
}

// subscribe starts a subscription, replacing the one with the same key
// (its id, or the collection when it has none) if any.
func (c *conn) subscribe(ctx context.Context, m *protocol.SubscribeMessage) {
	key := subKey(m.Collection, m.Sub)
	c.mu.Lock()
	old, n := c.subs[key], len(c.subs)
	c.mu.Unlock()
	if old == nil && n >= c.h.opts.MaxSubscriptions {
		c.writeMessage(protocol.EncodeError(protocol.MessageID{}, m.Sub, protocol.CodeRateLimited,
			fmt.Sprintf("cannot subscribe to %q: this connection has %d subscriptions, the most allowed; unsubscribe from one first", m.Collection, n)))
		return
	}
	if err := c.admit(auth.Read, m.Collection); err != nil {
		c.answerSubError(ctx, m.Sub, err)
		return
	}
	col, err := c.h.hub.Collection(m.Collection)
	if err != nil {
		c.answerSubError(ctx, m.Sub, err)
		return
	}
	if len(m.Where) > 0 {
		where, err := c.h.hub.ParseFilter(m.Where)
		if err != nil {
			c.answerSubError(ctx, m.Sub, fmt.Errorf("where: %w", err))
			return
		}
		col = col.Where(where)
	}
	// The client's view, within the rows the principal may read.
	col = col.Where(c.principal.Where(auth.Read, m.Collection))
	fs, err := col.Subscribe(m.Cursor())
	if err != nil {
		if errors.Is(err, viewsync.ErrClosed) || errors.Is(err, fanout.ErrClosed) {
			c.close(goingAway)
			return
		}
		c.answerSubError(ctx, m.Sub, fmt.Errorf("subscribe to %q: %w", m.Collection, err))
		return
	}
	// The old subscription stops after the new one holds the collection's
	// topic, so that the topic is not torn down and rebuilt in between.
	if old != nil {
		old.stop()
	}
	s := &subscription{c: c, name: m.Collection, sub: m.Sub}
	s.p = push.NewSub(fs, c.sock.Sock, c.h.formatFor(m.Sub), &c.h.pumps, m.Collection, s)
	if m.Presence {
		if s.pres, err = c.followPresence(col, m.Sub); err != nil {
			s.p.Stop()
			if old != nil {
				c.mu.Lock()
				if c.subs[key] == old {
					delete(c.subs, key)
				}
				c.mu.Unlock()
			}
			c.answerSubError(ctx, m.Sub, err)
			return
		}
	}
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]*subscription{}
	}
	c.subs[key] = s
	c.mu.Unlock()
	c.spawn(s.p.Run)
}

// unsubscribe stops a subscription.
func (c *conn) unsubscribe(ctx context.Context, m *protocol.UnsubscribeMessage) {
	key := subKey(m.Collection, m.Sub)
	c.mu.Lock()
	s := c.subs[key]
	if s != nil && s.name == m.Collection {
		delete(c.subs, key)
	} else {
		s = nil
	}
	c.mu.Unlock()
	if s == nil {
		c.answerSubError(ctx, m.Sub, fmt.Errorf("%w: unsubscribe from %s, which this connection does not subscribe to", viewsync.ErrNotFound, describeSub(m.Collection, m.Sub)))
		return
	}
	s.stop()
	c.h.hub.Forget(c.id, m.Collection)
}

// describeSub names a subscription in messages.
func describeSub(collection, sub string) string {
	if sub == "" {
		return strconv.Quote(collection)
	}
	return fmt.Sprintf("%q (subscription %q)", collection, sub)
}

// stop ends the subscription: nothing of it is written once stop returns.
func (s *subscription) stop() {
	s.pres.Stop()
	s.p.Stop()
}

// Go implements push.Owner: the connection waits for the goroutine.
func (s *subscription) Go(f func()) bool { return s.c.spawn(f) }

// Context implements push.Owner: the connection's.
func (s *subscription) Context() (context.Context, context.CancelFunc) {
	return s.c.ctx, func() {}
}

// Closing implements push.Owner.
func (s *subscription) Closing() bool { return s.c.ctx.Err() != nil }

// Tick implements push.Owner; keep-alives are the connection's.
func (s *subscription) Tick(time.Time) func() { return nil }

// Ended implements push.Owner: quietly when the connection is closing;
// with 1001 (going away) when the hub closed; with 1013 (try again later)
// when history is busy; after a failed write, as the connection's writes
// do. Otherwise the stream can no longer be trusted to be gap-free, so the
// connection closes with 1011 and the client resumes from its cursor on a
// new one.
func (s *subscription) Ended(err error) {
	var we *push.WriteError
	switch {
	case s.c.ctx.Err() != nil:
	case errors.As(err, &we):
		s.c.writeFailed(we.Err, 0)
	case errors.Is(err, fanout.ErrClosed):
		s.c.close(goingAway)
	case errors.Is(err, fanout.ErrBusy):
		// 1013 Try Again Later: the client resumes from its cursors.
		s.c.close(closeStatus{code: statusTryAgainLater, reason: "too many clients reading history; resume later"})
	case errors.Is(err, push.ErrRemoved):
		// Stopped meanwhile.
	default:
		s.c.logger().Error("websocket subscription failed; connection closed", "collection", s.name, "err", err)
		s.c.close(closeStatus{code: gws.StatusInternalServerError, reason: "subscription to " + s.name + " failed"})
	}
}

// statusTryAgainLater is the WebSocket close code 1013 (RFC 6455's
// registry: Try Again Later).
const statusTryAgainLater = 1013

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool { return push.IsTimeout(err) }
