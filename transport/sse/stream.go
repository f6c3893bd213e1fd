package sse

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
)

// writeBufferSize is the size of the buffer a batch of events is gathered
// in before it goes to the connection: many small events leave in one
// write, large ones pass through. Buffers are pooled and held only while a
// batch is written, so idle streams hold none.
const writeBufferSize = 32 << 10

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

var pingEvent = []byte(": ping\n\n")

// stream writes one subscription's events to one client. It belongs to the
// handler goroutine serving the request.
type stream struct {
	h   *Handler
	w   http.ResponseWriter
	rc  *http.ResponseController
	sub *fanout.Subscription
	// deadlines is cleared when the writer does not support write
	// deadlines.
	deadlines bool
	// lastWrite is when the stream last wrote; pings are due PingInterval
	// after it.
	lastWrite time.Time

	commits, catchups, resets, pings int
}

// streamEnd says why a stream ended.
type streamEnd struct {
	reason string
	level  slog.Level
	err    error
}

func newStream(h *Handler, w http.ResponseWriter, sub *fanout.Subscription) *stream {
	return &stream{h: h, w: w, rc: http.NewResponseController(w), sub: sub, deadlines: true}
}

// run sends the headers and then events until the client goes away, a
// write fails or stalls, or the subscription ends.
func (s *stream) run(ctx context.Context) streamEnd {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.h.opts.WriteTimeout)); errors.Is(err, http.ErrNotSupported) {
		s.deadlines = false
		if !s.h.warnedDeadlines.Swap(true) {
			s.h.log.Warn("sse: the ResponseWriter does not support write deadlines; stalled clients will not be cut off")
		}
	}
	setStreamHeaders(s.w)
	s.w.WriteHeader(http.StatusOK)
	s.w.Write(s.h.retry)
	if err := s.flush(); err != nil {
		return s.writeFailed(err)
	}

	for {
		// Ping when nothing was written for a ping interval. Only the wait
		// is bounded: a slow snapshot or catch-up read is never cut short.
		ev, err := s.sub.NextIdle(ctx, time.Until(s.lastWrite.Add(s.h.opts.PingInterval)))
		switch {
		case errors.Is(err, fanout.ErrIdle):
			if err := s.ping(); err != nil {
				return s.writeFailed(err)
			}
			continue
		case err == nil:
		case auth.Expired(ctx):
			// Tell the client why, so that it fetches a fresh token and
			// resumes from its cursor.
			s.setDeadline()
			s.w.Write(expiredEvent)
			s.flush()
			return streamEnd{reason: "token expired", level: slog.LevelDebug}
		case ctx.Err() != nil:
			return streamEnd{reason: "client went away", level: slog.LevelDebug}
		case errors.Is(err, viewsync.ErrClosed): // fanout.ErrClosed matches too
			s.endCleanly()
			return streamEnd{reason: "server closing", level: slog.LevelDebug}
		case errors.Is(err, fanout.ErrBusy):
			s.setDeadline()
			s.w.Write(busyEvent)
			s.flush()
			return streamEnd{reason: "server busy reading history", level: slog.LevelInfo}
		default:
			return streamEnd{reason: "subscription failed", level: slog.LevelWarn, err: err}
		}
		if err := s.send(ev); err != nil {
			if _, ok := errors.AsType[*encodeError](err); ok {
				return streamEnd{reason: "encoding an event failed", level: slog.LevelError, err: err}
			}
			return s.writeFailed(err)
		}
	}
}

// send writes one event (a batch of commits, a catch-up or a reset) and
// flushes it, under one write deadline.
func (s *stream) send(ev fanout.Event) error {
	s.setDeadline()
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(s.w)
	defer func() {
		bw.Reset(nil)
		writers.Put(bw)
	}()
	if err := appendEvent(bw, ev, &s.commits, &s.catchups, &s.resets); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return s.flush()
}

// eventWriter is what events are written into: a bufio.Writer or a
// bytes.Buffer.
type eventWriter interface {
	io.Writer
	io.StringWriter
	AvailableBuffer() []byte
}

