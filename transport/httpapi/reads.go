package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/limit"
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

// collection returns the collection a request names, as the request may
// see it for action a: a read sees the view its where parameter asks for,
// within the rows the principal may read; a write reaches only the rows
// the principal may write (see viewsync.Collection.Where).
func (h *Handler) collection(w http.ResponseWriter, r *http.Request, a auth.Action) (*viewsync.Collection, bool) {
	c, err := h.hub.Collection(r.PathValue("c"))
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	if a == auth.Read {
		where, err := h.hub.WhereQuery(r.URL.RawQuery)
		if err != nil {
			h.fail(w, r, err)
			return nil, false
		}
		c = c.Where(where)
	}
	if pr, ok := auth.FromContext(r.Context()); ok {
		c = c.Where(pr.Where(a, c.Name()))
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
	c, ok := h.collection(w, r, auth.Read)
	if !ok {
		return
	}
	if r.Header.Get("If-None-Match") != "" {
		hd, err := c.Head(r.Context())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if notModified(w, r, viewETag(hd, c.Filter())) {
			return
		}
	}
	hold, ok := h.reserve(w, r)
	if !ok {
		return
	}
	defer hold.Release()
	s, err := c.Snapshot(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hold.Set(2 * int64(protocol.RecordsSize(s.Records))) // the records and their encoding
	w.Header().Set("ETag", viewETag(protocol.Head{Epoch: s.Epoch, Version: s.Version}, c.Filter()))
	w.Header().Set("Cache-Control", cacheRevalidate)
	h.writeHistory(w, http.StatusOK, s)
}

// getVersion is the cheap "am I stale?" poll, answered from memory without
// encoding/json.
func (h *Handler) getVersion(w http.ResponseWriter, r *http.Request) {
	c, ok := h.collection(w, r, auth.Read)
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
	c, ok := h.collection(w, r, auth.Read)
	if !ok {
		return
	}
	q, err := parseChangesQuery(r.URL.RawQuery, h.opts.MaxWait)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if q.client != "" && q.cursor.Version > 0 {
		// A polling client's cursor is what it has rendered.
		h.hub.Rendered("poll-"+q.client, c.Name(), q.cursor.Version)
	}
	n := pageLimit(q.cursor.Version, h.opts.PageSize, q.limit)
	if c.Filter() != nil {
		h.viewChanges(w, r, c, q)
		return
	}
	hold, ok := h.reserve(w, r)
	if !ok {
		return
	}
	defer func() { hold.Release() }()
	ch, err := h.readChanges(r.Context(), c, q.cursor, n, hold)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ch.Kind == viewsync.KindCommits && len(ch.Commits.Commits) == 0 && q.wait > 0 {
		// Nothing yet: wait for a commit without holding any memory.
		hold.Release()
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
			if hold, ok = h.reserve(w, r); !ok {
				return
			}
			if ch, err = h.readChanges(r.Context(), c, q.cursor, n, hold); err != nil {
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
		if k := len(cs.Commits); k > 0 && k < n && cs.Commits[k-1].Version < cs.Version {
			// Cut short by the byte bound: end at an aligned boundary, so
			// that clients at other cursors ask for the same next page.
			cs.Commits = cs.Commits[:trimPage(q.cursor.Version, h.opts.PageSize, k)]
		}
		if k := len(cs.Commits); q.epochGiven && k > 0 && cs.Commits[k-1].Version < cs.Version {
			// The page ends before the head, at a boundary every reader
			// at this cursor gets, and history is immutable: the same URL
			// always returns these commits. Its version is the page's
			// end, not the head, so the body is the same every time.
			cache = cacheImmutable
			if p, ok := auth.FromContext(r.Context()); ok && !p.Anonymous {
				cache = cachePrivateImmutable
			}
			cs.Version = cs.Commits[k-1].Version
		}
		w.Header().Set("Cache-Control", cache)
		h.writeChanges(w, cs)
		return
	case viewsync.KindCatchUp:
		body = ch.CatchUp
	default:
		body = ch.Reset
	}
	w.Header().Set("Cache-Control", cache)
	h.writeHistory(w, http.StatusOK, body)
}

// viewChanges answers a poll of a filtered view, through the hub's live
// view (Collection.Poll): its commits, a catch-up or a reset of the view.
// Nothing is cached: what a view holds depends on who asks.
func (h *Handler) viewChanges(w http.ResponseWriter, r *http.Request, c *viewsync.Collection, q changesQuery) {
	wait := q.wait
	if p, ok := auth.FromContext(r.Context()); ok && !p.Expires.IsZero() {
		wait = min(wait, max(0, time.Until(p.Expires)))
	}
	ch, err := c.Poll(r.Context(), q.cursor, viewsync.Page{Commits: h.opts.PageSize}, wait)
	if err != nil {
		if errors.Is(err, viewsync.ErrClosed) || r.Context().Err() == nil {
			h.fail(w, r, err)
		}
		return
	}
	w.Header().Set("Cache-Control", cacheNoStore)
	switch ch.Kind {
	case viewsync.KindCommits:
		h.writeChanges(w, ch.Commits)
	case viewsync.KindCatchUp:
		h.writeHistory(w, http.StatusOK, ch.CatchUp)
	default:
		h.writeHistory(w, http.StatusOK, ch.Reset)
	}
}

// readChanges reads what a client at cur needs next, a page of at most n
// commits within the bytes hold reserved, and charges the hold with what
// the answer takes.
func (h *Handler) readChanges(ctx context.Context, c *viewsync.Collection, cur protocol.Cursor, n int, hold *limit.Hold) (viewsync.Changes, error) {
	ch, err := c.Changes(ctx, cur, viewsync.Page{Commits: n, Bytes: int(hold.Bytes())})
	if err != nil {
		hold.Release()
		return ch, err
	}
	if ch.Kind == viewsync.KindCommits {
		// A page is written as it is encoded.
		hold.Set(int64(ch.Size()))
	} else {
		// The records and their encoding, which is built whole.
		hold.Set(2 * int64(ch.Size()))
	}
	return ch, nil
}

// reserve waits, at most MemoryWait, for the memory a read of history may
// hold: a page's bytes (a page is written as it is encoded; catch-ups and
// snapshots are charged what they take once read). When it waits in vain
// it answers 503 unavailable with Retry-After and reports false.
func (h *Handler) reserve(w http.ResponseWriter, r *http.Request) (*limit.Hold, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.MemoryWait)
	defer cancel()
	want := int64(h.opts.PageBytes)
	hold, err := h.opts.Memory.Reserve(ctx, want, want)
	if err != nil {
		if r.Context().Err() != nil {
			return nil, false // the client went away
		}
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, fmt.Errorf("%w: too many clients reading history at once (memory bound %d bytes, waited %s); retry later",
			limit.ErrBusy, h.opts.Memory.Max(), h.opts.MemoryWait))
		return nil, false
	}
	return hold, true
}

// historyDeadline bounds the writing of an answer of history.
func (h *Handler) historyDeadline(w http.ResponseWriter) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
}

