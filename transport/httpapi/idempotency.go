package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/protocol"
)

// The headers of idempotency keys.
const (
	// HeaderIdempotencyKey carries a write's or a call's key.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderReplayed, "true", marks an answer given before to the same
	// key: the request was not run again.
	HeaderReplayed = "Idempotent-Replayed"
)

// errNoAnswer: a keyed request ended without an answer (its client went
// away before it failed); nothing is remembered.
var errNoAnswer = errors.New("httpapi: the request ended without an answer")

// performer runs a write or call, answering on w; k is nil for a request
// without a key.
type performer func(w http.ResponseWriter, ctx context.Context, k *viewsync.Keyed)

// once runs perform under the request's Idempotency-Key, when it has one
// (see viewsync.Hub.Once), else at once. o describes the request; its
// Scope and Key are filled in here. A keyed answer is captured, then
// written with its status, ETag and body; a replay also carries
// Idempotent-Replayed: true.
func (h *Handler) once(w http.ResponseWriter, r *http.Request, o viewsync.Once, perform performer) {
	h.onceWithin(w, r, o, 0, perform)
}

// onceWithin is once whose keyed request is answered within limit (0:
// none): at the limit the client gets 504 timeout while the request runs
// on, its answer remembered for retries when it comes.
func (h *Handler) onceWithin(w http.ResponseWriter, r *http.Request, o viewsync.Once, limit time.Duration, perform performer) {
	vals, keyed := r.Header[HeaderIdempotencyKey]
	if !keyed {
		perform(w, r.Context(), nil)
		return
	}
	if len(vals) != 1 {
		h.fail(w, r, fmt.Errorf("%w: %d %s headers, send one", idem.ErrBadKey, len(vals), HeaderIdempotencyKey))
		return
	}
	key, err := h.hub.ParseIdempotencyKey(vals[0])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	o.Scope, o.Key = scope(r), key
	type result struct {
		first    *capture
		ans      viewsync.Answer
		replayed bool
		err      error
	}
	run := func() (res result) {
		res.ans, res.replayed, res.err = h.hub.Once(r.Context(), o, func(ctx context.Context, k *viewsync.Keyed) (viewsync.Answer, error) {
			c := &capture{header: http.Header{}}
			perform(c, ctx, k)
			if c.status == 0 {
				return viewsync.Answer{}, errNoAnswer
			}
			res.first = c
			return viewsync.Answer{Status: c.status, ETag: c.header.Get("ETag"), Body: c.body}, nil
		})
		return res
	}
	var res result
	if limit <= 0 {
		res = run()
	} else {
		done := make(chan result, 1)
		go func() { done <- run() }()
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case res = <-done:
		case <-t.C:
			if r.Context().Err() == nil {
				writeError(w, protocol.CodeTimeout, fmt.Sprintf("%s did not finish within %s; a retry with the same %s gets its answer once it has one", o.Target, limit, HeaderIdempotencyKey))
			}
			return
		case <-r.Context().Done():
			return
		}
	}
	ans, replayed, err, first := res.ans, res.replayed, res.err, res.first
	if err != nil {
		if !errors.Is(err, errNoAnswer) {
			h.fail(w, r, err)
		}
		return
	}
	hd := w.Header()
	if first != nil && !replayed {
		for k, v := range first.header {
			hd[k] = v
		}
	}
	if ans.ETag != "" {
		hd.Set("ETag", ans.ETag)
	}
	if replayed {
		hd.Set(HeaderReplayed, "true")
	}
	hd.Set("Cache-Control", cacheNoStore)
	writeBody(w, ans.Status, ans.Body)
}

// scope returns whose keys the request's are: its principal's subject, or
// the anonymous scope.
func scope(r *http.Request) string {
	pr, ok := auth.FromContext(r.Context())
	return idem.Scope(pr.Subject, !ok || pr.Anonymous)
}

// capture records an answer instead of sending it.
type capture struct {
	header http.Header
	status int
	body   []byte
}

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body = append(c.body, b...)
	return len(b), nil
}

// writeAnswer writes a rendered answer: its ETag, status and body.
func writeAnswer(w http.ResponseWriter, a viewsync.Answer) {
	if a.ETag != "" {
		w.Header().Set("ETag", a.ETag)
	}
	writeBody(w, a.Status, a.Body)
}

// jsonAnswer renders v as a 200 answer.
func jsonAnswer(v any, etag string) viewsync.Answer {
	b, err := json.Marshal(v)
	if err != nil {
		return viewsync.Answer{Status: http.StatusInternalServerError, Body: protocol.MarshalError(protocol.CodeInternal, "encoding response failed")}
	}
	return viewsync.Answer{Status: http.StatusOK, ETag: etag, Body: b}
}
