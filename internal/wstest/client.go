// Package wstest is a frame-level WebSocket client for the project's
// tests, not for production use: a github.com/gobwas/ws handshake, then
// frames of its own, so that a test sees what the server sends (pings,
// close frames, a connection cut without one). It holds no goroutine:
// reading is what answers pings and the server's close frame.
package wstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	gws "github.com/gobwas/ws"
)

const (
	// Cut is the close status of a connection that ended without a close
	// frame (see CloseStatus).
	Cut gws.StatusCode = 0
	// closeWait bounds a client-initiated close.
	closeWait = 5 * time.Second
)

// Options configures Dial. The zero value offers no subprotocol.
type Options struct {
	// Subprotocols are offered in the upgrade request, in order.
	Subprotocols []string
	// Header holds more headers of the upgrade request (Origin,
	// Authorization).
	Header http.Header
	// NetDial, when set, makes the TCP connection (to choose the source
	// address, or shrink the socket's buffers); nil: a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnPing, when set, is told of every ping; the client answers with a
	// pong only when it returns true.
	OnPing func(payload []byte) bool
	// ReadLimit, when positive, is the largest message read; a larger one
	// closes the connection with 1009 (message too big).
	ReadLimit int64
}

// Client is one WebSocket connection of a test. Reads are serialized
// with reads and writes with writes; a read and a write may run at once.
type Client struct {
	conn     net.Conn
	br       *bufio.Reader
	protocol string
	onPing   func(payload []byte) bool
	limit    int64

	rmu     sync.Mutex // serializes reads
	readErr error      // ended reading; given again to later reads

	wmu       sync.Mutex // serializes writes
	closeSent bool       // the client's close frame went
}

// CloseError is the end of a connection by the server's close frame,
// with its status code and reason.
type CloseError struct {
	Code   gws.StatusCode
	Reason string
}

// Error gives the close frame's status code and reason.
func (e *CloseError) Error() string {
	return fmt.Sprintf("closed by the server with status %d: %s", e.Code, e.Reason)
}

// CloseStatus returns the status of the close frame that ended a
// connection with err, or Cut when there was none.
func CloseStatus(err error) gws.StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return Cut
}

// NetDialOf returns the dialer of client's *http.Transport, for
// Options.NetDial (the same source address as client's requests), or nil.
func NetDialOf(client *http.Client) func(ctx context.Context, network, addr string) (net.Conn, error) {
	rt := client.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	if tr, ok := rt.(*http.Transport); ok {
		return tr.DialContext
	}
	return nil
}

