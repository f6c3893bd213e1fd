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
	"time"

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

// sseStream reads a Server-Sent Events stream with a small line parser.
type sseStream struct {
	body io.ReadCloser
	br   *bufio.Reader
}

func (d *benchDialer) openSSE(ctx context.Context, base, collection string, cur *protocol.Cursor) (*sseStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/collections/"+collection+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if cur != nil {
		req.Header.Set("Last-Event-ID", cur.String())
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
	return &sseStream{body: resp.Body, br: bufio.NewReaderSize(resp.Body, 8<<10)}, nil
}

func (s *sseStream) close() { s.body.Close() }

// next reads lines up to the end of the next event (a blank line),
// skipping comments and the retry hint.
func (s *sseStream) next() (benchEvent, error) {
	var (
		id, event []byte
		sent      int64
	)
	for {
		line, err := readLine(s.br)
		if err != nil {
			return benchEvent{}, err
		}
		if len(line) == 0 {
			if len(event) == 0 {
				id, sent = nil, 0
				continue // the retry hint
			}
			return parseSSEEvent(id, event, sent)
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "id":
			id = append(id[:0], value...)
		case "event":
			event = append(event[:0], value...)
		case "data":
			sent = extractInt(value, `"sent_ns":`)
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
	s.buf = s.buf[:0]
	for {
		h, err := gws.ReadHeader(s.br)
		if err != nil {
			return nil, err
		}
		if h.Length > 64<<20 || h.Masked {
			return nil, fmt.Errorf("server frame of %d bytes (masked %v)", h.Length, h.Masked)
		}
		n := len(s.buf)
		s.buf = slices.Grow(s.buf, int(h.Length))[:n+int(h.Length)]
		if _, err := io.ReadFull(s.br, s.buf[n:]); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case gws.OpText, gws.OpContinuation:
			if h.Fin {
				return s.buf, nil
			}
			continue
		case gws.OpPing:
			err = wsutil.WriteClientMessage(s.conn, gws.OpPong, s.buf[n:])
		case gws.OpClose:
			code, reason := gws.ParseCloseFrameData(s.buf[n:])
			err = fmt.Errorf("server closed the connection: %d %s", code, reason)
		case gws.OpPong:
		default:
			err = fmt.Errorf("server sent a %v frame", h.OpCode)
		}
		if err != nil {
			return nil, err
		}
		s.buf = s.buf[:n]
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

// benchSub is one subscriber: it connects, reads, and reconnects from its
// cursor when its connection ends, counting what it sees.
type benchSub struct {
	// Updated by its goroutine, read by the progress line and the drain.
	last        atomic.Uint64
	deliveries  atomic.Int64
	established atomic.Bool
	catchUps    atomic.Int64
	errs        atomic.Int64

	// Owned by its goroutine; read once it has ended.
	epoch string
	// missing counts commits skipped without a catch-up, dups commits
	// delivered again, compacted the commits catch-ups stood for, resets
	// the resets after the first.
	missing, dups, compacted, resets, reconnects int64
	lat                                          []time.Duration
	lastErr                                      error
}

// subEnv is what subscribers share.
type subEnv struct {
	target *benchTarget
	common *benchCommon
	// sem bounds the connections being set up.
	sem chan struct{}
	// ready is called once per subscriber, at its first reset.
	ready func()
	// record says whether to keep latency samples.
	record bool
}

// run keeps the subscriber connected until ctx ends.
func (s *benchSub) run(ctx context.Context, env *subEnv) {
	backoff := 100 * time.Millisecond
	for first := true; ; first = false {
		if !first {
			s.reconnects++
		}
		err := s.connect(ctx, env)
		if ctx.Err() != nil {
			return
		}
		s.errs.Add(1)
		s.lastErr = err
		t := time.NewTimer(backoff/2 + time.Duration(time.Now().UnixNano()%int64(backoff)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// connect makes one connection and reads it until it ends. The setup slot
// is held until the stream is open and, for a first connection, until its
// reset has arrived; the connection must be open within the connect
// timeout.
func (s *benchSub) connect(ctx context.Context, env *subEnv) error {
	select {
	case env.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	held := true
	release := func() {
		if held {
			held = false
			<-env.sem
		}
	}
	defer release()
	var cur *protocol.Cursor
	if s.established.Load() {
		cur = &protocol.Cursor{Epoch: s.epoch, Version: s.last.Load()}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(env.common.connectTimeout, cancel)
	st, err := env.target.dialer.open(cctx, env.common.transport, env.target.base, env.common.collection, cur)
	if err != nil {
		if !timer.Stop() {
			return fmt.Errorf("not connected within %v", env.common.connectTimeout)
		}
		return err
	}
	defer st.close()
	if cur != nil {
		// A resumed stream may stay silent until the next commit.
		timer.Stop()
		release()
	}
	for {
		ev, err := st.next()
		if err != nil {
			if !timer.Stop() && !s.established.Load() {
				return fmt.Errorf("no reset within %v", env.common.connectTimeout)
			}
			return err
		}
		now := time.Now()
		switch ev.kind {
		case evReset:
			timer.Stop()
			s.epoch = ev.epoch
			s.last.Store(ev.version)
			if s.established.CompareAndSwap(false, true) {
				release()
				env.ready()
			} else {
				s.resets++
			}
		case evCatchUp:
			s.epoch = ev.epoch
			if last := s.last.Load(); ev.version > last {
				s.compacted += int64(ev.version - last)
				s.last.Store(ev.version)
			}
			s.catchUps.Add(1)
		case evCommit:
			switch last := s.last.Load(); {
			case ev.version == last+1:
			case ev.version <= last:
				s.dups++
				continue
			default:
				s.missing += int64(ev.version - last - 1)
			}
			s.last.Store(ev.version)
			s.deliveries.Add(1)
			if env.record && ev.sentNS > 0 {
				s.lat = append(s.lat, now.Sub(time.Unix(0, ev.sentNS)))
			}
		}
	}
}
