package sse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/transport/internal/live"
)

// The live path: a stream on an HTTP/1.x connection that can be hijacked
// costs no goroutine while it is idle or keeping up. Its handler goroutine
// writes the response head and whatever the client is behind (a reset, a
// catch-up, pages of commits), then hands the connection to its
// collection's pump and returns. The pump's few goroutines wait for the
// topic to change and sweep their connections: each gets the commits after
// its cursor from the topic's buffer (frames encoded once for everyone) in
// one non-blocking writev. A connection whose socket cannot take it all,
// or that fell behind the buffer, goes back to a goroutine of its own (the
// slow path), which writes under the stall deadline, reads the store as
// needed, and returns the connection to the pump once it is current.
//
// The response has no chunked encoding: the body ends when the connection
// closes (the response says Connection: close). A client that goes away is
// noticed at the next write — a commit or a ping.

// liveConn is a hijacked stream.
type liveConn struct {
	member live.Member

	h       *Handler
	conn    net.Conn
	raw     syscall.RawConn
	sub     *fanout.Subscription
	coll    string
	remote  string
	expires time.Time
	start   time.Time
	// lastWrite is when the connection was last written to; pings are due
	// PingInterval after it. Owned by whoever holds the connection (its
	// shard or its own goroutine).
	lastWrite time.Time
	// release gives back the client address's connection slot (package
	// limit), held for the stream's life; nil when none was taken.
	release func()
	// watched is set while the hang-up watcher has the connection.
	watched bool

	endOnce sync.Once

	commits, catchups, resets, pings int
}

var _ live.Stream = (*liveConn)(nil)

// Changed implements live.Stream.
func (c *liveConn) Changed() <-chan struct{} { return c.sub.Changed() }

// Member implements live.Stream.
func (c *liveConn) Member() *live.Member { return &c.member }

// hangUp is called when the client has closed its end: a stream in its
// pump is ended at once; one served by its own goroutine is closed, so
// that goroutine's next write fails (and it cannot return to the pump).
func (c *liveConn) hangUp() {
	if c.h.pumps.Remove(c) {
		c.end(streamEnd{reason: "client went away", level: slog.LevelDebug})
		return
	}
	c.conn.Close()
}

// toPump returns c to its collection's pump, or ends it when its client
// hung up meanwhile.
func (c *liveConn) toPump() {
	c.conn.SetWriteDeadline(time.Time{})
	if !c.h.pumps.Add(c.coll, c) {
		c.end(streamEnd{reason: "client went away", level: slog.LevelDebug})
	}
}

// Sweep implements live.Stream: it writes what the subscription's buffer
// holds for the client in one writev, without blocking.
func (c *liveConn) Sweep() (leave func()) {
	ev, err := c.sub.TryNext()
	switch {
	case errors.Is(err, fanout.ErrWouldBlock):
		return nil
	case errors.Is(err, fanout.ErrBehind):
		return func() { go c.slow(nil) }
	case err != nil:
		return func() { c.end(streamEnd{reason: "server closing", level: slog.LevelDebug}) }
	}
	// Only commits come from the buffer.
	var stack [16][]byte
	bufs := stack[:0]
	total := 0
	for _, f := range ev.Frames {
		b := f.SSE()
		bufs = append(bufs, b)
		total += len(b)
	}
	c.commits += len(ev.Frames)
	n, err := live.TryWritev(c.raw, bufs)
	var left []byte
	if err == nil && n < total {
		left = live.AppendUnwritten(nil, bufs, n)
	}
	clear(bufs)
	clear(ev.Frames)
	switch {
	case err != nil:
		return func() { c.end(streamEnd{reason: "client went away", level: slog.LevelDebug, err: err}) }
	case left != nil:
		// The socket is full: the rest goes out under the stall deadline.
		return func() { go c.slow(left) }
	}
	c.lastWrite = time.Now()
	return nil
}

// Tick implements live.Stream: it pings the client when it has been
// silent for a ping interval, and ends the stream when its token expired.
func (c *liveConn) Tick(now time.Time) (leave func()) {
	if !c.expires.IsZero() && !now.Before(c.expires) {
		return func() {
			live.TryWritev(c.raw, [][]byte{expiredEvent})
			c.end(streamEnd{reason: "token expired", level: slog.LevelDebug})
		}
	}
	if now.Sub(c.lastWrite) < c.h.opts.PingInterval {
		return nil
	}
	n, err := live.TryWritev(c.raw, [][]byte{pingEvent})
	switch {
	case err != nil:
		return func() { c.end(streamEnd{reason: "client went away", level: slog.LevelDebug, err: err}) }
	case n < len(pingEvent):
		return func() { go c.slow(append([]byte(nil), pingEvent[n:]...)) }
	}
	c.pings++
	c.lastWrite = now
	return nil
}

// slow serves c on a goroutine of its own: it writes pending, then every
// event until the client is current, each under the stall deadline, and
// hands c back to the pump.
func (c *liveConn) slow(pending []byte) { c.serve(pending, true) }

// blocking serves a hijacked connection that allows no non-blocking writes
// from the calling goroutine until it ends.
func (c *liveConn) blocking(head []byte) { c.serve(head, false) }

