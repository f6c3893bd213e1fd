package protocol

import (
	"net/http"
	"strconv"
)

// WriteError answers an HTTP request with the contract's error body,
// {"error":{"code":…,"message":…}}, and status, or the status of code
// when status is 0, not to be cached. Headers set on w before it, such as
// Retry-After or WWW-Authenticate, go with the answer. It is the one
// writer of error answers for every handler.
func WriteError(w http.ResponseWriter, status int, code Code, msg string) {
	if status == 0 {
		status = code.Status()
	}
	b := MarshalError(code, msg)
	hd := w.Header()
	hd["Content-Type"] = jsonContentType
	hd["Cache-Control"] = noStore
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)
