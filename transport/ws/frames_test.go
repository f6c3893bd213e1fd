package ws_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/ws"
)

// rawClient speaks WebSocket frame by frame, to send what a well-behaved
// library would not: fragments, control frames between them, frames split
// across writes, several frames in one write, unmasked frames.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func (e *env) dialRaw(t *testing.T) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d := gws.Dialer{Protocols: []string{protocol.WSSubprotocol}}
	conn, br, hs, err := d.Dial(ctx, e.url())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if hs.Protocol != protocol.WSSubprotocol {
		t.Fatalf("negotiated %q", hs.Protocol)
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: br}
}

// frame returns the bytes of one client frame (masked unless unmasked).
func frame(op gws.OpCode, fin bool, payload []byte, unmasked bool) []byte {
	f := gws.NewFrame(op, fin, payload)
	if !unmasked {
		f = gws.MaskFrame(f)
	}
	return gws.MustCompileFrame(f)
}

// write writes the chunks one by one, pausing between them so that each
// arrives on its own.
func (c *rawClient) write(chunks ...[]byte) {
	c.t.Helper()
	for i, b := range chunks {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := c.conn.Write(b); err != nil {
			c.t.Fatalf("write: %v", err)
		}
	}
}

// next reads the next frame from the server.
func (c *rawClient) next() (gws.Header, []byte) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	h, err := gws.ReadHeader(c.br)
	if err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	if h.Masked {
		c.t.Fatalf("server frame %+v is masked", h)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatalf("read payload: %v", err)
	}
	return h, p
}

// expectMessage reads frames until a text message and decodes it; it
// reports the pongs seen before it.
func (c *rawClient) expectMessage() (m protocol.ServerMessage, pongs []string) {
	c.t.Helper()
	for {
		h, p := c.next()
		switch h.OpCode {
		case gws.OpPong:
			pongs = append(pongs, string(p))
		case gws.OpText:
			if err := json.Unmarshal(p, &m); err != nil {
				c.t.Fatalf("message %s: %v", p, err)
			}
			return m, pongs
		case gws.OpPing:
		default:
			c.t.Fatalf("unexpected frame %+v %q", h, p)
		}
	}
}

// expectClose reads until the server's close frame and returns its status.
func (c *rawClient) expectClose() (gws.StatusCode, string) {
	c.t.Helper()
	for {
		h, p := c.next()
		if h.OpCode == gws.OpClose {
			return gws.ParseCloseFrameData(p)
		}
	}
}

func commitJSON(id, record string) []byte {
	b, err := json.Marshal(&protocol.CommitMessage{ID: protocol.StringID(id), Collection: "c", Ops: []protocol.Op{put(record, `1`)}})
	if err != nil {
		panic(err)
	}
	return b
}

// TestFramesAsTheyArrive: messages are read whatever the way their bytes
// arrive (split anywhere, several in one packet, fragmented with control
// frames between the fragments) and answered in order.
func TestFramesAsTheyArrive(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dialRaw(t)

	// A frame split inside its header, then inside its payload.
	whole := frame(gws.OpText, true, commitJSON("split", "a"), false)
	c.write(whole[:1], whole[1:5], whole[5:20], whole[20:])
	if m, _ := c.expectMessage(); m.Type != protocol.TypeResult || m.ID != protocol.StringID("split") {
		t.Fatalf("got %+v, want the result of split", m)
	}

	// Three messages and a ping in one write.
	var batch []byte
	for _, id := range []string{"b1", "b2", "b3"} {
		batch = append(batch, frame(gws.OpText, true, commitJSON(id, id), false)...)
	}
	batch = append(batch, frame(gws.OpPing, true, []byte("hi"), false)...)
	c.write(batch)
	var pongs []string
	for _, id := range []string{"b1", "b2", "b3"} {
		m, p := c.expectMessage()
		pongs = append(pongs, p...)
		if m.Type != protocol.TypeResult || m.ID != protocol.StringID(id) {
			t.Fatalf("got %+v, want the result of %s", m, id)
		}
	}

	// A message in three fragments, a ping and a pong between them, each
	// written on its own.
	msg := commitJSON("frag", "f")
	c.write(
		frame(gws.OpText, false, msg[:10], false),
		frame(gws.OpPing, true, []byte("mid"), false),
		frame(gws.OpContinuation, false, msg[10:30], false),
		frame(gws.OpPong, true, nil, false),
		frame(gws.OpContinuation, true, msg[30:], false),
	)
	m, p := c.expectMessage()
	pongs = append(pongs, p...)
	if m.Type != protocol.TypeResult || m.ID != protocol.StringID("frag") {
		t.Fatalf("got %+v, want the result of frag", m)
	}
	if len(pongs) != 2 || pongs[0] != "hi" || pongs[1] != "mid" {
		t.Fatalf("pongs %q, want [hi mid]", pongs)
	}
	for _, id := range []string{"a", "b1", "b2", "b3", "f"} {
		if r, err := e.collection("c").Get(context.Background(), id); err != nil || r.Version == 0 {
			t.Fatalf("record %s: %+v, %v", id, r, err)
		}
	}

	// The client closes: the server answers with the client's status and
	// ends the connection.
	c.write(frame(gws.OpClose, true, gws.NewCloseFrameBody(gws.StatusNormalClosure, "bye"), false))
	if code, _ := c.expectClose(); code != gws.StatusNormalClosure {
		t.Fatalf("close status %d, want %d", code, gws.StatusNormalClosure)
	}
	eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })
}

