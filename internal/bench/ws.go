package bench

// Reading WebSocket messages from a server: a subscriber's connection
// and the frame reader that history's readers share.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/viewsync/viewsync/protocol"
)

// wsStream reads one subscription on a WebSocket connection of its own,
// frame by frame, into one reused buffer: the loader shares the machine
// with the server, and what it spends per message is taken from it.
type wsStream struct {
	conn net.Conn
	br   *bufio.Reader
	// buf holds the message being read.
	buf []byte
	// stop undoes the closing of conn when the subscription's context
	// ends.
	stop func() bool
}

func (d *benchDialer) openWS(ctx context.Context, base, collection, where string, cur *protocol.Cursor) (*wsStream, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/ws"
	dl := gws.Dialer{Protocols: []string{protocol.WSSubprotocol}, NetDial: d.dial}
	conn, br, hs, err := dl.Dial(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if hs.Protocol != protocol.WSSubprotocol {
		conn.Close()
		return nil, fmt.Errorf("dial: the server did not take subprotocol %s", protocol.WSSubprotocol)
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 4<<10)
	}
	m := &protocol.SubscribeMessage{Collection: collection}
	if where != "" {
		m.Where = json.RawMessage(where)
	}
	if cur != nil {
		v := cur.Version
		m.After, m.Epoch = &v, cur.Epoch
	}
	b, err := json.Marshal(m)
	if err == nil {
		err = wsutil.WriteClientText(conn, b)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	// The context's end ends the reads, as it does an SSE stream's.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	return &wsStream{conn: conn, br: br, stop: stop}, nil
}

func (s *wsStream) close() {
	s.stop()
	s.conn.Close()
}

// message reads the next text message, answering pings on the way. The
// bytes are valid until the next call.
func (s *wsStream) message() ([]byte, error) {
	var err error
	s.buf, err = readWSText(s.br, s.conn, s.buf)
	return s.buf, err
}

// wsClosed is the close frame a server sent.
type wsClosed struct {
	code   gws.StatusCode
	reason string
}

func (e *wsClosed) Error() string {
	return fmt.Sprintf("server closed the connection: %d %s", e.code, e.reason)
}

// readWSText reads the next text message from a server into buf, answering
// pings on w; a close frame is a *wsClosed error. (The library's own
// control handling refuses some codes the server may send, like 1013.)
func readWSText(rd io.Reader, w io.Writer, buf []byte) ([]byte, error) {
	msg := buf[:0]
	for {
		h, err := gws.ReadHeader(rd)
		if err != nil {
			return nil, err
		}
		if h.Length > 64<<20 || h.Masked {
			return nil, fmt.Errorf("server frame of %d bytes (masked %v)", h.Length, h.Masked)
		}
		n := len(msg)
		msg = slices.Grow(msg, int(h.Length))[:n+int(h.Length)]
		if _, err := io.ReadFull(rd, msg[n:]); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case gws.OpText, gws.OpContinuation:
			if h.Fin {
				return msg, nil
			}
			continue
		case gws.OpPing:
			err = wsutil.WriteClientMessage(w, gws.OpPong, msg[n:])
		case gws.OpClose:
			code, reason := gws.ParseCloseFrameData(msg[n:])
			if code == 0 {
				code = gws.StatusNoStatusRcvd
			}
			err = &wsClosed{code: code, reason: reason}
		case gws.OpPong:
		default:
			err = fmt.Errorf("server sent a %v frame", h.OpCode)
		}
		if err != nil {
			return nil, err
		}
		msg = msg[:n]
	}
}

// commitPrefix starts every commit message (fanout encodes them so).
var commitPrefix = []byte(`{"type":"commit",`)

// next reads the next message. Commits, nearly all of them, are read by
// looking up two fields; the rest are decoded whole.
func (s *wsStream) next() (benchEvent, error) {
	b, err := s.message()
	if err != nil {
		return benchEvent{}, err
	}
	if bytes.HasPrefix(b, commitPrefix) {
		v := extractInt(b, `"version":`)
		if v <= 0 {
			return benchEvent{}, fmt.Errorf("commit without a version: %.200s", b)
		}
		return benchEvent{kind: evCommit, version: uint64(v), after: uint64(extractInt(b, `"after":`)), sentNS: extractInt(b, `"sent_ns":`)}, nil
	}
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		return benchEvent{}, err
	}
	switch m.Type {
	case protocol.TypeReset:
		return benchEvent{kind: evReset, epoch: m.Epoch, version: m.Version}, nil
	case protocol.TypeCatchUp:
		return benchEvent{kind: evCatchUp, epoch: m.Epoch, version: m.Version}, nil
	case protocol.TypeProgress:
		return benchEvent{kind: evProgress, version: m.Version}, nil
	case protocol.TypeError:
		return benchEvent{}, fmt.Errorf("server error %s: %s", m.Code, m.Message)
	}
	return benchEvent{}, fmt.Errorf("unexpected %s message", m.Type)
}

// extractInt returns the non-negative integer that follows the first
// occurrence of key in b, or 0 when there is none.
func extractInt(b []byte, key string) int64 {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0
	}
	var n int64
	for _, c := range b[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
