package ws

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/protocol"
)

// readers holds the buffered readers of the connections being read: an
// idle connection holds none.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// readBufferSize is the read buffer of a connection while it is read.
const readBufferSize = 4 << 10

// readAvailable reads and answers the client's messages. With ready (bytes
// are known to be there), it returns once it has used up what arrived,
// reading the rest of a message begun under the write timeout; otherwise
// it waits for the client and reads on. It reports whether the connection
// goes on; when it does not, the connection is closing.
func (c *conn) readAvailable(ready bool) bool {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c.sock)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	if ready {
		defer c.sock.SetReadDeadline(time.Time{})
	}
	rd := &wsutil.Reader{
		Source: br,
		State:  gws.StateServerSide,
		// Text that is not UTF-8 is a bad message like any other
		// (answered; the connection stays): the decoder refuses it.
		CheckUTF8:      false,
		MaxMessageSize: c.h.opts.MaxMessageBytes,
	}
	// Control frames between the fragments of a message.
	rd.OnIntermediate = func(hdr gws.Header, r io.Reader) error { return c.control(hdr, r) }
	for {
		if ready {
			// Bytes are there: the rest of a frame begun must follow
			// within the write timeout (the time taken to answer the
			// messages before does not count).
			c.sock.SetReadDeadline(time.Now().Add(c.h.opts.WriteTimeout))
		}
		hdr, err := rd.NextFrame()
		if err == nil {
			c.lastRead.Store(time.Now().UnixNano())
			if hdr.OpCode.IsControl() {
				err = c.control(hdr, rd)
			} else {
				err = c.message(rd, hdr)
			}
		}
		if err != nil {
			c.readFailed(err, br)
			return false
		}
		if ready && br.Buffered() == 0 {
			return true
		}
	}
}

// message reads the data message whose first frame is hdr and answers it.
func (c *conn) message(rd *wsutil.Reader, hdr gws.Header) error {
	if hdr.OpCode != gws.OpText {
		if err := rd.Discard(); err != nil {
			return err
		}
		if c.ctx.Err() == nil {
			// Past the bad messages allowed, the connection closes; reading
			// goes on until the client's close frame.
			c.refuse(protocol.MessageID{}, "binary messages are not supported; send JSON text messages")
		}
		return nil
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	if c.ctx.Err() != nil {
		return nil // closing: the message is not answered
	}
	m, err := protocol.DecodeClientMessage(b)
	if err != nil {
		var me *protocol.MessageError
		var id protocol.MessageID
		if errors.As(err, &me) {
			id = me.ID
		}
		c.refuse(id, err.Error())
		return nil
	}
	ctx := c.ctx
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
	case *protocol.PresenceMessage:
		c.publishPresence(ctx, m)
	}
	return nil
}

// control handles a control frame whose payload r holds: a ping is
// answered with a pong, a pong only counts as the client's sign of life
// (noted by the reader), and a close frame is answered with the client's
// own status and ends the connection, unless the server closed first.
func (c *conn) control(hdr gws.Header, r io.Reader) error {
	h := wsutil.ControlHandler{Src: r, Dst: c.sock, State: gws.StateServerSide, DisableSrcCiphering: true}
	if hdr.OpCode == gws.OpClose && c.ctx.Err() != nil {
		// The client answers the server's close frame: the handshake is
		// done.
		io.Copy(io.Discard, r)
		return errClosing
	}
	return h.Handle(hdr)
}

// errClosing ends reading: the connection is closing.
var errClosing = errors.New("ws: connection closing")

// readFailed records why reading ended and closes the connection. After a
// malformed frame, br is drained while the client gets the close frame, so
// that unread bytes do not make the system reset the connection before
// the client has read why it ends.
func (c *conn) readFailed(err error, br *bufio.Reader) {
	var protoErr gws.ProtocolError
	var st closeStatus
	switch {
	case errors.Is(err, errClosing) || c.ctx.Err() != nil:
		// Closing already.
		st.cut = true
	case errors.As(err, new(wsutil.ClosedError)):
		// The client closed; its close frame was answered.
		st.cut = true
	case errors.Is(err, wsutil.ErrMessageTooLarge):
		c.logger().Info("websocket client sent a message over the limit; connection closed", "limit", c.h.opts.MaxMessageBytes)
		st = closeStatus{code: gws.StatusMessageTooBig, reason: "message too big"}
	case errors.As(err, &protoErr):
		st = closeStatus{code: gws.StatusProtocolError, reason: protoErr.Error()}
	case isTimeout(err):
		c.logger().Info("websocket client sent part of a message, then nothing for the write timeout; connection cut", "timeout", c.h.opts.WriteTimeout)
		st.cut = true
	default:
		c.logger().Debug("websocket read failed", "err", err)
		st.cut = true
	}
	if st.cut {
		c.noMoreReads()
		c.close(st)
		return
	}
	c.close(st)
	c.sock.SetReadDeadline(time.Now().Add(closeWait))
	io.Copy(io.Discard, br)
	c.noMoreReads()
}

