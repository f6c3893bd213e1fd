package ws

import (
	"bufio"
	"bytes"
	"net"
	"sync"
	"syscall"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/transport/internal/live"
)

// sock is the connection under a WebSocket: every byte the server writes
// goes through it, control frames (pings, pongs, close) and data frames,
// so writes never interleave. It
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
// The library's control-frame handler writes its answers (pongs, the echo
// of a client's close) with it.
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

// newSock wraps a connection just upgraded; br is the HTTP server's reader
// of it, whose buffered bytes (what the client sent right after its
// upgrade request) are read first. Neither br nor the server's other
// buffers are kept.
func newSock(nc net.Conn, br *bufio.Reader, timeout time.Duration) *sock {
	s := &sock{Conn: nc, timeout: timeout}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		s.pre = bytes.Clone(b)
	}
	if sc, ok := nc.(syscall.Conn); ok && live.Supported {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	return s
}

// refuse closes a connection that is not served: it sends the close frame
// of st and ends the connection without waiting for the client's.
func (s *sock) refuse(st closeStatus) {
	s.write(nil, closeFrame(st))
	s.Close()
}

// closeFrame returns the close frame saying st.
func closeFrame(st closeStatus) []byte {
	return gws.MustCompileFrame(gws.NewCloseFrame(gws.NewCloseFrameBody(st.code, st.reason)))
}
