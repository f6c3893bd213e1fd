package vsclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/viewsync/viewsync/protocol"
)

// WriteOption sets a precondition of a single-record write, or the
// idempotency key of any write or call (WithIdempotencyKey).
type WriteOption func(h http.Header)

// WithIdempotencyKey sends key as the request's Idempotency-Key: the
// server applies the write (runs the call) at most once for it, and
// answers a retry with the same key and request as it answered the
// first. Use a fresh key (a UUID) per write and the same on every retry
// of it; net/http itself resends such a request when a reused connection
// fails before the answer. A retry after the server's
// --idempotency-ttl (24h) applies again.
func WithIdempotencyKey(key string) WriteOption {
	return func(h http.Header) { h.Set("Idempotency-Key", key) }
}

// IfVersion writes only if the record is at version v (If-Match: "v");
// else the write fails with ErrPreconditionFailed.
func IfVersion(v uint64) WriteOption {
	return func(h http.Header) { h.Set("If-Match", `"`+strconv.FormatUint(v, 10)+`"`) }
}

// IfAbsent writes only if the record does not exist (If-None-Match: *).
func IfAbsent() WriteOption {
	return func(h http.Header) { h.Set("If-None-Match", "*") }
}

// IfExists writes only if the record exists (If-Match: *).
func IfExists() WriteOption {
	return func(h http.Header) { h.Set("If-Match", "*") }
}

// recordPath returns the path of a record.
func recordPath(collection, id string) string {
	return "/v1/collections/" + url.PathEscape(collection) + "/records/" + url.PathEscape(id)
}

// marshal returns v as JSON: json.RawMessage and []byte as they are.
func marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case json.RawMessage:
		return v, nil
	case []byte:
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("vsclient: encoding the value: %w", err)
	}
	return b, nil
}

// Get returns one record; ErrNotFound when it does not exist (or lies
// outside the token's read filter).
func (c *Client) Get(ctx context.Context, collection, id string) (protocol.Record, error) {
	req, err := c.newRequest(ctx, http.MethodGet, c.url(recordPath(collection, id), nil), nil)
	if err != nil {
		return protocol.Record{}, err
	}
	var r protocol.Record
	return r, c.do(req, &r)
}

// Snapshot returns the collection's records at one version; with where
// (a filter: a JSON-encodable value or json.RawMessage; nil for none)
// only those that match it.
func (c *Client) Snapshot(ctx context.Context, collection string, where any) (protocol.Snapshot, error) {
	q, err := whereQuery(where)
	if err != nil {
		return protocol.Snapshot{}, err
	}
	req, err := c.newRequest(ctx, http.MethodGet, c.url("/v1/collections/"+url.PathEscape(collection), q), nil)
	if err != nil {
		return protocol.Snapshot{}, err
	}
	var s protocol.Snapshot
	return s, c.do(req, &s)
}

// Head returns the collection's cursor at its head (GET
// /v1/collections/{c}/version): the cheap "am I stale?" question, answered
// from the server's memory; a collection never written is at version 0.
func (c *Client) Head(ctx context.Context, collection string) (protocol.Head, error) {
	req, err := c.newRequest(ctx, http.MethodGet, c.url("/v1/collections/"+url.PathEscape(collection)+"/version", nil), nil)
	if err != nil {
		return protocol.Head{}, err
	}
	var h protocol.Head
	return h, c.do(req, &h)
}

// whereQuery returns the query that carries a filter, nil without one.
func whereQuery(where any) (url.Values, error) {
	if where == nil {
		return nil, nil
	}
	b, err := marshal(where)
	if err != nil {
		return nil, err
	}
	return url.Values{"where": {string(b)}}, nil
}

// Put writes a whole value (any JSON-encodable value, or json.RawMessage)
// and returns the record as written.
func (c *Client) Put(ctx context.Context, collection, id string, value any, opts ...WriteOption) (protocol.Record, error) {
	return c.writeRecord(ctx, http.MethodPut, "application/json", collection, id, value, opts)
}

// Patch applies a JSON merge patch (RFC 7396) to a record and returns it
// as written.
func (c *Client) Patch(ctx context.Context, collection, id string, patch any, opts ...WriteOption) (protocol.Record, error) {
	return c.writeRecord(ctx, http.MethodPatch, "application/merge-patch+json", collection, id, patch, opts)
}

func (c *Client) writeRecord(ctx context.Context, method, ctype, collection, id string, value any, opts []WriteOption) (protocol.Record, error) {
	body, err := marshal(value)
	if err != nil {
		return protocol.Record{}, err
	}
	req, err := c.newRequest(ctx, method, c.url(recordPath(collection, id), nil), body)
	if err != nil {
		return protocol.Record{}, err
	}
	req.Header.Set("Content-Type", ctype)
	for _, o := range opts {
		o(req.Header)
	}
	var r protocol.RecordResponse
	return r.Record, c.do(req, &r)
}

// Delete deletes a record and returns the commit's version; ErrNotFound
// when it does not exist.
func (c *Client) Delete(ctx context.Context, collection, id string, opts ...WriteOption) (uint64, error) {
	req, err := c.newRequest(ctx, http.MethodDelete, c.url(recordPath(collection, id), nil), nil)
	if err != nil {
		return 0, err
	}
	for _, o := range opts {
		o(req.Header)
	}
	var r protocol.CommitResponse
	return r.Version, c.do(req, &r)
}

// Commit applies ops atomically if every precondition in ifs holds (id →
// version the record must have, 0: it must not exist) and returns the
// commit's version. Of opts only WithIdempotencyKey applies (the
// preconditions are ifs).
func (c *Client) Commit(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, opts ...WriteOption) (uint64, error) {
	body, err := json.Marshal(protocol.CommitRequest{Ops: ops, If: ifs})
	if err != nil {
		return 0, fmt.Errorf("vsclient: encoding the commit: %w", err)
	}
	req, err := c.newRequest(ctx, http.MethodPost, c.url("/v1/collections/"+url.PathEscape(collection)+"/commits", nil), body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	idempotencyKey(req.Header, opts)
	var r protocol.CommitResponse
	return r.Version, c.do(req, &r)
}

// idempotencyKey sets, of opts, only the Idempotency-Key on h.
func idempotencyKey(h http.Header, opts []WriteOption) {
	o := http.Header{}
	for _, opt := range opts {
		opt(o)
	}
	if k := o.Get("Idempotency-Key"); k != "" {
		h.Set("Idempotency-Key", k)
	}
}

// CallResult is what a call answered.
type CallResult struct {
	// Result is the function's result.
	Result json.RawMessage `json:"result"`
	// Versions are the collection versions the call's writes produced (or
	// what it read): wait for them with View.WaitFor to see its writes.
	Versions map[string]uint64 `json:"versions"`
}

// Call runs the named server function with arg (any JSON-encodable value;
// nil for none).
//
// Of opts only WithIdempotencyKey applies.
func (c *Client) Call(ctx context.Context, name string, arg any, opts ...WriteOption) (CallResult, error) {
	var body []byte
	if arg == nil {
		body = []byte(`{}`)
	} else {
		a, err := marshal(arg)
		if err != nil {
			return CallResult{}, err
		}
		body, _ = json.Marshal(struct {
			Arg json.RawMessage `json:"arg"`
		}{a})
	}
	req, err := c.newRequest(ctx, http.MethodPost, c.url("/v1/calls/"+url.PathEscape(name), nil), body)
	if err != nil {
		return CallResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	idempotencyKey(req.Header, opts)
	var r CallResult
	return r, c.do(req, &r)
}
