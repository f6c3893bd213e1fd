package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
)

// errUnsupportedMedia marks a request body of the wrong content type.
var errUnsupportedMedia = errors.New("unsupported media type")

// readBody checks the content type against accepted and reads the body,
// at most MaxBodyBytes of it.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, accepted ...string) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	ok := err == nil
	if ok {
		ok = false
		for _, a := range accepted {
			ok = ok || mt == a
		}
		if cs, has := params["charset"]; has && !equalFoldASCII(cs, "utf-8") {
			ok = false
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: Content-Type %q; send %s", errUnsupportedMedia, ct, accepted[0])
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: body over %d bytes", viewsync.ErrTooLarge, mbe.Limit)
		}
		return nil, fmt.Errorf("%w: reading body: %v", viewsync.ErrInvalid, err)
	}
	if !utf8.Valid(body) {
		// encoding/json would silently replace the bad bytes, changing ids.
		return nil, fmt.Errorf("%w: body is not valid UTF-8", viewsync.ErrInvalid)
	}
	return body, nil
}

func equalFoldASCII(a, b string) bool {
	return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b))
}

// failWrite answers a failed write, including the media-type error.
func (h *Handler) failWrite(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errUnsupportedMedia) {
		writeError(w, protocol.CodeUnsupportedMediaType, err.Error())
		return
	}
	h.fail(w, r, err)
}

// mayRead reports whether the caller of r may read collection c. Without a
// Policy every caller may.
func mayRead(r *http.Request, c string) bool {
	pr, ok := auth.FromContext(r.Context())
	return !ok || pr.Allows(auth.Read, c)
}

// failWriteTo answers a write to collection c that the hub refused. A
// caller who may not read c is told no more than viewsync.Redact leaves.
func (h *Handler) failWriteTo(w http.ResponseWriter, r *http.Request, c string, err error) {
	if !mayRead(r, c) {
		err = viewsync.Redact(err)
	}
	h.fail(w, r, err)
}

// recordWrite prepares a single-record write: collection, id and the
// preconditions of If-Match / If-None-Match. mustExist is set for
// If-Match: *, which pin resolves.
func (h *Handler) recordWrite(w http.ResponseWriter, r *http.Request) (c *viewsync.Collection, id string, opts []viewsync.WriteOption, mustExist, ok bool) {
	c, ok = h.collection(w, r, auth.Write)
	if !ok {
		return nil, "", nil, false, false
	}
	id = r.PathValue("id")
	if err := protocol.ValidateID(id, h.hub.Limits().MaxIDBytes); err != nil {
		h.fail(w, r, errors.Join(viewsync.ErrInvalid, err))
		return nil, "", nil, false, false
	}
	opts, mustExist, err := writePreconditions(r.Header.Get("If-Match"), r.Header.Get("If-None-Match"))
	if err != nil {
		h.fail(w, r, err)
		return nil, "", nil, false, false
	}
	return c, id, opts, mustExist, true
}

// pin resolves If-Match: * (mustExist): it pins the record's current
// version, so that the write fails if the record is gone meanwhile. It
// reports false when it has answered w.
func (h *Handler) pin(w http.ResponseWriter, r *http.Request, ctx context.Context, c *viewsync.Collection, id string, opts []viewsync.WriteOption, mustExist bool) ([]viewsync.WriteOption, bool) {
	if !mustExist {
		return opts, true
	}
	cur, err := c.Unfiltered().Get(ctx, id)
	if errors.Is(err, viewsync.ErrNotFound) {
		writeError(w, protocol.CodePreconditionFailed, fmt.Sprintf("record %q does not exist (If-Match: *)", id))
		return nil, false
	}
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return []viewsync.WriteOption{viewsync.IfVersion(cur.Version)}, true
}

// onceRecord describes a single-record write for an idempotency key.
func onceRecord(r *http.Request, c *viewsync.Collection, id string, body []byte) viewsync.Once {
	return viewsync.OnceRecord("", "", r.Method, c.Name(), id, r.Header.Get("If-Match"), r.Header.Get("If-None-Match"), body)
}

// recordWriter is Collection.Put or Collection.Patch.
type recordWriter func(c *viewsync.Collection, ctx context.Context, id string, body json.RawMessage, opts ...viewsync.WriteOption) (viewsync.Record, error)

func (h *Handler) putRecord(w http.ResponseWriter, r *http.Request) {
	h.writeRecord(w, r, (*viewsync.Collection).Put, "application/json")
}

