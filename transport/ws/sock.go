package ws

import (
	"bufio"
	"bytes"
	"net"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/transport/internal/push"
)

// sock is the connection under a WebSocket. Every byte the server writes
// goes through its push.Sock, control frames (pings, pongs, close) and data
// frames alike, so writes never interleave; it reads what the client sent
// with its upgrade request first.
type sock struct {
	*push.Sock
	// pre holds what the client sent after its upgrade request, read
	// before the connection.
	pre []byte
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

// newSock wraps a connection just upgraded; br is the HTTP server's reader
// of it, whose buffered bytes (what the client sent right after its
// upgrade request) are read first. Neither br nor the server's other
// buffers are kept.
func newSock(nc net.Conn, br *bufio.Reader, timeout time.Duration) *sock {
	s := &sock{Sock: push.NewSock(nc, timeout)}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		s.pre = bytes.Clone(b)
	}
	return s
}

// refuse closes a connection that is not served: it sends the close frame
// of st and ends the connection without waiting for the client's.
func (s *sock) refuse(st closeStatus) {
	s.WriteBuffers(nil, closeFrame(st))
	s.Close()
}

// closeFrame returns the close frame saying st.
func closeFrame(st closeStatus) []byte {
	return gws.MustCompileFrame(gws.NewCloseFrame(gws.NewCloseFrameBody(st.code, st.reason)))
}
