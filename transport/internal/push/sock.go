package push

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/viewsync/viewsync/internal/netio"
	"github.com/viewsync/viewsync/transport/internal/live"
)

// Sock is the write side of a connection the server pushes to: every byte
// the server writes to it goes through the Sock, so that writes never
// interleave. A write either waits, at most the stall timeout, or does not
// wait at all (TryWrite); what a socket did not take then is kept pending
// and goes out before anything else.
type Sock struct {
	net.Conn
	// raw is the socket, for non-blocking writes; nil when the connection
	// allows none (not a socket, TLS, a platform without them).
	raw     syscall.RawConn
	timeout time.Duration
	// lastWrite is when bytes last went to the client (unix nanoseconds).
	lastWrite atomic.Int64

	mu      sync.Mutex
	pending []byte
}

// NewSock returns the Sock of c, whose writes may each take up to timeout
// before the client counts as stalled.
func NewSock(c net.Conn, timeout time.Duration) *Sock {
	s := &Sock{Conn: c, timeout: timeout}
	if sc, ok := c.(syscall.Conn); ok && netio.Supported {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	s.lastWrite.Store(time.Now().UnixNano())
	return s
}

// Raw returns the socket under the connection, or nil when it cannot be
// written without blocking.
func (s *Sock) Raw() syscall.RawConn { return s.raw }

// LastWrite returns when bytes last went to the client.
func (s *Sock) LastWrite() time.Time { return time.Unix(0, s.lastWrite.Load()) }

// Write writes p whole, after any pending bytes, under the stall timeout.
func (s *Sock) Write(p []byte) (int, error) {
	if err := s.WriteBuffers(nil, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteBuffers writes bufs whole, in one vectored write where it can,
// after any pending bytes, under the stall timeout, unless skip (called
// with the write lock held) says not to.
func (s *Sock) WriteBuffers(skip func() bool, bufs ...[]byte) error {
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
	if err == nil {
		s.lastWrite.Store(time.Now().UnixNano())
	}
	return err
}

// Flush writes the pending bytes, if any, under the stall timeout.
func (s *Sock) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *Sock) flushLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	defer s.Conn.SetWriteDeadline(time.Time{})
	s.Conn.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.Conn.Write(s.pending)
	if err == nil {
		s.pending = nil
		s.lastWrite.Store(time.Now().UnixNano())
	}
	return err
}

// TryResult is what TryWrite did.
type TryResult int

// Outcomes of TryWrite.
const (
	// Written: all of it.
	Written TryResult = iota
	// Partial: some; the rest is pending, to be flushed.
	Partial
	// Busy: nothing, because another write holds the connection or left
	// bytes pending, or the connection allows no non-blocking writes.
	Busy
	// Skipped: nothing, because skip said so.
	Skipped
	// Failed: nothing; the connection is broken.
	Failed
)

// TryWrite writes bufs without waiting, unless skip (called with the
// write lock held) says not to. When the socket takes only part, the rest
// is kept pending, to be written (Flush, WriteBuffers) before anything
// else.
func (s *Sock) TryWrite(skip func() bool, bufs [][]byte) (TryResult, error) {
	if s.raw == nil || !s.mu.TryLock() {
		return Busy, nil
	}
	defer s.mu.Unlock()
	switch {
	case skip != nil && skip():
		return Skipped, nil
	case len(s.pending) > 0:
		return Busy, nil
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	n, err := netio.TryWritev(s.raw, bufs)
	switch {
	case err != nil:
		return Failed, err
	case n > 0:
		s.lastWrite.Store(time.Now().UnixNano())
	}
	if n == total {
		return Written, nil
	}
	s.pending = live.AppendUnwritten(s.pending, bufs, n)
	return Partial, nil
}

// lock runs f with the write lock held: nothing is written meanwhile.
func (s *Sock) lock(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// WriteError is a write to the client that failed.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write to the client: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Stalled reports whether the write failed for its deadline: the client
// stopped reading.
func (e *WriteError) Stalled() bool { return IsTimeout(e.Err) }

// IsTimeout reports whether err is a deadline passing.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