// appendEvent writes one event into w and counts it. Commits are written
// from their frames' JSON; a catch-up or a reset is encoded here. An encoding failure is an *encodeError.
func appendEvent(w eventWriter, ev fanout.Event, commits, catchups, resets *int) error {
	switch ev.Kind {
	case fanout.EventCommits:
		for _, f := range ev.Frames {
			// Head, data, tail: a page read for this client alone is not
			// encoded into events it would keep.
			w.Write(f.AppendSSEHead(w.AvailableBuffer()))
			w.Write(f.JSON())
			w.Write(fanout.SSETail)
		}
		*commits += len(ev.Frames)
		// The slice is the subscription's own buffer, reused by the next
		// call: drop its references, so that a later, shorter batch does
		// not keep these frames alive once the topic has let them go.
		clear(ev.Frames)
	case fanout.EventCatchUp:
		data, err := json.Marshal(ev.CatchUp)
		if err != nil {
			return &encodeError{fmt.Errorf("sse: encode catchup: %w", err)}
		}
		writeEvent(w, "catchup", protocol.Cursor{Epoch: ev.CatchUp.Epoch, Version: ev.CatchUp.Version}, data)
		*catchups++
	case fanout.EventReset:
		data, err := json.Marshal(ev.Reset)
		if err != nil {
			return &encodeError{fmt.Errorf("sse: encode reset: %w", err)}
		}
		writeEvent(w, "reset", protocol.Cursor{Epoch: ev.Reset.Epoch, Version: ev.Reset.Version}, data)
		*resets++
	default:
		return &encodeError{fmt.Errorf("sse: unknown event kind %d", int(ev.Kind))}
	}
	return nil
}

// encodeError is an event that could not be encoded, as opposed to one
// that could not be written.
type encodeError struct{ err error }

func (e *encodeError) Error() string { return e.err.Error() }
func (e *encodeError) Unwrap() error { return e.err }

// writeEvent writes one event whose data is JSON from encoding/json, which
// writes no raw line breaks (control characters in strings are escaped,
// raw values compacted): the data is one line. Errors stick in bw.
func writeEvent(bw eventWriter, kind string, id protocol.Cursor, data []byte) {
	bw.WriteString("id: ")
	bw.Write(id.AppendTo(bw.AvailableBuffer()))
	bw.WriteString("\nevent: ")
	bw.WriteString(kind)
	bw.WriteString("\ndata: ")
	bw.Write(data)
	bw.WriteString("\n\n")
}

// busyEvent ends a stream whose read of history waited in vain for the
// server's history memory: the client resumes from its cursor later.
var busyEvent = []byte("event: error\ndata: " + string(protocol.MarshalError(protocol.CodeUnavailable, "too many clients are reading history at once; resume from your cursor later")) + "\n\n")

// expiredEvent ends a stream whose token expired: an "error" event with
// the contract's error body.
var expiredEvent = []byte("event: error\ndata: " + string(protocol.MarshalError(protocol.CodeUnauthorized, "token expired; reconnect with a fresh token")) + "\n\n")

// ping writes a keep-alive comment.
func (s *stream) ping() error {
	s.setDeadline()
	s.w.Write(pingEvent)
	s.pings++
	return s.flush()
}

// flush sends what the response holds to the client.
func (s *stream) flush() error {
	if err := s.rc.Flush(); err != nil {
		return err
	}
	s.lastWrite = time.Now()
	return nil
}

// setDeadline bounds the next write by WriteTimeout.
func (s *stream) setDeadline() {
	if s.deadlines {
		s.rc.SetWriteDeadline(time.Now().Add(s.h.opts.WriteTimeout))
	}
}

// endCleanly gives the end of the response (the last chunk) a fresh
// deadline, so that a stream ended by the server closes cleanly even after
// a long silence.
func (s *stream) endCleanly() { s.setDeadline() }

// writeFailed says why a write failed: it timed out (the client stalled)
// or the connection is gone.
func (s *stream) writeFailed(err error) streamEnd {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return streamEnd{
			reason: fmt.Sprintf("client stalled: write blocked longer than %s", s.h.opts.WriteTimeout),
			level:  slog.LevelInfo,
			err:    err,
		}
	}
	return streamEnd{reason: "client went away", level: slog.LevelDebug, err: err}
}
