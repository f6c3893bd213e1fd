package guard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

// cannedAnswers are the plain-text answers net/http's server writes
// itself, as it writes them, with what they become.
var cannedAnswers = []struct {
	name, in string
	status   int
	code     string
	message  string
}{
	{"headers too large", "HTTP/1.1 431 Request Header Fields Too Large" + cannedHeaders + "431 Request Header Fields Too Large",
		431, "too_large", "request headers too large"},
	{"malformed", "HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request",
		400, "bad_request", "malformed request"},
	{"no Host", "HTTP/1.1 400 Bad Request: missing required Host header" + cannedHeaders + "400 Bad Request: missing required Host header",
		400, "bad_request", "missing required Host header"},
	{"bad header name", "HTTP/1.1 400 Bad Request: invalid header name" + cannedHeaders + "400 Bad Request: invalid header name",
		400, "bad_request", "invalid header name"},
	{"version", "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + cannedHeaders + "505 HTTP Version Not Supported: unsupported protocol version",
		505, "bad_request", "unsupported protocol version"},
	{"transfer encoding", "HTTP/1.1 501 Not Implemented" + cannedHeaders + "Unsupported transfer encoding",
		400, "bad_request", TransferEncodingRefused},
}

func TestRewriteCanned(t *testing.T) {
	for _, tt := range cannedAnswers {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := rewriteCanned([]byte(tt.in))
			if !ok {
				t.Fatalf("not recognised: %q", tt.in)
			}
			resp, body := parseAnswer(t, out)
			wantError(t, resp, body, tt.status, tt.code)
			if msg := errorMessage(body); msg != tt.message {
				t.Errorf("message %q, want %q", msg, tt.message)
			}
		})
	}
}

func TestRewriteCannedLeavesOthers(t *testing.T) {
	for _, in := range []string{
		"",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Fri, 04 Dec 2026 18:00:00 GMT\r\n\r\nok",
		// A handler's plain-text error: net/http sorts the headers and
		// adds Date.
		"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Fri, 04 Dec 2026 18:00:00 GMT\r\n\r\n400 Bad Request",
		// The body does not repeat the status line.
		"HTTP/1.1 400 Bad Request" + cannedHeaders + "something else",
		"HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request and more",
		"HTTP/1.1 501 Not Implemented" + cannedHeaders + "501 Not Implemented: other",
		// Not an error status, or not a known one.
		"HTTP/1.1 200 OK" + cannedHeaders + "200 OK",
		"HTTP/1.1 499 Nope" + cannedHeaders + "499 Nope",
		"HTTP/1.1 4000 Bad Request" + cannedHeaders + "4000 Bad Request",
		"HTTP/1.0 400 Bad Request" + cannedHeaders + "400 Bad Request",
		// A detail with a control character.
		"HTTP/1.1 400 Bad Request: a\x01b" + cannedHeaders + "400 Bad Request: a\x01b",
		"HTTP/1.1 400 Bad Request: " + cannedHeaders + "400 Bad Request: ",
		// Too long to be the server's.
		"HTTP/1.1 400 Bad Request: " + strings.Repeat("x", maxCanned) + cannedHeaders + "400 Bad Request: " + strings.Repeat("x", maxCanned),
		// A body chunk.
		`{"error":{"code":"bad_request","message":"HTTP/1.1 400 Bad Request"}}`,
	} {
		if out, ok := rewriteCanned([]byte(in)); ok {
			t.Errorf("rewriteCanned(%q) = %q, want it left alone", in, out)
		}
	}
}

// TestServerAnswersAreJSON sends what net/http's server refuses before any
// handler runs, and checks that the answers that reach the client are the
// contract's JSON errors.
func TestServerAnswersAreJSON(t *testing.T) {
	s := newTestServer(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}), func(srv *http.Server) { srv.MaxHeaderBytes = 1 << 10 })
	for _, tt := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"headers too large", "GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", 431, "too_large"},
		{"malformed request line", "GARBAGE\r\n\r\n", 400, "bad_request"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"bad header", "GET / HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n", 400, "bad_request"},
		{"protocol version", "GET / HTTP/2.5\r\nHost: test\r\n\r\n", 505, "bad_request"},
		{"transfer encoding", "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := s.dial("10.0.0.1")
			c.send(tt.req)
			resp, body := c.response()
			wantError(t, resp, body, tt.status, tt.code)
			if !c.closed() {
				t.Error("the connection stays open")
			}
		})
	}
	// After a response, a bad request on the same connection is answered
	// in JSON too.
	c := s.dial("10.0.0.1")
	c.get("/")
	if resp, body := c.response(); resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	c.send("GARBAGE\r\n\r\n")
	resp, body := c.response()
	wantError(t, resp, body, 400, "bad_request")
}

// parseAnswer parses a whole HTTP/1.1 response, failing on trailing bytes.
func parseAnswer(t *testing.T, b []byte) (*http.Response, []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%q is not an HTTP response: %v", b, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: body: %v", b, err)
	}
	if n := br.Buffered(); n > 0 {
		t.Fatalf("%q: %d bytes after the response", b, n)
	}
	return resp, body
}

func errorMessage(body []byte) string {
	var e protocol.ErrorBody
	json.Unmarshal(body, &e)
	if e.Error == nil {
		return ""
	}
	return e.Error.Message
}

// FuzzRewriteCanned: whatever a Write holds, it is left alone or replaced
// by one whole HTTP/1.1 response carrying the contract's error, closing
// the connection.
func FuzzRewriteCanned(f *testing.F) {
	for _, tt := range cannedAnswers {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 418 I'm a teapot: x" + cannedHeaders + "418 I'm a teapot: x"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ok := rewriteCanned(in)
		if !ok {
			if out != nil {
				t.Fatalf("not rewritten but returned %q", out)
			}
			return
		}
		if len(in) > maxCanned {
			t.Fatalf("rewrote %d bytes, over maxCanned", len(in))
		}
		resp, body := parseAnswer(t, out)
		if resp.StatusCode < 400 || resp.StatusCode > 599 || !resp.Close ||
			resp.Header.Get("Content-Type") != "application/json" ||
			resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("rewrote %q as %q", in, out)
		}
		var e protocol.ErrorBody
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Message == "" ||
			protocol.Code(e.Error.Code).Status() == http.StatusInternalServerError {
			t.Fatalf("rewrote %q with body %q (%v)", in, body, err)
		}
	})
}