// Dial opens a WebSocket at url (ws://…) as o says (nil: no options),
// within ctx. When the server refuses the upgrade, it returns its answer
// too, the body read whole (the error then wraps a gws.StatusError).
func Dial(ctx context.Context, url string, o *Options) (*Client, *http.Response, error) {
	if o == nil {
		o = &Options{}
	}
	var refusal *http.Response
	d := gws.Dialer{
		Protocols: o.Subprotocols,
		NetDial:   o.NetDial,
		OnStatusError: func(_ int, _ []byte, r io.Reader) {
			resp, err := http.ReadResponse(bufio.NewReader(r), nil)
			if err != nil {
				return // not HTTP
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			refusal = resp
		},
	}
	if o.Header != nil {
		d.Header = gws.HandshakeHeaderHTTP(o.Header)
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, refusal, fmt.Errorf("wstest: dial %s: %w", url, err)
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return &Client{conn: conn, br: br, protocol: hs.Protocol, onPing: o.OnPing, limit: o.ReadLimit}, nil, nil
}

// Protocol returns the subprotocol negotiated ("" for none).
func (c *Client) Protocol() string { return c.protocol }

// bound runs f, closing the connection if ctx ends meanwhile (f's error
// then says so).
func (c *Client) bound(ctx context.Context, f func() error) error {
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	err := f()
	if !stop() && err != nil {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}

// WriteMessage writes one message (or control frame) of type op: one
// masked frame, whole, in one write. When ctx ends first, the connection
// is closed.
func (c *Client) WriteMessage(ctx context.Context, op gws.OpCode, payload []byte) error {
	return c.bound(ctx, func() error { return c.write(op, payload) })
}

// write writes one masked frame; a close frame, only the first time.
func (c *Client) write(op gws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if op == gws.OpClose {
		if c.closeSent {
			return nil
		}
		c.closeSent = true
	}
	b, err := gws.CompileFrame(gws.MaskFrame(gws.NewFrame(op, true, payload)))
	if err == nil {
		_, err = c.conn.Write(b)
	}
	if err != nil {
		return fmt.Errorf("wstest: writing a frame of opcode %d: %w", op, err)
	}
	return nil
}

// writeClose writes the client's close frame, unless it went already.
// Code 1005 (no status received) makes an empty one.
func (c *Client) writeClose(code gws.StatusCode, reason string) error {
	var body []byte
	if code != gws.StatusNoStatusRcvd {
		body = gws.NewCloseFrameBody(code, reason)
	}
	return c.write(gws.OpClose, body)
}

// ReadMessage returns the next data message (text or binary) and its
// opcode. On the way it answers pings and, with the client's own close
// frame, the server's. A close frame ends reading with a *CloseError;
// anything else that ends it (the connection cut, ctx ended, a message
// over the read limit) with that error; either way the connection is
// closed and later reads return the same error.
func (c *Client) ReadMessage(ctx context.Context) (op gws.OpCode, msg []byte, err error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	err = c.bound(ctx, func() error {
		op, msg, err = c.readMessage()
		return err
	})
	if err != nil {
		c.readErr = err
		c.conn.Close()
		return 0, nil, err
	}
	return op, msg, nil
}

// readMessage reads frames until the end of a data message.
func (c *Client) readMessage() (gws.OpCode, []byte, error) {
	var (
		op  gws.OpCode
		msg []byte
	)
	for {
		h, err := gws.ReadHeader(c.br)
		if err != nil {
			return 0, nil, fmt.Errorf("wstest: reading a frame header: %w", err)
		}
		if h.Masked {
			return 0, nil, fmt.Errorf("wstest: server frame %+v is masked", h)
		}
		if c.limit > 0 && int64(len(msg))+h.Length > c.limit {
			c.writeClose(gws.StatusMessageTooBig, "")
			return 0, nil, fmt.Errorf("wstest: a message over %d bytes", c.limit)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return 0, nil, fmt.Errorf("wstest: reading a frame payload: %w", err)
		}
		switch h.OpCode {
		case gws.OpText, gws.OpBinary:
			if msg != nil {
				return 0, nil, errors.New("wstest: server began a message inside a fragmented one")
			}
			op, msg = h.OpCode, p
		case gws.OpContinuation:
			if msg == nil {
				return 0, nil, errors.New("wstest: server sent a continuation frame outside a message")
			}
			msg = append(msg, p...)
		case gws.OpPing:
			if c.onPing == nil || c.onPing(p) {
				if err := c.write(gws.OpPong, p); err != nil {
					return 0, nil, err
				}
			}
			continue
		case gws.OpPong:
			continue
		case gws.OpClose:
			if len(p) == 1 {
				return 0, nil, errors.New("wstest: server sent a close frame of 1 byte")
			}
			ce := &CloseError{Code: gws.StatusNoStatusRcvd}
			if len(p) >= 2 {
				ce.Code, ce.Reason = gws.ParseCloseFrameData(p)
			}
			c.writeClose(ce.Code, ce.Reason)
			return 0, nil, ce
		default:
			return 0, nil, fmt.Errorf("wstest: server sent a frame of opcode %d", h.OpCode)
		}
		if h.Fin {
			return op, msg, nil
		}
	}
}

// Close closes as a client ending its session does: it sends its close
// frame with code and reason (1005: an empty one), reads (discarding
// messages) until the server's close frame or the end of the connection,
// 5s at most, then closes the connection; a read under way in another
// goroutine sees the server's close frame. It returns the close frame's
// write error.
func (c *Client) Close(code gws.StatusCode, reason string) error {
	c.conn.SetDeadline(time.Now().Add(closeWait))
	err := c.writeClose(code, reason)
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for c.readErr == nil {
		if _, _, rerr := c.readMessage(); rerr != nil {
			c.readErr = rerr
		}
	}
	c.conn.Close()
	return err
}

// CloseNow closes the connection without a close frame.
func (c *Client) CloseNow() error { return c.conn.Close() }
