package push

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/internal/netio"
	"github.com/viewsync/viewsync/limit"
)

// A Handler's stream is served one of three ways:
//
//   - On HTTP/1.x, the handler hijacks the connection, writes the response
//     head by hand and hands the connection to a Sub: it costs no goroutine
//     while it is idle or keeping up, and a client that hangs up is noticed
//     at once (epoll, on Linux). The response has no chunked encoding: it
//     says Connection: close, and the body ends when the connection does.
//   - A hijacked connection that cannot be written without blocking (TLS)
//     is served from the handler's goroutine, which waits for events and
//     pings an idle client.
//   - Over HTTP/2, or through a ResponseWriter that cannot be hijacked, the
//     handler's goroutine streams through the ResponseWriter, flushing
//     after each write.

// stream is a hijacked stream: its connection carries one Sub.
type stream struct {
	h       *Handler
	sock    *Sock
	sub     *Sub
	coll    string
	remote  string
	expires time.Time
	start   time.Time
	// release gives back the client address's connection slot (package
	// limit), held for the stream's life; nil when none was taken.
	release func()
	// watched is set while the hang-up watcher has the connection.
	watched bool
	// pings is owned by whoever holds the Sub.
	pings int
	// pres is the stream's presence, nil when it did not ask for it.
	pres *Presence

	endOnce sync.Once
}

var _ Owner = (*stream)(nil)

// serveHijacked hijacks the connection of an admitted stream and serves
// it. It reports false, having done nothing, when the connection cannot be
// hijacked; the caller then streams through the ResponseWriter.
func (h *Handler) serveHijacked(w http.ResponseWriter, r *http.Request, coll string, sub *fanout.Subscription, pr auth.Principal, pres presenceRequest) bool {
	if r.ProtoMajor != 1 || !netio.Supported {
		return false
	}
	// The head is written by hand: the headers set so far (by middleware:
	// CORS, nosniff) and the stream's own.
	h.setHeaders(w)
	hd := w.Header()
	hd.Del("Content-Length")
	hd.Del("Transfer-Encoding")
	hd["Connection"] = []string{"close"}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	hd.Write(&head)
	head.WriteString("\r\n")
	head.Write(h.opts.Preamble)

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		hd.Del("Connection")
		return false
	}
	// A client sends nothing after its request on a stream.
	if brw != nil {
		brw.Reader.Reset(nil)
		brw.Writer.Reset(nil)
	}
	s := &stream{h: h, sock: NewSock(conn, h.opts.WriteTimeout), coll: coll, remote: r.RemoteAddr,
		expires: pr.Expires, start: time.Now(), release: limit.Keep(r.Context())}
	s.sub = NewSub(sub, s.sock, h.format, &h.pumps, coll, s)
	if err := s.sock.WriteBuffers(nil, head.Bytes()); err != nil {
		s.end(h.endOf(&WriteError{err}, false))
		return true
	}
	if s.sock.Raw() == nil {
		// No non-blocking writes: this goroutine serves the stream.
		ctx, cancel := auth.UntilExpiry(context.Background(), pr)
		defer cancel()
		ctx, fail := context.WithCancelCause(ctx)
		if s.pres, err = h.streamPresence(pres, pr, s.sock, fail); err != nil {
			s.end(h.endOf(err, false))
			return true
		}
		s.end(h.run(ctx, s.sock, sub, &s.sub.commits, &s.sub.catchUps, &s.sub.resets, &s.pings))
		return true
	}
	if s.pres, err = h.streamPresence(pres, pr, s.sock, func(error) { s.hangUp() }); err != nil {
		s.end(h.endOf(err, false))
		return true
	}
	s.watched = h.hangups.Watch(s.sock.Raw(), s.hangUp)
	s.sub.Run()
	return true
}

// Go implements Owner.
func (s *stream) Go(f func()) bool {
	go f()
	return true
}

// Context implements Owner: the slow path's reads end when the token
// expires.
func (s *stream) Context() (context.Context, context.CancelFunc) {
	return auth.UntilExpiry(context.Background(), auth.Principal{Expires: s.expires})
}

// Closing implements Owner: a stream ends its Sub as it ends.
func (s *stream) Closing() bool { return false }

