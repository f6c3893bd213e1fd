package ws

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/viewsync/viewsync/transport/internal/live"
)

// sock is the connection under a WebSocket: every byte the server writes
// goes through it, the library's control frames (pongs, close) and the
// data frames this package frames itself, so writes never interleave. It
// holds bytes a non-blocking write left over (pending) until they are out,
// before anything else.
type sock struct {
	net.Conn
	raw syscall.RawConn // nil: no non-blocking writes
	// pre holds what the client sent after its upgrade request, read
	// before the connection.
	pre []byte

	timeout time.Duration

	mu      sync.Mutex
	pending []byte
}

// Read reads what the client sent with its request first.
func (s *sock) Read(p []byte) (int, error) {
	if len(s.pre) > 0 {
		n := copy(p, s.pre)
		s.pre = s.pre[n:]
		return n, nil
	}
	return s.Conn.Read(p)
}

// Write writes p whole, after any pending bytes, under the write timeout.
// The library writes its control frames with it.
func (s *sock) Write(p []byte) (int, error) {
	if err := s.write(nil, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// write writes bufs whole, in one writev where it can, after any pending
// bytes, under the write timeout, unless skip (checked with the write lock
// held) says not to.
func (s *sock) write(skip func() bool, bufs ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if skip != nil && skip() {
		return nil
	}
	if err := s.flushLocked(); err != nil {
		return err
	}
	// A deadline left behind would fail the next non-blocking write.
	defer s.Conn.SetWriteDeadline(time.Time{})
	s.Conn.SetWriteDeadline(time.Now().Add(s.timeout))
	nb := net.Buffers(bufs)
	_, err := nb.WriteTo(s.Conn)
	return err
}

// flush writes the pending bytes, if any.
func (s *sock) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *sock) flushLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	defer s.Conn.SetWriteDeadline(time.Time{})
	s.Conn.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.Conn.Write(s.pending)
	if err == nil {
		s.pending = nil
	}
	return err
}

// Outcomes of tryWrite.
type tryResult int

const (
	written tryResult = iota // all of it
	partial                  // some; the rest is pending
	busy                     // none: another write is under way or pending
	skipped                  // none: skip said so
	failed                   // the connection is broken
)

// tryWrite writes bufs without waiting: when the socket takes only part,
// the rest is kept pending, to be written (flush) before anything else.
func (s *sock) tryWrite(skip func() bool, bufs [][]byte) (tryResult, error) {
	if s.raw == nil || !s.mu.TryLock() {
		return busy, nil
	}
	defer s.mu.Unlock()
	switch {
	case skip != nil && skip():
		return skipped, nil
	case len(s.pending) > 0:
		return busy, nil
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	n, err := live.TryWritev(s.raw, bufs)
	switch {
	case err != nil:
		return failed, err
	case n == total:
		return written, nil
	}
	s.pending = live.AppendUnwritten(s.pending, bufs, n)
	return partial, nil
}

// hijacker hands the WebSocket library a sock instead of the raw
// connection, with small buffers: the library only reads client frames
// through them and writes control frames.
type hijacker struct {
	http.ResponseWriter
	timeout time.Duration
	sock    *sock
}

// readBufferSize is the library's read buffer per connection.
const readBufferSize = 512

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	s := &sock{Conn: conn, timeout: h.timeout}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		s.pre = bytes.Clone(b)
	}
	if sc, ok := conn.(syscall.Conn); ok && live.Supported {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	h.sock = s
	return s, bufio.NewReadWriter(bufio.NewReaderSize(s, readBufferSize), bufio.NewWriterSize(s, 160)), nil
}

// Unwrap lets http.ResponseController reach the ResponseWriter.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

var errNotHijacked = errors.New("ws: the connection was not hijacked")