// refuse answers a bad message with a bad_request error, or closes the
// connection with 1008 once the client has sent more than MaxBadMessages.
// It reports whether the connection goes on.
func (c *conn) refuse(id protocol.MessageID, msg string) bool {
	c.bad++
	if c.bad > c.h.opts.MaxBadMessages {
		c.logger().Warn("websocket client sent too many bad messages; connection closed", "bad_messages", c.bad, "last", msg)
		c.close(closeStatus{code: gws.StatusPolicyViolation, reason: "too many bad messages"})
		return false
	}
	return c.writeMessage(protocol.EncodeError(id, "", protocol.CodeBadRequest, msg))
}

// answerError sends the error message err maps to, answering the message
// with id. Internal errors are logged and their details kept from the
// client.
func (c *conn) answerError(ctx context.Context, id protocol.MessageID, err error) {
	c.answerErrorAbout(ctx, id, "", err)
}

// answerSubError answers err as answerError does, about the subscription
// with id sub (none: one known by its collection).
func (c *conn) answerSubError(ctx context.Context, sub string, err error) {
	c.answerErrorAbout(ctx, protocol.MessageID{}, sub, err)
}

// answerErrorAbout sends the error message err maps to, carrying the id of
// the message it answers and of the subscription it is about, when set.
func (c *conn) answerErrorAbout(ctx context.Context, id protocol.MessageID, sub string, err error) {
	if ctx.Err() != nil {
		return // closing: nobody will read the answer
	}
	code := viewsync.ErrorCode(err)
	msg := err.Error()
	if code == protocol.CodeInternal {
		c.logger().Error("websocket request failed", "id", id.String(), "err", err)
		msg = "internal error"
	}
	c.writeMessage(protocol.EncodeError(id, sub, code, msg))
}

// answer sends a result message.
func (c *conn) answer(ctx context.Context, id protocol.MessageID, result []byte, versions map[string]uint64) {
	b, err := protocol.EncodeResult(id, result, versions)
	if err != nil {
		c.answerError(ctx, id, fmt.Errorf("encoding result: %w", err))
		return
	}
	c.writeMessage(b)
}

// commit applies a commit message. Commits of one connection are applied
// one at a time, in the order they arrive. The answer is the new version;
// a failure is told to a principal without the read right on the
// collection as viewsync.Redact leaves it. With an idempotency key, the
// commit applies at most once for it (see keyed).
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
	col = col.Where(c.principal.Where(auth.Write, m.Collection))
	perform := func(ctx context.Context, k *viewsync.Keyed) (viewsync.Answer, error) {
		var opts []viewsync.WriteOption
		if k != nil {
			opts = append(opts, k.Record(viewsync.CommitAnswer))
		}
		cm, err := col.Commit(ctx, m.Ops, m.If, opts...)
		if err != nil {
			if !c.mayRead(m.Collection) {
				err = viewsync.Redact(err)
			}
			return c.errorAnswer(m.ID, err), nil
		}
		return viewsync.CommitAnswer(cm), nil
	}
	if m.IdempotencyKey == "" {
		cm, err := col.Commit(ctx, m.Ops, m.If)
		if err != nil {
			if !c.mayRead(m.Collection) {
				err = viewsync.Redact(err)
			}
			c.answerError(ctx, m.ID, err)
			return
		}
		result := strconv.AppendUint([]byte(`{"version":`), cm.Version, 10)
		result = append(result, '}')
		c.answer(ctx, m.ID, result, map[string]uint64{m.Collection: cm.Version})
		return
	}
	c.keyed(ctx, m.ID, viewsync.OnceCommit("", m.IdempotencyKey, m.Collection, m.Ops, m.If), perform, func(a viewsync.Answer) (json.RawMessage, map[string]uint64, error) {
		return commitResult(a, m.Collection)
	})
}

// commitResult is the result of a commit's answer, {"version":V}, and the
// versions the client waits for.
func commitResult(a viewsync.Answer, collection string) (json.RawMessage, map[string]uint64, error) {
	var r protocol.CommitResponse
	if err := json.Unmarshal(a.Body, &r); err != nil {
		return nil, nil, fmt.Errorf("commit answer: %w", err)
	}
	return a.Body, map[string]uint64{collection: r.Version}, nil
}

// keyed runs perform under the idempotency key of o (its Scope set here),
// through viewsync.Hub.Once, and sends the answer, marked replayed when it
// was given before. The wait for a duplicate in flight is bounded by the
// connection's context and the hub's IdempotencyOptions.MaxWait.
func (c *conn) keyed(ctx context.Context, id protocol.MessageID, o viewsync.Once, perform func(context.Context, *viewsync.Keyed) (viewsync.Answer, error), result func(viewsync.Answer) (json.RawMessage, map[string]uint64, error)) {
	if _, err := c.h.hub.ParseIdempotencyKey(o.Key); err != nil {
		c.answerError(ctx, id, err)
		return
	}
	o.Scope = idem.Scope(c.principal.Subject, c.h.opts.Policy == nil || c.principal.Anonymous)
	a, replayed, err := c.h.hub.Once(ctx, o, perform)
	if err != nil {
		c.answerError(ctx, id, err)
		return
	}
	c.sendAnswer(ctx, id, a, replayed, result)
}

