package httpapi

import (
	"fmt"
	"net/http"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// putPresence answers PUT /v1/collections/{c}/presence, the presence of a
// client reading a stream (SSE or NDJSON with presence=1, whose first
// presence message gave it its session): body {"session","record"?,
// "state"?}. A state sets the client's presence (on record, which must be
// one of the rows the principal may read), none is a heartbeat (404 when
// the session is not present in the collection: its TTL passed, set it
// again), a null state leaves. 204 No Content; nothing changes on an
// error.
func (h *Handler) putPresence(w http.ResponseWriter, r *http.Request) {
	c, err := h.hub.Collection(r.PathValue("c"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := h.readBody(w, r, "application/json")
	if err != nil {
		h.failWrite(w, r, err)
		return
	}
	p, err := protocol.DecodePresenceBody(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	pr := principal(r)
	sess, err := h.hub.Presence().Session(p.Session, push.Subject(pr))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch p.Action {
	case protocol.PresenceSet:
		err = c.Where(pr.Where(auth.Read, c.Name())).SetPresence(r.Context(), sess, p.Record, p.State)
	case protocol.PresenceHeartbeat:
		if !sess.Touch(c.Name()) {
			err = fmt.Errorf("%w: the session is not present in %q; set its state again", viewsync.ErrNotFound, c.Name())
		}
	case protocol.PresenceClear:
		sess.Clear(c.Name())
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// deletePresence answers DELETE /v1/collections/{c}/presence?session=S:
// the session leaves the collection (204, also when it was not there).
func (h *Handler) deletePresence(w http.ResponseWriter, r *http.Request) {
	c, err := h.hub.Collection(r.PathValue("c"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q, err := protocol.ParseQuery(r.URL.RawQuery, "session")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id := q.Get("session")
	if err := protocol.ValidateSession(id); err != nil {
		h.fail(w, r, fmt.Errorf("session: %w", err))
		return
	}
	sess, err := h.hub.Presence().Session(id, push.Subject(principal(r)))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sess.Clear(c.Name())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// principal returns the request's principal: the one guard admitted, or
// the anonymous one without a Policy.
func principal(r *http.Request) auth.Principal {
	if pr, ok := auth.FromContext(r.Context()); ok {
		return pr
	}
	return auth.Anonymous()
}
