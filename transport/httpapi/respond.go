package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// writeJSON writes v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, protocol.CodeInternal, "encoding response failed")
		return
	}
	writeBody(w, status, b)
}

// writeBody writes a ready JSON body.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	hd := w.Header()
	hd["Content-Type"] = jsonContentType
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

var jsonContentType = []string{"application/json"}

// writeError writes the contract's error body.
func writeError(w http.ResponseWriter, code protocol.Code, msg string) {
	protocol.WriteError(w, 0, code, msg)
}

// fail answers with the error err maps to. Internal errors are logged and
// their details kept from the client.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away: nobody to answer, nothing to log
	}
	code := viewsync.ErrorCode(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		code = protocol.CodeTooLarge
	}
	msg := err.Error()
	switch code {
	case protocol.CodeInternal:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	case protocol.CodeRateLimited:
		// A limit of the hub's (presence sets): when to retry.
		w.Header().Set("Retry-After", strconv.Itoa(int(viewsync.RetryAfter(err).Seconds())))
	}
	writeError(w, code, msg)
}