func (h *Handler) patchRecord(w http.ResponseWriter, r *http.Request) {
	h.writeRecord(w, r, (*viewsync.Collection).Patch, "application/merge-patch+json", "application/json")
}

// writeRecord answers a PUT or PATCH of one record: the body (of one of the
// accepted content types) goes to write, under the request's preconditions
// and its idempotency key, when it has one. The answer is
// {"version","record"}, or only {"version"} for a caller who may write the
// collection but not read it: a patch's record holds the value it was
// merged into. The ETag is the new version, which every writer is told.
func (h *Handler) writeRecord(w http.ResponseWriter, r *http.Request, write recordWriter, accepted ...string) {
	c, id, opts, mustExist, ok := h.recordWrite(w, r)
	if !ok {
		return
	}
	body, err := h.readBody(w, r, accepted...)
	if err != nil {
		h.failWrite(w, r, err)
		return
	}
	reader := mayRead(r, c.Name())
	render := func(cm viewsync.Commit) viewsync.Answer {
		if !reader {
			return jsonAnswer(protocol.CommitResponse{Version: cm.Version}, versionETag(cm.Version))
		}
		rec := viewsync.Record{ID: id, Value: cm.Ops[len(cm.Ops)-1].Value, Version: cm.Version}
		return jsonAnswer(protocol.RecordResponse{Version: cm.Version, Record: rec}, versionETag(cm.Version))
	}
	h.once(w, r, onceRecord(r, c, id, body), func(w http.ResponseWriter, ctx context.Context, k *viewsync.Keyed) {
		opts, ok := h.pin(w, r, ctx, c, id, opts, mustExist)
		if !ok {
			return
		}
		if k != nil {
			opts = append(opts, k.Record(render))
		}
		rec, err := write(c, ctx, id, body, opts...)
		if err != nil {
			h.failWriteTo(w, r, c.Name(), err)
			return
		}
		writeAnswer(w, render(viewsync.Commit{Version: rec.Version, Ops: []viewsync.Op{viewsync.Put(id, rec.Value)}}))
	})
}

func (h *Handler) deleteRecord(w http.ResponseWriter, r *http.Request) {
	c, id, opts, mustExist, ok := h.recordWrite(w, r)
	if !ok {
		return
	}
	render := func(cm viewsync.Commit) viewsync.Answer {
		return jsonAnswer(protocol.CommitResponse{Version: cm.Version}, "")
	}
	h.once(w, r, onceRecord(r, c, id, nil), func(w http.ResponseWriter, ctx context.Context, k *viewsync.Keyed) {
		opts, ok := h.pin(w, r, ctx, c, id, opts, mustExist)
		if !ok {
			return
		}
		if k != nil {
			opts = append(opts, k.Record(render))
		}
		v, err := c.Delete(ctx, id, opts...)
		if err != nil {
			h.failWriteTo(w, r, c.Name(), err)
			return
		}
		writeAnswer(w, render(viewsync.Commit{Version: v}))
	})
}

func (h *Handler) postCommit(w http.ResponseWriter, r *http.Request) {
	c, ok := h.collection(w, r, auth.Write)
	if !ok {
		return
	}
	body, err := h.readBody(w, r, "application/json")
	if err != nil {
		h.failWrite(w, r, err)
		return
	}
	req, err := decodeCommitRequest(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.once(w, r, viewsync.OnceCommit("", "", c.Name(), req.Ops, req.If), func(w http.ResponseWriter, ctx context.Context, k *viewsync.Keyed) {
		var opts []viewsync.WriteOption
		if k != nil {
			opts = append(opts, k.Record(viewsync.CommitAnswer))
		}
		cm, err := c.Commit(ctx, req.Ops, req.If, opts...)
		if err != nil {
			h.failWriteTo(w, r, c.Name(), err)
			return
		}
		writeAnswer(w, viewsync.CommitAnswer(cm))
	})
}

// decodeCommitRequest parses a commit body strictly: one JSON object with
// only the fields ops and if, each op only op, id and value, keys
// case-sensitive and never repeated.
func decodeCommitRequest(body []byte) (protocol.CommitRequest, error) {
	req, err := protocol.DecodeCommitRequest(body)
	if err != nil {
		return req, fmt.Errorf("%w: %w", viewsync.ErrInvalid, err)
	}
	return req, nil
}