// errorAnswer renders err as the answer to the message id: the status and
// the contract's error body. Internal errors are logged and their details
// kept from the client.
func (c *conn) errorAnswer(id protocol.MessageID, err error) viewsync.Answer {
	code := viewsync.ErrorCode(err)
	msg := err.Error()
	if code == protocol.CodeInternal {
		c.logger().Error("websocket request failed", "id", id.String(), "err", err)
		msg = "internal error"
	}
	return viewsync.Answer{Status: code.Status(), Body: protocol.MarshalError(code, msg)}
}

// sendAnswer sends an answer as a result message (made by result from a
// 2xx answer) or an error message (the code and message of its body),
// with "replayed":true when replayed.
func (c *conn) sendAnswer(ctx context.Context, id protocol.MessageID, a viewsync.Answer, replayed bool, result func(viewsync.Answer) (json.RawMessage, map[string]uint64, error)) {
	if ctx.Err() != nil {
		return // closing: nobody will read the answer
	}
	var msg []byte
	if a.Status >= 200 && a.Status < 300 {
		res, versions, err := result(a)
		if err == nil {
			msg, err = protocol.EncodeResult(id, res, versions)
		}
		if err != nil {
			c.answerError(ctx, id, fmt.Errorf("encoding result: %w", err))
			return
		}
	} else {
		var eb protocol.ErrorBody
		if err := json.Unmarshal(a.Body, &eb); err != nil || eb.Error == nil {
			eb.Error = &protocol.Error{Code: protocol.CodeInternal, Message: "internal error"}
		}
		msg = protocol.EncodeError(id, "", eb.Error.Code, eb.Error.Message)
	}
	if replayed {
		msg = protocol.MarkReplayed(msg)
	}
	c.writeMessage(msg)
}

// call runs a call message in its own goroutine, waiting first while
// maxConcurrentCalls are running. With an idempotency key, the call runs
// at most once for it; its answer is remembered when the handler returns.
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
		if m.IdempotencyKey == "" {
			res, err := c.h.hub.Call(ctx, m.Name, m.Arg)
			if err != nil {
				c.answerError(ctx, m.ID, err)
				return
			}
			c.answer(ctx, m.ID, res.Result, res.Versions)
			return
		}
		perform := func(ctx context.Context, _ *viewsync.Keyed) (viewsync.Answer, error) {
			res, err := c.h.hub.Call(ctx, m.Name, m.Arg)
			if err != nil {
				if ctx.Err() != nil {
					return viewsync.Answer{}, err // the connection closed: the outcome is unknown
				}
				return c.errorAnswer(m.ID, err), nil
			}
			if res.Versions == nil {
				res.Versions = map[string]uint64{}
			}
			b, err := json.Marshal(res)
			if err != nil {
				return viewsync.Answer{}, err
			}
			return viewsync.Answer{Status: http.StatusOK, Body: b}, nil
		}
		c.keyed(ctx, m.ID, viewsync.OnceCall("", m.IdempotencyKey, m.Name, m.Arg), perform, func(a viewsync.Answer) (json.RawMessage, map[string]uint64, error) {
			var res viewsync.CallResult
			if err := json.Unmarshal(a.Body, &res); err != nil {
				return nil, nil, fmt.Errorf("call answer: %w", err)
			}
			return res.Result, res.Versions, nil
		})
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

// mayRead reports whether the connection's principal may read the
// collection name. Without a Policy everyone may.
func (c *conn) mayRead(name string) bool {
	return c.h.opts.Policy == nil || c.principal.Allows(auth.Read, name)
}

// ack records what the client has rendered of a subscription.
func (c *conn) ack(ctx context.Context, m *protocol.AckMessage) {
	s := c.subscription(m.Collection, m.Sub)
	if s == nil {
		c.answerSubError(ctx, m.Sub, fmt.Errorf("%w: ack for %s, which this connection does not subscribe to", viewsync.ErrNotFound, describeSub(m.Collection, m.Sub)))
		return
	}
	if sent := s.p.Sent(); m.Version > sent {
		c.answerSubError(ctx, m.Sub, fmt.Errorf("%w: ack of version %d of %s, ahead of the version %d sent", viewsync.ErrInvalid, m.Version, describeSub(m.Collection, m.Sub), sent))
		return
	}
	s.acked.Store(m.Version)
	c.h.hub.Rendered(c.id, m.Collection, m.Version)
}
