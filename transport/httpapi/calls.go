package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// postCall runs the call handler named in the path with the body's arg and
// answers {"result":…,"versions":{…}}.
//
// The handler runs under Options.CallTimeout. At the deadline the caller
// gets 504 whether or not the handler has returned; a handler that ignores
// its context runs on in the background until it returns, and its writes
// still happen. With an Idempotency-Key, the call runs at most once for
// the key: its answer is remembered when the handler returns (even past
// the deadline), and a retry meanwhile waits for it.
func (h *Handler) postCall(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := protocol.ValidateCallName(name); err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := h.readBody(w, r, "application/json")
	if err != nil {
		h.failWrite(w, r, err)
		return
	}
	arg, err := decodeCallRequest(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	o := viewsync.OnceCall("", "", name, arg)
	h.onceWithin(w, r, o, h.opts.CallTimeout, func(w http.ResponseWriter, ctx context.Context, k *viewsync.Keyed) {
		h.runCall(w, r, ctx, name, arg, k != nil)
	})
}

// runCall runs the call and answers it on w, or 504 at the deadline. A
// keyed call (keyed) is answered only when its handler returns, so that
// its answer is remembered then: the request that ran it is answered
// from the deadline on by postCall's once, as a 504 if need be.
func (h *Handler) runCall(w http.ResponseWriter, r *http.Request, ctx context.Context, name string, arg []byte, keyed bool) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.CallTimeout)
	defer cancel()
	type answer struct {
		res viewsync.CallResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		defer func() {
			// Hub.Call recovers the handler's panics; this catches what
			// escapes it (a result whose MarshalJSON panics), which would
			// otherwise take the whole process down from this goroutine.
			if p := recover(); p != nil {
				h.log.Error("call panicked outside its handler", "call", name, "panic", fmt.Sprint(p))
				a = answer{err: fmt.Errorf("%w: %s", viewsync.ErrCallPanic, name)}
			}
			done <- a
		}()
		a.res, a.err = h.hub.Call(ctx, name, arg)
	}()

	var a answer
	if keyed {
		a = <-done
	} else {
		select {
		case a = <-done:
		case <-ctx.Done():
			if r.Context().Err() != nil {
				return // the client went away; nobody reads the answer
			}
			a.err = ctx.Err()
		}
	}
	if a.err != nil {
		if r.Context().Err() != nil {
			return
		}
		if ctx.Err() != nil {
			// The handler overran its time, or failed because it did: the
			// caller must not mistake a late failure for a timely one.
			writeError(w, protocol.CodeTimeout, fmt.Sprintf("call %q did not finish within %s", name, h.opts.CallTimeout))
			return
		}
		h.failCall(w, r, name, a.err)
		return
	}
	if a.res.Versions == nil {
		a.res.Versions = map[string]uint64{}
	}
	w.Header().Set("Cache-Control", cacheNoStore)
	writeJSON(w, http.StatusOK, a.res)
}

// failCall answers a failed call. A *viewsync.CallError is relayed with its
// own code and message; other errors map through viewsync.ErrorCode, with
// the details of internal ones (panics included) kept from the client.
func (h *Handler) failCall(w http.ResponseWriter, r *http.Request, name string, err error) {
	if errors.Is(err, viewsync.ErrUnknownCall) {
		writeError(w, protocol.CodeNotFound, fmt.Sprintf("no call handler named %q", name))
		return
	}
	var ce *viewsync.CallError
	if !errors.As(err, &ce) {
		h.fail(w, r, err)
		return
	}
	code, msg := ce.Code, ce.Message
	if !knownCode(code) {
		h.log.Error("call handler returned an unknown error code", "call", name, "code", string(code), "err", err)
		code, msg = protocol.CodeInternal, "internal error"
	}
	if msg == "" {
		msg = fmt.Sprintf("call %q failed: %s", name, code)
	}
	if code.Status() >= http.StatusInternalServerError {
		// The message is the client's; the error may carry the cause.
		h.log.Warn("call failed", "call", name, "code", string(code), "err", err)
	}
	writeError(w, code, msg)
}

// knownCode reports whether c is one of the contract's error codes.
func knownCode(c protocol.Code) bool {
	return c == protocol.CodeInternal || c.Status() != http.StatusInternalServerError
}

// decodeCallRequest parses a call body strictly (see
// protocol.DecodeCallRequest): one JSON object whose only field is "arg",
// nothing after it. A missing arg is null. The arg is returned as sent, not
// yet compacted.
func decodeCallRequest(body []byte) (json.RawMessage, error) {
	arg, err := protocol.DecodeCallRequest(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", viewsync.ErrInvalid, err)
	}
	return arg, nil
}
