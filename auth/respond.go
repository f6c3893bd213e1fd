package auth

import (
	"net/http"
	"strconv"

	"github.com/viewsync/viewsync/internal/errcode"
	"github.com/viewsync/viewsync/protocol"
)

// WriteDenied answers a request the Policy refused with the contract's
// error body: 401 unauthorized (with a WWW-Authenticate: Bearer challenge),
// 403 forbidden or 429 rate_limited (with Retry-After in seconds).
func WriteDenied(w http.ResponseWriter, err error) {
	code := errcode.Of(err)
	hd := w.Header()
	switch code {
	case protocol.CodeUnauthorized:
		hd.Set("WWW-Authenticate", `Bearer realm="viewsync", error="invalid_token"`)
	case protocol.CodeRateLimited:
		hd.Set("Retry-After", strconv.Itoa(int(errcode.RetryAfter(err).Seconds())))
	case protocol.CodeForbidden:
	default:
		code = protocol.CodeInternal
	}
	msg := err.Error()
	if code == protocol.CodeInternal {
		msg = "internal error"
	}
	protocol.WriteError(w, 0, code, msg)
}