// writeHistory writes a catch-up or snapshot under the write deadline.
func (h *Handler) writeHistory(w http.ResponseWriter, status int, v any) {
	h.historyDeadline(w)
	writeJSON(w, status, v)
}

// writeChanges writes a page of commits as it encodes it, a chunk at a
// time, so that the page is never in memory twice (decoded and encoded):
// {"epoch":…,"version":…,"commits":[…]}. Each commit is dropped from cs
// once written.
func (h *Handler) writeChanges(w http.ResponseWriter, cs *protocol.Changes) {
	h.historyDeadline(w)
	w.Header()["Content-Type"] = jsonContentType
	if size := changesSize(cs); size <= changesChunk {
		// Small: one write with a Content-Length.
		writeBody(w, http.StatusOK, appendChanges(make([]byte, 0, size), cs))
		return
	}
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, changesChunk+changesChunk/4)
	b = appendChangesHead(b, cs)
	for i := range cs.Commits {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendCommit(b, cs.Commits[i])
		cs.Commits[i] = protocol.Commit{}
		if len(b) >= changesChunk {
			if _, err := w.Write(b); err != nil {
				return
			}
			b = b[:0]
		}
	}
	b = append(b, "]}"...)
	w.Write(b)
}

// changesChunk is the size of the writes of a large page of changes.
const changesChunk = 64 << 10

func (h *Handler) getRecord(w http.ResponseWriter, r *http.Request) {
	c, ok := h.collection(w, r, auth.Read)
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
	b = slices.Grow(b, changesSize(cs))
	b = appendChangesHead(b, cs)
	for i, c := range cs.Commits {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendCommit(b, c)
	}
	return append(b, "]}"...)
}

// changesSize is about the size of appendChanges' encoding of cs.
func changesSize(cs *protocol.Changes) int {
	size := 64 + len(cs.Epoch)
	for _, c := range cs.Commits {
		size += protocol.CommitSize(c)
	}
	return size
}

// appendChangesHead appends {"epoch":…,"version":…,"commits":[ .
func appendChangesHead(b []byte, cs *protocol.Changes) []byte {
	b = append(b, `{"epoch":"`...)
	b = append(b, cs.Epoch...) // epochs are [A-Za-z0-9_-]: no escaping needed
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, cs.Version, 10)
	return append(b, `,"commits":[`...)
}