// TestBrokenFrames: frames that break the protocol close the connection
// with 1002 and change nothing.
func TestBrokenFrames(t *testing.T) {
	cases := []struct {
		name   string
		frames [][]byte
	}{
		{"unmasked", [][]byte{frame(gws.OpText, true, commitJSON("u", "x"), true)}},
		{"reserved opcode", [][]byte{frame(gws.OpCode(0x3), true, []byte("x"), false)}},
		{"continuation first", [][]byte{frame(gws.OpContinuation, true, commitJSON("c", "x"), false)}},
		{"fragmented ping", [][]byte{frame(gws.OpPing, false, nil, false)}},
		{"new message inside a fragmented one", [][]byte{
			frame(gws.OpText, false, []byte(`{"type":`), false),
			frame(gws.OpText, true, commitJSON("n", "x"), false),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.dialRaw(t)
			c.write(tc.frames...)
			if code, _ := c.expectClose(); code != gws.StatusProtocolError {
				t.Fatalf("close status %d, want %d", code, gws.StatusProtocolError)
			}
			c.conn.Close()
			eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })
			if r, err := e.collection("c").Get(context.Background(), "x"); err == nil {
				t.Fatalf("record x written: %+v", r)
			}
		})
	}
}

// TestTricklingClientIsCut: a client that sends part of a frame and then
// nothing holds its connection no longer than the write timeout.
func TestTricklingClientIsCut(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{WriteTimeout: 300 * time.Millisecond, PingInterval: time.Hour}})
	c := e.dialRaw(t)
	whole := frame(gws.OpText, true, commitJSON("t", "t"), false)
	c.write(whole[:8])
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	_, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was not cut: %v", err)
	}
	eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })
}

// TestCloseHandshake: a server-initiated close waits for the client's
// close frame, and the client sees the status before the connection ends.
func TestCloseHandshake(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dialRaw(t)
	c.write(frame(gws.OpText, true, commitJSON("x", "x"), false))
	c.expectMessage()
	done := make(chan error, 1)
	go func() { done <- e.h.Shutdown(context.Background()) }()
	if code, reason := c.expectClose(); code != gws.StatusGoingAway || reason != "server shutting down" {
		t.Fatalf("close %d %q, want 1001 server shutting down", code, reason)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) before the client answered the close", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := wsutil.WriteClientMessage(c.conn, gws.OpClose, gws.NewCloseFrameBody(gws.StatusGoingAway, "")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	if rest, err := io.ReadAll(c.br); err != nil || !bytes.Equal(rest, nil) {
		t.Fatalf("after the handshake: %q, %v; want the end of the connection", rest, err)
	}
}

// FuzzClientBytes sends arbitrary bytes after the upgrade: whatever they
// are, the server answers or closes, never hangs or panics, and the
// connection ends once the client has sent its bytes and hung up.
func FuzzClientBytes(f *testing.F) {
	f.Add(frame(gws.OpText, true, commitJSON("s", "a"), false))
	f.Add(append(frame(gws.OpText, false, []byte(`{"type":"ack",`), false),
		frame(gws.OpContinuation, true, []byte(`"collection":"c","version":0}`), false)...))
	f.Add(frame(gws.OpPing, true, []byte("p"), false))
	f.Add(frame(gws.OpClose, true, gws.NewCloseFrameBody(gws.StatusNormalClosure, ""), false))
	f.Add(frame(gws.OpClose, true, []byte{0x03, 0xe8, 0xff}, false))
	f.Add(frame(gws.OpBinary, true, []byte{1, 2, 3}, false))
	f.Add(frame(gws.OpText, true, []byte(`{"type":"subscribe","collection":"c"}`), true))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e := newEnv(t, &config{ws: ws.Options{MaxMessageBytes: 1 << 12, WriteTimeout: time.Second}})
		c := e.dialRaw(t)
		if _, err := c.conn.Write(b); err != nil {
			return // the server closed already
		}
		c.conn.(*net.TCPConn).CloseWrite()
		c.conn.SetReadDeadline(time.Now().Add(waitFor))
		io.Copy(io.Discard, c.br)
		eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })
	})
}
