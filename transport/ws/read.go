package ws

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
)

// readLoop reads and answers client messages until the connection ends.
// It always leaves a close status behind.
func (c *conn) readLoop(ctx context.Context) {
	// Not ctx: a cancelled read cuts the connection, and the close
	// handshake needs it. Closing the connection ends the read. The
	// context carries the connection for the pong callback.
	rctx := context.WithValue(context.Background(), connKey{}, c)
	for {
		typ, b, err := c.ws.Read(rctx)
		if err != nil {
			c.readFailed(ctx, err)
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		if ctx.Err() != nil {
			return // closing: the message is not answered
		}
		if typ != websocket.MessageText {
			if !c.refuse(ctx, "", "binary messages are not supported; send JSON text messages") {
				return
			}
			continue
		}
		m, err := protocol.DecodeClientMessage(b)
		if err != nil {
			var me *protocol.MessageError
			id := ""
			if errors.As(err, &me) {
				id = me.ID
			}
			if !c.refuse(ctx, id, err.Error()) {
				return
			}
			continue
		}
		switch m := m.(type) {
		case *protocol.SubscribeMessage:
			c.subscribe(ctx, m)
		case *protocol.UnsubscribeMessage:
			c.unsubscribe(ctx, m)
		case *protocol.CommitMessage:
			c.commit(ctx, m)
		case *protocol.CallMessage:
			c.call(ctx, m)
		case *protocol.AckMessage:
			c.ack(ctx, m)
		}
	}
}

// connKey carries the connection in its reads' context.
type connKey struct{}

// pongReceived notes that the client answered a ping (the library calls it
// from the connection's reader).
func pongReceived(ctx context.Context, _ []byte) {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		c.lastRead.Store(time.Now().UnixNano())
	}
}

// readFailed records why reading ended.
func (c *conn) readFailed(ctx context.Context, err error) {
	switch {
	case ctx.Err() != nil:
		// Closing already.
	case websocket.CloseStatus(err) != -1:
		// The client closed; the library has answered its close frame.
		c.close(closeStatus{cut: true})
	case errors.Is(err, websocket.ErrMessageTooBig):
		// The library has sent the close frame (1009); closing with the
		// handshake waits for the client's answer.
		c.logger().Info("websocket client sent a message over the limit; connection closed", "limit", c.h.opts.MaxMessageBytes)
		c.close(closeStatus{code: websocket.StatusMessageTooBig, reason: "message too big"})
	default:
		c.logger().Debug("websocket read failed", "err", err)
		c.close(closeStatus{cut: true})
	}
}

// refuse answers a bad message with a bad_request error, or closes the
// connection with 1008 once the client has sent more than MaxBadMessages.
// It reports whether the connection goes on.
func (c *conn) refuse(ctx context.Context, id, msg string) bool {
	c.bad++
	if c.bad > c.h.opts.MaxBadMessages {
		c.logger().Warn("websocket client sent too many bad messages; connection closed", "bad_messages", c.bad, "last", msg)
		c.close(closeStatus{code: websocket.StatusPolicyViolation, reason: "too many bad messages"})
		return false
	}
	return c.writeMessage(protocol.EncodeError(id, protocol.CodeBadRequest, msg))
}

// answerError sends the error message err maps to. Internal errors are
// logged and their details kept from the client.
func (c *conn) answerError(ctx context.Context, id string, err error) {
	if ctx.Err() != nil {
		return // closing: nobody will read the answer
	}
	code := viewsync.ErrorCode(err)
	msg := err.Error()
	if code == protocol.CodeInternal {
		c.logger().Error("websocket request failed", "id", id, "err", err)
		msg = "internal error"
	}
	c.writeMessage(protocol.EncodeError(id, code, msg))
}

// answer sends a result message.
func (c *conn) answer(ctx context.Context, id string, result []byte, versions map[string]uint64) {
	b, err := protocol.EncodeResult(id, result, versions)
	if err != nil {
		c.answerError(ctx, id, fmt.Errorf("encoding result: %w", err))
		return
	}
	c.writeMessage(b)
}

// commit applies a commit message. Commits of one connection are applied
// one at a time, in the order they arrive.
func (c *conn) commit(ctx context.Context, m *protocol.CommitMessage) {
	if err := c.admit(auth.Write, m.Collection); err != nil {
		c.answerError(ctx, m.ID, err)
		return
	}
	col, err := c.h.hub.Collection(m.Collection)
	if err != nil {
		c.answerError(ctx, m.ID, err)
		return
	}
	cm, err := col.Commit(ctx, m.Ops, m.If)
	if err != nil {
		c.answerError(ctx, m.ID, err)
		return
	}
	result := strconv.AppendUint([]byte(`{"version":`), cm.Version, 10)
	result = append(result, '}')
	c.answer(ctx, m.ID, result, map[string]uint64{m.Collection: cm.Version})
}

// call runs a call message in its own goroutine, waiting first while
// maxConcurrentCalls are running.
func (c *conn) call(ctx context.Context, m *protocol.CallMessage) {
	if err := c.admit(auth.Call, m.Name); err != nil {
		c.answerError(ctx, m.ID, err)
		return
	}
	select {
	case c.callSlots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	c.tasks.Add(1)
	go func() {
		defer c.tasks.Done()
		defer func() { <-c.callSlots }()
		res, err := c.h.hub.Call(ctx, m.Name, m.Arg)
		if err != nil {
			c.answerError(ctx, m.ID, err)
			return
		}
		c.answer(ctx, m.ID, res.Result, res.Versions)
	}()
}

// admit checks a message against the Policy: the connection's principal
// must hold right a on name and, for writes and calls, be within its rate.
func (c *conn) admit(a auth.Action, name string) error {
	if c.h.opts.Policy == nil {
		return nil
	}
	return c.h.opts.Policy.Allow(c.principal, c.addr, a, name)
}

// ack records what the client has rendered of a subscription.
func (c *conn) ack(ctx context.Context, m *protocol.AckMessage) {
	s := c.subscription(m.Collection)
	if s == nil {
		c.answerError(ctx, "", fmt.Errorf("%w: ack for %q, which this connection does not subscribe to", viewsync.ErrNotFound, m.Collection))
		return
	}
	if sent := s.sent.Load(); m.Version > sent {
		c.answerError(ctx, "", fmt.Errorf("%w: ack of version %d of %q, ahead of the version %d sent", viewsync.ErrInvalid, m.Version, m.Collection, sent))
		return
	}
	s.acked.Store(m.Version)
	c.h.hub.Rendered(c.id, m.Collection, m.Version)
}
