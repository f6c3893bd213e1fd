package guard

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Defaults of BodyOptions.
const (
	// DefaultMaxBodyBytes is the default BodyOptions.MaxBytes: 1 MiB.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultBodyTimeout is the default BodyOptions.Timeout.
	DefaultBodyTimeout = 10 * time.Second
)

// refuseLinger bounds the wait for a refused client to hang up after the
// answer, reading what it still sends.
const refuseLinger = time.Second

// BodyOptions configure Bodies. The zero value means the defaults.
type BodyOptions struct {
	// MaxBytes is the largest request body: a request declaring a longer
	// Content-Length is answered 413 too_large at once, before anything
	// reads its body (so an "Expect: 100-continue" gets no 100 Continue),
	// and its connection is closed. Default DefaultMaxBodyBytes.
	MaxBytes int64
	// Timeout bounds the reading of a request's body, counted from when
	// the request reaches Bodies. A body not read whole by then fails the
	// handler's read; the answer is 408 timeout, in place of whatever the
	// handler answers, and the connection is closed. Default
	// DefaultBodyTimeout.
	Timeout time.Duration
	// Logger, when set, gets a debug line for each request refused or
	// timed out.
	Logger *slog.Logger
}

// Bodies returns a handler that bounds request bodies before next sees
// them:
//
//   - a request with a Transfer-Encoding (a chunked body, or any other) is
//     answered 400 bad_request and its connection closed, its body unread,
//     so that nothing sent behind it is taken for a request (a request with
//     both Content-Length and Transfer-Encoding is the classic smuggling
//     vector, and the HTTP server does not tell handlers it had both);
//   - a declared Content-Length over opts.MaxBytes is answered 413 at once;
//   - a body is read under a deadline of opts.Timeout, lifted once it is
//     read whole, so that a long call or long-poll that follows is not cut
//     short. Requests without a body (streams, WebSocket upgrades,
//     long-polls) are passed on untouched.
//
// nil opts means the defaults.
func Bodies(next http.Handler, opts *BodyOptions) (http.Handler, error) {
	var o BodyOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxBytes < 0 || o.Timeout < 0 {
		return nil, errors.New("guard: negative body limit")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBodyBytes
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultBodyTimeout
	}
	return &bodies{next: next, opts: o}, nil
}

type bodies struct {
	next http.Handler
	opts BodyOptions
}

func (b *bodies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.TransferEncoding) > 0 {
		b.debug(r, "request refused: it has a Transfer-Encoding", "transfer_encoding", r.TransferEncoding)
		refuseRequest(w, http.StatusBadRequest, protocol.CodeBadRequest, TransferEncodingRefused)
		return
	}
	if r.ContentLength > b.opts.MaxBytes {
		b.debug(r, "request refused: its body is too large", "content_length", r.ContentLength, "max_body", b.opts.MaxBytes)
		refuseRequest(w, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge,
			fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, b.opts.MaxBytes))
		return
	}
	if r.ContentLength <= 0 || r.Body == nil || r.Body == http.NoBody {
		b.next.ServeHTTP(w, r)
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(b.opts.Timeout)); err != nil {
		// Not a connection whose deadline can be set (HTTP/2, a test's
		// recorder): nothing to bound here.
		b.next.ServeHTTP(w, r)
		return
	}
	tb := &timedBody{ReadCloser: r.Body, rc: rc, timeout: b.opts.Timeout}
	tw := &bodyWriter{ResponseWriter: w, body: tb}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = tb
	b.next.ServeHTTP(tw, r2)
	if tb.timedOut.Load() {
		b.debug(r, "request body timed out", "timeout", b.opts.Timeout.String())
		if !tw.wrote {
			tw.answerTimeout()
		}
	}
}

// debug logs what happened to r, when there is a Logger.
func (b *bodies) debug(r *http.Request, msg string, args ...any) {
	if b.opts.Logger != nil {
		b.opts.Logger.Debug(msg, append([]any{"remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path}, args...)...)
	}
}

// timedBody is a request body read under a deadline.
type timedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	// timedOut is set once a read failed on the deadline; done once the
	// body was read whole and the deadline lifted.
	timedOut, done atomic.Bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		// Read whole: lift the deadline, so that the server's wait for the
		// client's next bytes (which cancels the request's context when it
		// fails) cannot fail on it. The server lifts it too when it starts
		// that wait; this keeps it so whatever the order.
		if b.done.CompareAndSwap(false, true) {
			b.rc.SetReadDeadline(time.Time{})
		}
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut.Store(true)
		err = fmt.Errorf("request body not received within %v: %w", b.timeout, err)
	}
	return n, err
}

// bodyWriter answers 408 in place of the handler's answer once the body
// timed out.
type bodyWriter struct {
	http.ResponseWriter
	body *timedBody
	// wrote is set once a final status was written (or replaced, when
	// replaced is set too).
	wrote, replaced bool
}

func (w *bodyWriter) WriteHeader(code int) {
	switch {
	case w.wrote && w.replaced:
		return
	case w.wrote, code >= 100 && code < 200:
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wrote = true
	if w.body.timedOut.Load() {
		w.answerTimeout()
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Flush flushes the answer, unless it was replaced.
func (w *bodyWriter) Flush() {
	if !w.replaced {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap returns the ResponseWriter under w, for http.ResponseController.
func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// answerTimeout writes the 408 answer, which closes the connection.
func (w *bodyWriter) answerTimeout() {
	w.wrote, w.replaced = true, true
	body := protocol.MarshalError(protocol.CodeTimeout,
		fmt.Sprintf("the request body did not arrive within %v", w.body.timeout))
	h := w.ResponseWriter.Header()
	for _, k := range []string{"Etag", "Last-Modified", "Location", "Content-Encoding"} {
		delete(h, k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "close")
	w.ResponseWriter.WriteHeader(http.StatusRequestTimeout)
	w.ResponseWriter.Write(body)
}

// refuseRequest answers a request whose body is not to be read, and closes
// its connection: on HTTP/1 it takes the connection over, writes the
// answer, and reads what the client still sends (a bounded time) before
// closing, so that the answer is not lost to a reset and no byte after the
// request's headers is ever taken for a request.
func refuseRequest(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		w.Header().Set("Connection", "close")
		protocol.WriteError(w, status, code, msg)
		return
	}
	answer(c, errorResponse(status, code, msg, nil), refuseLinger)
}
