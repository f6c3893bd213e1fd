package ws

import (
	"context"
	"fmt"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// A WebSocket connection is one presence session: it publishes with
// presence messages and follows a collection's presence with a
// subscription that asks for it ("presence":true). Its presence leaves
// when the connection ends, or after the TTL without a set or heartbeat.

// presenceSession returns the connection's presence session, opening it
// on first use.
func (c *conn) presenceSession() (*presence.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.presence == nil {
		s, err := c.h.hub.Presence().Open(push.Subject(c.principal))
		if err != nil {
			return nil, fmt.Errorf("presence: %w", err)
		}
		c.presence = s
	}
	return c.presence, nil
}

// closePresence closes the connection's presence session, if any: its
// presence leaves at once.
func (c *conn) closePresence() {
	c.mu.Lock()
	s := c.presence
	c.presence = nil
	c.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// followPresence follows col's presence for a subscription with id sub.
func (c *conn) followPresence(col *viewsync.Collection, sub string) (*push.Presence, error) {
	sess, err := c.presenceSession()
	if err != nil {
		return nil, err
	}
	return push.FollowPresence(col, c.principal, sess, sub, func(msgs [][]byte) error {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		bufs := make([][]byte, 0, 2*len(msgs))
		for _, m := range msgs {
			bufs = append(bufs, protocol.AppendWSFrameHeader(make([]byte, 0, 10), len(m)), m)
		}
		return c.sock.WriteBuffers(nil, bufs...)
	}, func(err error) { c.writeFailed(err, 0) })
}

// publishPresence applies a presence message: a set (on a record the
// principal may read), a heartbeat or a leave. A set or leave with an id
// is answered with a result; a heartbeat for a collection the connection
// is not present in is answered not_found (its TTL passed: set it again).
func (c *conn) publishPresence(ctx context.Context, m *protocol.PresenceMessage) {
	if err := c.admit(auth.Read, m.Collection); err != nil {
		c.answerError(ctx, m.ID, err)
		return
	}
	col, err := c.h.hub.Collection(m.Collection)
	if err != nil {
		c.answerError(ctx, m.ID, err)
		return
	}
	sess, err := c.presenceSession()
	if err != nil {
		c.answerError(ctx, m.ID, err)
		return
	}
	switch m.Action {
	case protocol.PresenceSet:
		err = col.Where(c.principal.Where(auth.Read, m.Collection)).SetPresence(ctx, sess, m.Record, m.State)
	case protocol.PresenceHeartbeat:
		if !sess.Touch(m.Collection) {
			err = fmt.Errorf("%w: this connection is not present in %q; set its state again", viewsync.ErrNotFound, m.Collection)
		}
	case protocol.PresenceClear:
		sess.Clear(m.Collection)
	}
	switch {
	case err != nil:
		c.answerError(ctx, m.ID, err)
	case !m.ID.IsZero():
		c.answer(ctx, m.ID, nil, nil)
	}
}
