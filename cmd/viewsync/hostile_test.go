//go:build unix

package main

// Tests of the built server against clients that misuse HTTP: slow and
// oversized bodies, smuggled requests, requests net/http refuses itself.
// Settings that are new with these limits are given as VIEWSYNC_*
// variables, so that a server without them starts all the same and the
// tests show what it does.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
)

// rawWait bounds waits for an answer the server must give. It detects
// hangs; it is not a performance bound.
const rawWait = 20 * time.Second

// startGuarded starts the built `viewsync serve` on 127.0.0.1 and a fresh
// data directory, with args, and the variables in env on top of an
// environment without VIEWSYNC_ ones. When openFiles is positive the
// process runs under that limit of open files (soft and hard). It returns
// once the server says where it listens; the process is killed, if still
// running, when the test ends.
func startGuarded(t *testing.T, openFiles int, env []string, args ...string) *proc {
	t.Helper()
	argv := append([]string{serverBinary(t), "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)
	var cmd *exec.Cmd
	if openFiles > 0 {
		cmd = exec.Command("/bin/sh", append([]string{"-c", "ulimit -n " + strconv.Itoa(openFiles) + ` && exec "$0" "$@"`}, argv...)...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VIEWSYNC_") }), env...)
	return runServer(t, cmd)
}

// addr returns the server's host:port.
func (p *proc) addr() string { return strings.TrimPrefix(p.base, "http://") }

// rawClient is a client connection speaking raw HTTP/1.1.
type rawClient struct {
	t *testing.T
	net.Conn
	br *bufio.Reader
}

// dialFrom connects to the server from the local address from (an IP
// address; "" for any).
func dialFrom(t *testing.T, p *proc, from string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: rawWait}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", p.addr())
	if err != nil {
		t.Fatalf("dial from %q: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, Conn: c, br: bufio.NewReader(c)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// response reads the next response, its body whole unless it is a stream
// (then the caller reads it), within rawWait.
func (c *rawClient) response() (*http.Response, []byte, error) {
	c.SetReadDeadline(time.Now().Add(rawWait))
	defer c.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, nil, err
	}
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp, nil, nil
	}
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// mustResponse is response, failing the test on an error.
func (c *rawClient) mustResponse(what string) (*http.Response, []byte) {
	c.t.Helper()
	resp, b, err := c.response()
	if err != nil {
		c.t.Fatalf("%s: no answer: %v", what, err)
	}
	return resp, b
}

// closed reports whether the server closes the connection within rawWait:
// a read ends with EOF or a reset, not a timeout.
func (c *rawClient) closed() bool {
	c.SetReadDeadline(time.Now().Add(rawWait))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// checkError checks that the answer is the contract's JSON error with
// status and code, closing the connection.
func checkError(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var e protocol.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Errorf("%s: %d %q, Content-Type %q: not the contract's JSON error", what, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		return
	}
	if resp.StatusCode != status || string(e.Error.Code) != code || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: %d %s (%s), want %d %s", what, resp.StatusCode, e.Error.Code, resp.Header.Get("Content-Type"), status, code)
	}
	if !resp.Close {
		t.Errorf("%s: the answer does not close the connection", what)
	}
}

// httpStatus sends a request with an optional JSON body and returns the
// status and body of the answer.
func httpStatus(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), rawWait)
	defer cancel()
	code, b := httpStatusCtx(ctx, method, url, body)
	if code == 0 {
		t.Fatalf("%s %s: %s", method, url, b)
	}
	return code, b
}

// TestServeSlowBodies: clients that send their bodies a byte at a time
// are answered 408 once --body-timeout has passed, and their connections
// closed, instead of holding them for ever.
func TestServeSlowBodies(t *testing.T) {
	p := startGuarded(t, 0, []string{"VIEWSYNC_BODY_TIMEOUT=1s"})
	const clients = 10
	conns := make([]*rawClient, clients)
	for i := range conns {
		c := dialFrom(t, p, "")
		c.send(fmt.Sprintf("PUT /v1/collections/slow/records/r%d HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", i))
		conns[i] = c
	}
	// Dribble a byte every 200ms until the server answers.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					c.Write([]byte(" "))
				}
			}
		}
	}()
	for i, c := range conns {
		resp, body, err := c.response()
		if err != nil {
			t.Fatalf("client %d: no answer within %v: %v", i, rawWait, err)
		}
		checkError(t, fmt.Sprintf("client %d", i), resp, body, http.StatusRequestTimeout, "timeout")
		if !c.closed() {
			t.Errorf("client %d: the connection stays open", i)
		}
	}
	if code, _ := httpStatus(t, "GET", p.base+"/v1/collections/slow/records/r0", ""); code != http.StatusNotFound {
		t.Errorf("a timed-out write was applied: GET → %d", code)
	}
}

