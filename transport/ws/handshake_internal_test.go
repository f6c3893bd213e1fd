package ws

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// hijacker is a ResponseWriter whose connection can be hijacked; what the
// upgrader writes to the connection lands in out.
type hijacker struct {
	header http.Header
	out    bytes.Buffer
}

func (h *hijacker) Header() http.Header         { return h.header }
func (h *hijacker) Write(b []byte) (int, error) { return h.out.Write(b) }
func (h *hijacker) WriteHeader(int)             {}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := &bufferConn{out: &h.out}
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// bufferConn is a connection that reads nothing and writes to out.
type bufferConn struct {
	net.Conn
	out *bytes.Buffer
}

func (c *bufferConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *bufferConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *bufferConn) Close() error                     { return nil }
func (c *bufferConn) SetDeadline(time.Time) error      { return nil }
func (c *bufferConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bufferConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzHandshake sends upgrade requests with arbitrary Connection, Upgrade,
// Sec-WebSocket-Version, Sec-WebSocket-Key and Sec-WebSocket-Protocol
// headers. handshake either refuses one with the contract's JSON error
// body (400, or 426 naming the version and the protocol to upgrade to), or
// takes it, and then the handler's upgrader must switch protocols, never
// refuse in plain text; it answers viewsync.v1 exactly when it was offered.
func FuzzHandshake(f *testing.F) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	for _, s := range [][5]string{
		{"Upgrade", "websocket", "13", key, protocol.WSSubprotocol},
		{"keep-alive, Upgrade", "WebSocket", "13", key, "chat, " + protocol.WSSubprotocol},
		{"Upgrade", "websocket", "13", key, ""},
		{"Upgrade", "websocket", "8", key, protocol.WSSubprotocol},
		{"Upgrade", "websocket", "", key, protocol.WSSubprotocol},
		{"Upgrade", "websocket", "13", "short", protocol.WSSubprotocol},
		{"Upgrade", "websocket", "13", "!!!!!!!!!!!!!!!!!!!!!!!!", protocol.WSSubprotocol},
		{"Upgrade", "websocket", "13", key, `"viewsync.v1"`},
		{"Upgrade", "websocket", "13", key, "viewsync.v1; q=1"},
		{"Upgrade", "websocket", "13", key, "(comment), viewsync.v1"},
		{"Upgrade, (x", "websocket", "13", key, ""},
		{"close", "websocket", "13", key, ""},
		{"", "", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	plain, v1 := upgraders(time.Second)
	f.Fuzz(func(t *testing.T, connection, upgrade, version, key, offer string) {
		r := httptest.NewRequest(http.MethodGet, "http://viewsync.local/v1/ws", nil)
		for name, v := range map[string]string{
			"Connection": connection, "Upgrade": upgrade, "Sec-Websocket-Version": version,
			"Sec-Websocket-Key": key, "Sec-Websocket-Protocol": offer,
		} {
			if v != "" {
				r.Header[name] = []string{v}
			}
		}
		w := httptest.NewRecorder()
		offered, ok := handshake(w, r)
		if !ok {
			var eb protocol.ErrorBody
			switch {
			case w.Code != http.StatusBadRequest && w.Code != http.StatusUpgradeRequired:
				t.Fatalf("refused with status %d", w.Code)
			case w.Header().Get("Content-Type") != "application/json" || json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Error == nil || eb.Error.Code != protocol.CodeBadRequest || eb.Error.Message == "":
				t.Fatalf("refused with %q, %q: not the contract's error body", w.Header().Get("Content-Type"), w.Body)
			case w.Code == http.StatusUpgradeRequired && (w.Header().Get("Upgrade") != "websocket" || w.Header().Get("Sec-Websocket-Version") != "13"):
				t.Fatalf("426 with Upgrade %q, Sec-WebSocket-Version %q", w.Header().Get("Upgrade"), w.Header().Get("Sec-Websocket-Version"))
			}
			return
		}
		if w.Code != http.StatusOK || w.Body.Len() > 0 || len(w.Header()) > 0 {
			t.Fatalf("handshake took the request but answered %d %v %q", w.Code, w.Header(), w.Body)
		}
		up := plain
		if offered {
			up = v1
		}
		hw := &hijacker{header: http.Header{}}
		_, _, _, err := up.Upgrade(r, hw)
		answer := hw.out.String()
		if err != nil || !strings.HasPrefix(answer, "HTTP/1.1 101 ") {
			t.Fatalf("handshake took the request, the upgrader refused it: %v\n%s", err, answer)
		}
		if got := strings.Contains(answer, "Sec-WebSocket-Protocol: "+protocol.WSSubprotocol+"\r\n"); got != strings.Contains(","+strings.ReplaceAll(strings.ReplaceAll(offer, " ", ""), "\t", "")+",", ","+protocol.WSSubprotocol+",") {
			t.Fatalf("offer %q answered with the subprotocol: %v\n%s", offer, got, answer)
		}
	})
}
