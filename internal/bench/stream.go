package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/viewsync/viewsync/protocol"
)

// benchDialer opens the subscribers' connections, spreading them over the
// source addresses round-robin.
type benchDialer struct {
	ips  []net.IP
	next atomic.Uint64
	// client carries every subscriber's request: SSE streams and WebSocket
	// handshakes, each on a connection of its own.
	client *http.Client
	tr     *http.Transport
}

func newBenchDialer(ips []net.IP) *benchDialer {
	d := &benchDialer{ips: ips}
	d.tr = &http.Transport{
		DialContext:        d.dial,
		DisableCompression: true,
		// Streams never go back to the pool; keep none.
		MaxIdleConnsPerHost: -1,
	}
	d.client = &http.Client{Transport: d.tr}
	return d
}

// dial opens a TCP connection from the next source address.
func (d *benchDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	if len(d.ips) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: d.ips[(d.next.Add(1)-1)%uint64(len(d.ips))]}
	}
	return nd.DialContext(ctx, network, addr)
}

func (d *benchDialer) closeIdle() { d.tr.CloseIdleConnections() }

// eventKind tells what a benchEvent is.
type eventKind uint8

const (
	evCommit eventKind = iota
	evReset
	evCatchUp
)

// benchEvent is what a subscriber needs of one message: its kind, the
// version it brings the subscriber to, and for a commit the writer's send
// time found in its value. Commits leave epoch empty (it changes only with
// a reset), so that reading one allocates nothing for it.
type benchEvent struct {
	kind    eventKind
	epoch   string
	version uint64
	// sentNS is the "sent_ns" of the commit's first value, 0 if none.
	sentNS int64
}

// benchStream is one subscription's connection.
type benchStream interface {
	// next returns the next event.
	next() (benchEvent, error)
	close()
}

// open subscribes to collection over transport ("sse" or "ws"), from cur
// (nil: starting with a reset). The stream lives as long as ctx.
func (d *benchDialer) open(ctx context.Context, transport, base, collection string, cur *protocol.Cursor) (benchStream, error) {
	if transport == "ws" {
		return d.openWS(ctx, base, collection, cur)
	}
	return d.openSSE(ctx, base, collection, cur)
}

// sseStream is one subscription's Server-Sent Events stream.
type sseStream struct {
	body io.ReadCloser
	r    sseReader
}

func (d *benchDialer) openSSE(ctx context.Context, base, collection string, cur *protocol.Cursor) (*sseStream, error) {
	req, err := eventsRequest(ctx, base, collection, cur)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET events: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return &sseStream{body: resp.Body, r: sseReader{br: bufio.NewReaderSize(resp.Body, 8<<10)}}, nil
}

func (s *sseStream) close() { s.body.Close() }

// next reads the next event.
func (s *sseStream) next() (benchEvent, error) {
	var sent int64
	id, event, err := s.r.next(func(_, data []byte) { sent = extractInt(data, `"sent_ns":`) })
	if err != nil {
		return benchEvent{}, err
	}
	return parseSSEEvent(id, event, sent)
}

// sseReader reads a Server-Sent Events stream with a small line parser.
type sseReader struct {
	br        *bufio.Reader
	id, event []byte
}

// next reads lines up to the end of the next event (a blank line),
// skipping comments and what has no event type (the retry hint), and
// returns the event's id and type, valid until the next call. data is
// called with the type so far and the value of each data line, valid
// during the call only.
func (r *sseReader) next(data func(event, value []byte)) (id, event []byte, err error) {
	r.id, r.event = r.id[:0], r.event[:0]
	for {
		line, err := readLine(r.br)
		if err != nil {
			return nil, nil, err
		}
		if len(line) == 0 {
			if len(r.event) > 0 {
				return r.id, r.event, nil
			}
			r.id = r.id[:0]
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "id":
			r.id = append(r.id[:0], value...)
		case "event":
			r.event = append(r.event[:0], value...)
		case "data":
			data(r.event, value)
		}
	}
}

// readLine returns the next line without its end (LF or CRLF). The slice
// is valid until the next read; lines longer than the buffer are gathered
// into a new one.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseSSEEvent makes an event of an id (EPOCH:VERSION), a type and the
// send time found in its data.
func parseSSEEvent(id, event []byte, sent int64) (benchEvent, error) {
	i := bytes.LastIndexByte(id, ':')
	v, err := strconv.ParseUint(string(id[i+1:]), 10, 64)
	if err != nil {
		return benchEvent{}, fmt.Errorf("%s event with id %q", event, id)
	}
	ev := benchEvent{version: v, sentNS: sent}
	switch string(event) {
	case "commit":
		ev.kind = evCommit
	case "reset":
		ev.kind, ev.epoch = evReset, string(id[:max(i, 0)])
	case "catchup":
		ev.kind, ev.epoch = evCatchUp, string(id[:max(i, 0)])
	default:
		return benchEvent{}, fmt.Errorf("unknown event %q", event)
	}
	return ev, nil
}

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

func (d *benchDialer) openWS(ctx context.Context, base, collection string, cur *protocol.Cursor) (*wsStream, error) {
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
		return benchEvent{kind: evCommit, version: uint64(v), sentNS: extractInt(b, `"sent_ns":`)}, nil
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