// Tick implements Owner: it ends the stream when its token expired, and
// pings the client when it has been silent for a ping interval.
func (s *stream) Tick(now time.Time) (leave func()) {
	if !s.expires.IsZero() && !now.Before(s.expires) {
		return func() { s.Ended(auth.ErrTokenExpired) }
	}
	if now.Sub(s.sock.LastWrite()) < s.h.opts.PingInterval {
		return nil
	}
	res, err := s.sock.TryWrite(nil, [][]byte{s.h.opts.Encoder.Ping()})
	switch res {
	case Written:
		s.pings++
	case Partial:
		s.pings++
		return s.sub.behind(nil) // the rest of it under the stall timeout
	case Failed:
		return func() { s.Ended(&WriteError{err}) }
	}
	return nil
}

// Ended implements Owner: it tells the client why, when the encoder has
// something to say, and ends the stream.
func (s *stream) Ended(err error) {
	e := s.h.endOf(err, !s.expires.IsZero() && !time.Now().Before(s.expires))
	if e.msg == nil {
		s.end(e)
		return
	}
	// Not from the pump's goroutine: the last words wait for the client,
	// up to the stall timeout.
	go func() {
		s.sock.WriteBuffers(nil, e.msg)
		s.end(e)
	}()
}

// hangUp is called when the client has closed its end: a stream in its
// pump is ended at once; one on a goroutine of its own is closed, so that
// the goroutine's next write fails (or it finds it was removed).
func (s *stream) hangUp() {
	if s.sub.Remove() {
		s.end(streamEnd{reason: "client went away", level: slog.LevelDebug})
		return
	}
	s.sock.Close()
}

// end closes the stream and releases what it holds, once.
func (s *stream) end(e streamEnd) {
	s.endOnce.Do(func() {
		if s.watched {
			s.h.hangups.Unwatch(s.sock.Raw())
		}
		s.sock.Close()
		s.pres.Stop()
		s.sub.Stop()
		s.h.conns.Add(-1)
		if s.release != nil {
			s.release()
		}
		commits, catchUps, resets := s.sub.Counts()
		s.h.logEnd(context.Background(), e, s.coll, s.sub.Subscription(), s.remote, s.start, commits, catchUps, resets, s.pings)
	})
}

// streamEnd says why a stream ended, and what tells the client.
type streamEnd struct {
	reason string
	level  slog.Level
	err    error
	// msg is the encoder's last message, nil for none.
	msg []byte
}

// endOf says why a stream ended from the error that ended it; expired
// tells that its token has expired.
func (h *Handler) endOf(err error, expired bool) streamEnd {
	var we *WriteError
	var ee *EncodeError
	switch {
	case errors.As(err, &ee):
		return streamEnd{reason: "encoding an event failed", level: slog.LevelError, err: err}
	case errors.As(err, &we) && we.Stalled():
		return streamEnd{reason: fmt.Sprintf("client stalled: write blocked longer than %s", h.opts.WriteTimeout), level: slog.LevelInfo, err: err}
	case errors.As(err, &we), errors.Is(err, ErrRemoved):
		return streamEnd{reason: "client went away", level: slog.LevelDebug, err: err}
	case expired || errors.Is(err, auth.ErrTokenExpired):
		// Tell the client why, so that it fetches a fresh token and
		// resumes from its cursor.
		return streamEnd{reason: "token expired", level: slog.LevelDebug, msg: h.opts.Encoder.End(EndExpired)}
	case errors.Is(err, viewsync.ErrClosed): // fanout.ErrClosed matches too
		return streamEnd{reason: "server closing", level: slog.LevelDebug, msg: h.opts.Encoder.End(EndClosing)}
	case errors.Is(err, fanout.ErrBusy):
		return streamEnd{reason: "server busy reading history", level: slog.LevelInfo, msg: h.opts.Encoder.End(EndBusy)}
	case errors.Is(err, context.Canceled):
		return streamEnd{reason: "client went away", level: slog.LevelDebug}
	}
	return streamEnd{reason: "subscription failed", level: slog.LevelWarn, err: err}
}

// logEnd logs the end of a stream.
func (h *Handler) logEnd(ctx context.Context, e streamEnd, coll string, sub *fanout.Subscription, remote string, start time.Time, commits, catchUps, resets, pings int) {
	h.log.Log(ctx, e.level, h.opts.Name+": stream ended",
		"reason", e.reason, "err", e.err, "collection", coll,
		"cursor", sub.Cursor().String(), "remote", remote,
		"took", time.Since(start), "commits", commits, "catchups", catchUps,
		"resets", resets, "pings", pings)
}

