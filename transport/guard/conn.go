package guard

import (
	"container/list"
	"io"
	"net"
	"sync/atomic"
)

// state is what a Listener knows of one connection it accepted.
type state struct {
	l *Listener
	// conn is the wrapper handed to the server, closed to evict it.
	conn net.Conn
	// addr is the client address the connection counts against.
	addr string
	// health marks a connection accepted beyond a limit (reason): it may
	// ask for one health path, nothing else.
	health bool
	reason string
	// hijacked is set once a handler took the connection over: from then
	// on its writes are not the server's and are never rewritten.
	hijacked atomic.Bool

	// Guarded by l.mu. released is set once the connection's place is
	// given back (closed or evicted); idle is its element in l.idle while
	// it waits for a next request on a kept-alive connection.
	released bool
	idle     *list.Element
}

// write writes p to w, the underlying connection, rewriting the HTTP
// server's own plain-text error answers as JSON.
func (s *state) write(w io.Writer, p []byte) (int, error) {
	if !s.hijacked.Load() {
		if b, ok := rewriteCanned(p); ok {
			if _, err := w.Write(b); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return w.Write(p)
}

// conn is a connection a Listener accepted: its Write rewrites the
// server's plain-text error answers, its Close gives back its place.
type conn struct {
	net.Conn
	st *state
}

func (c *conn) Write(p []byte) (int, error) { return c.st.write(c.Conn, p) }

func (c *conn) Close() error {
	c.st.l.release(c.st)
	return c.Conn.Close()
}

// CloseWrite shuts down the writing side when the connection can, as the
// HTTP server does before it stops reading a connection it refused.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tcpConn is conn for TCP connections. Embedding *net.TCPConn keeps what
// it can do beyond net.Conn visible to the server and to handlers that
// hijack it: SyscallConn (non-blocking writes, hang-up watching), CloseWrite,
// ReadFrom (sendfile) and the writev behind net.Buffers. Only Write and
// Close are its own.
type tcpConn struct {
	*net.TCPConn
	st *state
}

func (c *tcpConn) Write(p []byte) (int, error) { return c.st.write(c.TCPConn, p) }

func (c *tcpConn) Close() error {
	c.st.l.release(c.st)
	return c.TCPConn.Close()
}

// wrap returns the connection handed to the server for c.
func wrap(c net.Conn, st *state) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		st.conn = &tcpConn{TCPConn: tc, st: st}
	} else {
		st.conn = &conn{Conn: c, st: st}
	}
	return st.conn
}

// stateOf returns the state of a connection a Listener accepted, looking
// through a TLS connection to the one under it; nil for others.
func stateOf(c net.Conn) *state {
	switch c := c.(type) {
	case *tcpConn:
		return c.st
	case *conn:
		return c.st
	case interface {
		net.Conn
		NetConn() net.Conn
	}:
		if nc := c.NetConn(); nc != nil && nc != net.Conn(c) {
			return stateOf(nc)
		}
	}
	return nil
}
