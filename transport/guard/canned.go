package guard

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/viewsync/viewsync/protocol"
)

// net/http's server answers some requests before any handler sees them:
// headers over MaxHeaderBytes (431), a malformed request line or header
// (400), a request without Host, an unsupported protocol version (505) and
// an unknown Transfer-Encoding (501). It writes those answers straight to
// the connection, in one Write each, as plain text:
//
//	HTTP/1.1 <status line>\r\n<cannedHeaders><body>
//
// where the body repeats the status line, or for 501 says "Unsupported
// transfer encoding". rewriteCanned recognises exactly that shape and
// returns the contract's JSON error in its place.
//
// No other response the server writes can take that shape: the server
// adds a Date header to every response of a handler and sorts the header
// names (Connection before Content-Type), and bodies are written after
// their headers, never as the first bytes of a Write that parses as a
// whole response. Hijacked connections are never rewritten.

// cannedHeaders are the headers between the status line and the body of
// the server's own error answers.
const cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// maxCanned bounds the length of a Write worth parsing: the server's own
// answers are far shorter.
const maxCanned = 512

// TransferEncodingRefused is the message of the answer to a request that
// carries a Transfer-Encoding.
const TransferEncodingRefused = "request bodies need a Content-Length; Transfer-Encoding is refused (RFC 9112 §6.3)"

// rewriteCanned returns the JSON answer replacing p when p is one of the
// server's plain-text error answers, and false otherwise.
func rewriteCanned(p []byte) ([]byte, bool) {
	if len(p) > maxCanned {
		return nil, false
	}
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return nil, false
	}
	line, body, ok := bytes.Cut(rest, []byte(cannedHeaders))
	if !ok || len(line) < 4 || line[3] != ' ' {
		return nil, false
	}
	code, err := strconv.Atoi(string(line[:3]))
	if err != nil || code < 400 || code > 599 || line[0] == '0' {
		return nil, false
	}
	reason := http.StatusText(code)
	text, ok := bytes.CutPrefix(line[4:], []byte(reason))
	if !ok || reason == "" {
		return nil, false
	}
	var detail string
	if len(text) > 0 {
		d, ok := bytes.CutPrefix(text, []byte(": "))
		if !ok || len(d) == 0 || !printable(d) {
			return nil, false
		}
		detail = string(d)
	}
	switch {
	case code == http.StatusNotImplemented && detail == "" && string(body) == "Unsupported transfer encoding":
		return errorResponse(http.StatusBadRequest, protocol.CodeBadRequest, TransferEncodingRefused, nil), true
	case !bytes.Equal(body, line):
		return nil, false
	}
	status, c := code, protocol.CodeBadRequest
	switch code {
	case http.StatusRequestHeaderFieldsTooLarge:
		c = protocol.CodeTooLarge
		if detail == "" {
			detail = "request headers too large"
		}
	case http.StatusBadRequest:
		if detail == "" {
			detail = "malformed request"
		}
	default:
		if detail == "" {
			detail = http.StatusText(code)
		}
	}
	return errorResponse(status, c, detail, nil), true
}

// printable reports whether b is printable ASCII.
func printable(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// statusLine returns "CODE Text" for an HTTP status, e.g. "429 Too Many
// Requests".
func statusLine(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// errorResponse returns a whole HTTP/1.1 response carrying the contract's
// error body, which closes the connection. extra holds more header lines,
// each ending in "\r\n".
func errorResponse(status int, code protocol.Code, msg string, extra []string) []byte {
	body := protocol.MarshalError(code, msg)
	b := make([]byte, 0, 160+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = append(b, statusLine(status)...)
	b = append(b, "\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n"...)
	for _, h := range extra {
		b = append(b, h...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}