// TestServeBodyTooLarge: a declared body over --max-body is answered 413
// at once; a client that asked "Expect: 100-continue" is not told to send
// it.
func TestServeBodyTooLarge(t *testing.T) {
	p := startGuarded(t, 0, nil)
	c := dialFrom(t, p, "")
	c.send("PUT /v1/collections/big/records/r HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
	resp, body := c.mustResponse("a 1 GB body")
	checkError(t, "a 1 GB body", resp, body, http.StatusRequestEntityTooLarge, "too_large")
	if !c.closed() {
		t.Error("the connection stays open")
	}
}

// TestServeSmuggledRequest: a request with both Content-Length and
// Transfer-Encoding, hiding a second request in its body, is refused and
// its connection closed: the hidden request never runs.
func TestServeSmuggledRequest(t *testing.T) {
	p := startGuarded(t, 0, nil)
	hidden := "PUT /v1/collections/smuggle/records/hidden HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	body := "0\r\n\r\n" + hidden
	c := dialFrom(t, p, "")
	c.send(fmt.Sprintf("POST /v1/collections/smuggle/commits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(body), body))
	resp, b := c.mustResponse("Content-Length and Transfer-Encoding")
	checkError(t, "Content-Length and Transfer-Encoding", resp, b, http.StatusBadRequest, "bad_request")
	var e protocol.ErrorBody
	if json.Unmarshal(b, &e) == nil && e.Error != nil && !strings.Contains(e.Error.Message, "Transfer-Encoding is refused") {
		t.Errorf("message %q does not say Transfer-Encoding is refused", e.Error.Message)
	}
	more, extra, err := c.response()
	if err == nil {
		t.Errorf("a second answer came on the connection: %d %s", more.StatusCode, extra)
	}
	if !c.closed() {
		t.Error("the connection stays open")
	}
	if code, body := httpStatus(t, "GET", p.base+"/v1/collections/smuggle/records/hidden", ""); code != http.StatusNotFound {
		t.Errorf("the hidden request ran: GET hidden → %d %s", code, body)
	}
	if code, body := httpStatus(t, "GET", p.base+"/v1/collections/smuggle/version", ""); code != http.StatusOK || !strings.Contains(body, `"version":0`) {
		t.Errorf("the collection changed: %d %s", code, body)
	}
}

// TestServeServerErrorsAreJSON: what net/http refuses before any handler
// runs is answered with the contract's JSON error too.
func TestServeServerErrorsAreJSON(t *testing.T) {
	p := startGuarded(t, 0, []string{"VIEWSYNC_MAX_HEADER_BYTES=4KiB"})
	for _, tt := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"headers over --max-header-bytes", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 12<<10) + "\r\n\r\n", 431, "too_large"},
		{"malformed request line", "GARBAGE\r\n\r\n", 400, "bad_request"},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"bad header", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400, "bad_request"},
		{"unknown Transfer-Encoding", "POST /v1/calls/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request"},
		{"protocol version", "GET /healthz HTTP/2.5\r\nHost: x\r\n\r\n", 505, "bad_request"},
	} {
		c := dialFrom(t, p, "")
		c.send(tt.req)
		resp, body := c.mustResponse(tt.name)
		checkError(t, tt.name, resp, body, tt.status, tt.code)
		if !c.closed() {
			t.Errorf("%s: the connection stays open", tt.name)
		}
	}
}

// TestServeLongRequestsOutliveTheBodyTimeout: --body-timeout bounds bodies
// only: a long-poll, an SSE stream, a WebSocket and a call whose body was
// read go on past it.
func TestServeLongRequestsOutliveTheBodyTimeout(t *testing.T) {
	backend := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(2 * time.Second)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result":"late"}`)
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bl)
	defer backend.Close()
	p := startGuarded(t, 0, []string{"VIEWSYNC_BODY_TIMEOUT=500ms"}, "--call-proxy", "http://"+bl.Addr().String())

	ctx, cancel := context.WithTimeout(t.Context(), rawWait)
	defer cancel()
	sock, _, err := wstest.Dial(ctx, "ws://"+p.addr()+"/v1/ws", &wstest.Options{Subprotocols: []string{"viewsync.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.CloseNow()
	if err := sock.WriteMessage(ctx, gws.OpText, []byte(`{"type":"subscribe","collection":"long"}`)); err != nil {
		t.Fatal(err)
	}
	sse := dialFrom(t, p, "")
	sse.send("GET /v1/collections/long/events HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := sse.mustResponse("SSE"); resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %d", resp.StatusCode)
	}

	poll := make(chan string, 1)
	go func() {
		_, body := httpStatusCtx(ctx, "GET", p.base+"/v1/collections/long/changes?after=0&wait=3s", "")
		poll <- body
	}()
	code, body := httpStatus(t, "POST", p.base+"/v1/calls/anything", `{"arg":1}`)
	if code != http.StatusOK || !strings.Contains(body, "late") {
		t.Errorf("a call slower than --body-timeout: %d %s", code, body)
	}
	if code, body := httpStatus(t, "PUT", p.base+"/v1/collections/long/records/r", `{"n":1}`); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if body := <-poll; !strings.Contains(body, `"version":1`) {
		t.Errorf("long-poll: %s", body)
	}
	sse.SetReadDeadline(time.Now().Add(rawWait))
	for {
		line, err := sse.br.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream ended before the commit: %v", err)
		}
		if strings.HasPrefix(line, "event: commit") {
			break
		}
	}
	for {
		_, msg, err := sock.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("WebSocket ended before the commit: %v", err)
		}
		if strings.Contains(string(msg), `"type":"commit"`) {
			break
		}
	}
}

// httpStatusCtx is httpStatus for another goroutine than the test's.
func httpStatusCtx(ctx context.Context, method, url, body string) (int, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err.Error()
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
