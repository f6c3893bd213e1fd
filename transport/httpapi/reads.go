package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
)

const (
	cacheImmutable = "public, max-age=31536000, immutable"
	// cachePrivateImmutable is for immutable pages read with credentials:
	// only the reader's own cache may keep them, never a shared one.
	cachePrivateImmutable = "private, max-age=31536000, immutable"
	cacheNoStore          = "no-store"
	// cacheRevalidate lets a client keep a snapshot but ask each time.
	cacheRevalidate = "no-cache"
)

func (h *Handler) collection(w http.ResponseWriter, r *http.Request) (*viewsync.Collection, bool) {
	c, err := h.hub.Collection(r.PathValue("c"))
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return c, true
}

// notModified answers 304 when If-None-Match names etag.
func notModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	if !etagMatches(r.Header.Get("If-None-Match"), etag) {
		return false
	}
	hd := w.Header()
	hd["Etag"] = []string{etag}
	hd["Cache-Control"] = []string{cacheRevalidate}
	w.WriteHeader(http.StatusNotModified)
	return true
}

func (h *Handler) getSnapshot(w http.ResponseWriter, r *http.Request) {
	c, ok := h.collection(w, r)
	if !ok {
		return
	}
	if r.Header.Get("If-None-Match") != "" {
		hd, err := c.Head(r.Context())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if notModified(w, r, headETag(hd)) {
			return
		}
	}
	s, err := c.Snapshot(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("ETag", headETag(protocol.Head{Epoch: s.Epoch, Version: s.Version}))
	w.Header().Set("Cache-Control", cacheRevalidate)
	writeJSON(w, http.StatusOK, s)
}

// getVersion is the cheap "am I stale?" poll, answered from memory without
// encoding/json.
func (h *Handler) getVersion(w http.ResponseWriter, r *http.Request) {
	c, ok := h.collection(w, r)
	if !ok {
		return
	}
	hd, err := c.Head(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	etag := headETag(hd)
	if notModified(w, r, etag) {
		return
	}
	b := make([]byte, 0, 48+len(hd.Epoch))
	b = append(b, `{"epoch":"`...)
	b = append(b, hd.Epoch...) // epochs are [A-Za-z0-9_-]: no escaping needed
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, hd.Version, 10)
	b = append(b, '}')
	w.Header()["Etag"] = []string{etag}
	w.Header()["Cache-Control"] = []string{cacheRevalidate}
	writeBody(w, http.StatusOK, b)
}

func (h *Handler) getChanges(w http.ResponseWriter, r *http.Request) {
	c, ok := h.collection(w, r)
	if !ok {
		return
	}
	q, err := parseChangesQuery(r.URL.Query(), h.opts.MaxWait)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if q.client != "" && q.cursor.Version > 0 {
		// A polling client's cursor is what it has rendered.
		h.hub.Rendered("poll-"+q.client, c.Name(), q.cursor.Version)
	}
	n := pageLimit(q.cursor.Version, h.opts.PageSize, q.limit)
	ch, err := c.Changes(r.Context(), q.cursor, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ch.Kind == viewsync.KindCommits && len(ch.Commits.Commits) == 0 && q.wait > 0 {
		wait := q.wait
		if p, ok := auth.FromContext(r.Context()); ok && !p.Expires.IsZero() {
			// A long-poll ends when its token expires, like a stream: the
			// next poll needs a fresh token.
			wait = min(wait, max(0, time.Until(p.Expires)))
		}
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		_, err := c.Wait(ctx, q.cursor)
		cancel()
		switch {
		case err == nil:
			if ch, err = c.Changes(r.Context(), q.cursor, n); err != nil {
				h.fail(w, r, err)
				return
			}
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, viewsync.ErrClosed):
			// Time is up (or the server is stopping): answer with no commits.
		default:
			if r.Context().Err() != nil {
				return // the client went away
			}
			h.fail(w, r, err)
			return
		}
	}
	cache := cacheNoStore
	var body any
	switch ch.Kind {
	case viewsync.KindCommits:
		cs := ch.Commits
		if q.epochGiven && len(cs.Commits) == n && cs.Commits[n-1].Version < cs.Version {
			// The page is full and history is immutable: the same URL
			// always returns these commits. Its version is the page's
			// end, not the head, so the body is the same every time.
			cache = cacheImmutable
			if p, ok := auth.FromContext(r.Context()); ok && !p.Anonymous {
				cache = cachePrivateImmutable
			}
			cs.Version = cs.Commits[n-1].Version
		}
		w.Header().Set("Cache-Control", cache)
		writeBody(w, http.StatusOK, appendChanges(nil, cs))
		return
	case viewsync.KindCatchUp:
		body = ch.CatchUp
	default:
		body = ch.Reset
	}
	w.Header().Set("Cache-Control", cache)
	writeJSON(w, http.StatusOK, body)
}

func (h *Handler) getRecord(w http.ResponseWriter, r *http.Request) {
	c, ok := h.collection(w, r)
	if !ok {
		return
	}
	rec, err := c.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	etag := versionETag(rec.Version)
	if notModified(w, r, etag) {
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", cacheRevalidate)
	writeJSON(w, http.StatusOK, rec)
}

// appendChanges encodes a page of commits without encoding/json, whose
// reflection and re-checking of every value dominate the cost of a page:
// {"epoch":…,"version":…,"commits":[…]}.
func appendChanges(b []byte, cs *protocol.Changes) []byte {
	size := 64 + len(cs.Epoch)
	for _, c := range cs.Commits {
		size += protocol.CommitJSONOverhead
		for _, op := range c.Ops {
			size += 32 + len(op.ID) + len(op.Value)
		}
	}
	b = slices.Grow(b, size)
	b = append(b, `{"epoch":"`...)
	b = append(b, cs.Epoch...) // epochs are [A-Za-z0-9_-]: no escaping needed
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, cs.Version, 10)
	b = append(b, `,"commits":[`...)
	for i, c := range cs.Commits {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendCommit(b, c)
	}
	return append(b, "]}"...)
}