// writer is what a stream served from its handler's goroutine writes to:
// a Sock, or a ResponseWriter (respWriter).
type writer interface {
	// WriteBuffers writes bufs whole, under the stall timeout; skip is
	// nil.
	WriteBuffers(skip func() bool, bufs ...[]byte) error
	// LastWrite returns when bytes last went to the client.
	LastWrite() time.Time
}

// run serves a stream from the calling goroutine, writing to w, until it
// ends: it waits for events, pinging an idle client. Only the wait is
// bounded by the ping interval: a slow snapshot or catch-up read is never
// cut short.
func (h *Handler) run(ctx context.Context, w writer, sub *fanout.Subscription, commits, catchUps, resets, pings *int) streamEnd {
	for {
		ev, err := sub.NextIdle(ctx, time.Until(w.LastWrite().Add(h.opts.PingInterval)))
		switch {
		case errors.Is(err, fanout.ErrIdle):
			if err := w.WriteBuffers(nil, h.opts.Encoder.Ping()); err != nil {
				return h.endOf(&WriteError{err}, false)
			}
			*pings++
			continue
		case err != nil:
			e := h.endOf(err, auth.Expired(ctx))
			if e.msg != nil {
				w.WriteBuffers(nil, e.msg)
			}
			return e
		}
		bufs, _, err := encodeEvent(h.opts.Encoder, ev)
		if err != nil {
			return h.endOf(err, false)
		}
		if err := w.WriteBuffers(nil, bufs...); err != nil {
			return h.endOf(&WriteError{err}, false)
		}
		switch ev.Kind {
		case fanout.EventCommits:
			*commits += len(ev.Frames)
		case fanout.EventCatchUp:
			*catchUps++
		case fanout.EventReset:
			*resets++
		}
	}
}

// serveResponse streams through the ResponseWriter, from the handler's
// goroutine, until the stream ends.
func (h *Handler) serveResponse(w http.ResponseWriter, r *http.Request, coll string, sub *fanout.Subscription, pr auth.Principal, pres presenceRequest) {
	ctx, cancel := auth.UntilExpiry(r.Context(), pr)
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	start := time.Now()
	rw := &respWriter{w: w, rc: http.NewResponseController(w), timeout: h.opts.WriteTimeout, deadlines: true}
	if err := rw.rc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout)); errors.Is(err, http.ErrNotSupported) {
		rw.deadlines = false
		if !h.warnedDeadlines.Swap(true) {
			h.log.Warn(h.opts.Name + ": the ResponseWriter does not support write deadlines; stalled clients will not be cut off")
		}
	}
	h.setHeaders(w)
	w.WriteHeader(http.StatusOK)
	var commits, catchUps, resets, pings int
	var e streamEnd
	if err := rw.WriteBuffers(nil, h.opts.Preamble); err != nil {
		e = h.endOf(&WriteError{err}, false)
	} else if p, err := h.streamPresence(pres, pr, rw, fail); err != nil {
		e = h.endOf(err, false)
	} else {
		e = h.run(ctx, rw, sub, &commits, &catchUps, &resets, &pings)
		// Nothing is written once the handler returns.
		p.Stop()
	}
	if rw.deadlines {
		// A fresh deadline, so that the end of the response goes out
		// even after a long silence.
		rw.rc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
	}
	h.logEnd(r.Context(), e, coll, sub, r.RemoteAddr, start, commits, catchUps, resets, pings)
}

// writeBufferSize is the size of the buffer a batch of messages is
// gathered in before it goes to a ResponseWriter: many small messages
// leave in one write, large ones pass through. Buffers are pooled and held
// only while a batch is written, so idle streams hold none.
const writeBufferSize = 32 << 10

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

// respWriter writes a stream through its ResponseWriter, flushing after
// every write, each under a write deadline where the writer has them. Its
// writes are serialized: the stream's presence writes from a goroutine of
// its own.
type respWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	timeout   time.Duration
	deadlines bool

	mu   sync.Mutex
	last time.Time
}

// WriteBuffers implements writer.
func (rw *respWriter) WriteBuffers(_ func() bool, bufs ...[]byte) error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.deadlines {
		rw.rc.SetWriteDeadline(time.Now().Add(rw.timeout))
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(rw.w)
	for _, b := range bufs {
		bw.Write(b)
	}
	err := bw.Flush()
	bw.Reset(nil)
	writers.Put(bw)
	if err == nil {
		err = rw.rc.Flush()
	}
	if err == nil {
		rw.last = time.Now()
	}
	return err
}

// LastWrite implements writer.
func (rw *respWriter) LastWrite() time.Time {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.last
}