// serve writes pending, then the subscription's events, each under the
// stall deadline. With toPump it returns the connection to the pump once
// the client is current; without, it waits for events itself, pinging an
// idle client, until the stream ends.
func (c *liveConn) serve(pending []byte, toPump bool) {
	ctx, cancel := auth.UntilExpiry(context.Background(), auth.Principal{Expires: c.expires})
	defer cancel()
	if len(pending) > 0 {
		if err := c.write(pending); err != nil {
			c.end(c.writeFailed(err))
			return
		}
	}
	var buf bytes.Buffer
	for {
		var ev fanout.Event
		var err error
		if toPump {
			ev, err = c.sub.NextNow(ctx)
		} else {
			ev, err = c.sub.NextIdle(ctx, time.Until(c.lastWrite.Add(c.h.opts.PingInterval)))
		}
		switch {
		case errors.Is(err, fanout.ErrWouldBlock):
			c.toPump()
			return
		case errors.Is(err, fanout.ErrIdle):
			if err := c.write(pingEvent); err != nil {
				c.end(c.writeFailed(err))
				return
			}
			c.pings++
			continue
		case auth.Expired(ctx):
			c.write(expiredEvent)
			c.end(streamEnd{reason: "token expired", level: slog.LevelDebug})
			return
		case errors.Is(err, fanout.ErrClosed):
			c.end(streamEnd{reason: "server closing", level: slog.LevelDebug})
			return
		case errors.Is(err, fanout.ErrBusy):
			c.write(busyEvent)
			c.end(streamEnd{reason: "server busy reading history", level: slog.LevelInfo})
			return
		case err != nil:
			c.end(streamEnd{reason: "subscription failed", level: slog.LevelWarn, err: err})
			return
		}
		if ev.Kind == fanout.EventCommits {
			if err := c.writeFrames(ev.Frames); err != nil {
				c.end(c.writeFailed(err))
				return
			}
			continue
		}
		buf.Reset()
		if err := appendEvent(&buf, ev, &c.commits, &c.catchups, &c.resets); err != nil {
			c.end(streamEnd{reason: "encoding an event failed", level: slog.LevelError, err: err})
			return
		}
		if err := c.write(buf.Bytes()); err != nil {
			c.end(c.writeFailed(err))
			return
		}
		if buf.Cap() > writeBufferSize {
			buf = bytes.Buffer{} // don't keep a snapshot's buffer
		}
	}
}

// writeFrames writes commits, in one vectored write under the stall
// deadline: each event's head, then the commit's JSON as its frame holds
// it, so that a page read from the store for this client is written
// without a copy of its values.
func (c *liveConn) writeFrames(frames []*fanout.Frame) error {
	heads := make([]byte, 0, 64*len(frames))
	bufs := make(net.Buffers, 0, 3*len(frames))
	for _, f := range frames {
		start := len(heads)
		heads = f.AppendSSEHead(heads)
		bufs = append(bufs, heads[start:len(heads):len(heads)], f.JSON(), fanout.SSETail)
	}
	c.commits += len(frames)
	clear(frames) // the subscription's slice: let the frames go once written
	c.conn.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
	_, err := bufs.WriteTo(c.conn)
	if err == nil {
		c.lastWrite = time.Now()
	}
	return err
}

// write writes b whole under the stall deadline.
func (c *liveConn) write(b []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
	_, err := c.conn.Write(b)
	if err == nil {
		c.lastWrite = time.Now()
	}
	return err
}

func (c *liveConn) writeFailed(err error) streamEnd {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return streamEnd{reason: "client stalled: write blocked longer than " + c.h.opts.WriteTimeout.String(), level: slog.LevelInfo, err: err}
	}
	return streamEnd{reason: "client went away", level: slog.LevelDebug, err: err}
}

// end closes the stream and releases what it holds, once.
func (c *liveConn) end(e streamEnd) {
	c.endOnce.Do(func() {
		if c.watched {
			c.h.hangups.Unwatch(c.raw)
		}
		c.conn.Close()
		c.sub.Close()
		c.h.conns.Add(-1)
		if c.release != nil {
			c.release()
		}
		c.h.log.Log(context.Background(), e.level, "sse: stream ended",
			"reason", e.reason, "err", e.err, "collection", c.coll,
			"cursor", c.sub.Cursor().String(), "remote", c.remote,
			"took", time.Since(c.start), "commits", c.commits, "catchups", c.catchups,
			"resets", c.resets, "pings", c.pings)
	})
}

// serveLive hijacks the connection of an admitted stream and serves it on
// the live path. It reports false, having done nothing, when the
// connection cannot be hijacked (HTTP/2, or a ResponseWriter that does not
// allow it); the caller then streams through the ResponseWriter.
func (h *Handler) serveLive(w http.ResponseWriter, r *http.Request, coll string, sub *fanout.Subscription, pr auth.Principal) bool {
	if r.ProtoMajor != 1 || !live.Supported {
		return false
	}
	// The head is written by hand: the headers set so far (by
	// middleware: CORS, nosniff) and the stream's own.
	setStreamHeaders(w)
	hd := w.Header()
	hd.Del("Content-Length")
	hd.Del("Transfer-Encoding")
	hd["Connection"] = []string{"close"}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	hd.Write(&head)
	head.WriteString("\r\n")
	head.Write(h.retry)

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		hd.Del("Connection")
		return false
	}
	sc, ok := conn.(syscall.Conn)
	var raw syscall.RawConn
	if ok {
		raw, err = sc.SyscallConn()
	}
	if !ok || err != nil {
		// Hijacked but not a socket we can write to without blocking
		// (a test's pipe, TLS): serve it from this goroutine.
		raw = nil
	}
	discard(brw)
	c := &liveConn{h: h, conn: conn, raw: raw, sub: sub, coll: coll, remote: r.RemoteAddr, expires: pr.Expires, start: time.Now(),
		release: limit.Keep(r.Context())}
	if raw == nil {
		c.blocking(head.Bytes())
		return true
	}
	c.watched = h.hangups.Watch(raw, c.hangUp)
	c.slow(head.Bytes())
	return true
}

// discard drops the hijacked connection's buffers; a client sends nothing
// after its request on an event stream.
func discard(brw *bufio.ReadWriter) {
	if brw != nil {
		brw.Reader.Reset(nil)
		brw.Writer.Reset(nil)
	}
}
