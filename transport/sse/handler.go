package sse

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/live"
)

// Handler serves the event streams of a hub's collections. Make one with
// New; it is safe for concurrent use.
type Handler struct {
	hub  *viewsync.Hub
	opts Options
	log  *slog.Logger
	// retry is the stream's first line, "retry: MS\n\n".
	retry []byte
	// conns counts the streams being served; it never exceeds
	// opts.MaxConnections for longer than a refused request takes.
	conns atomic.Int64
	// warnedDeadlines is set once the lack of write deadlines is logged.
	warnedDeadlines atomic.Bool

	// pumps holds the live (hijacked) streams of each collection.
	pumps live.Pumps
	// hangups notices live streams whose client went away.
	hangups live.Watcher
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler streaming the collections of hub. A nil opts means
// the defaults; negative durations or limits are refused.
func New(hub *viewsync.Hub, opts *Options) (*Handler, error) {
	if hub == nil {
		return nil, errors.New("sse: nil hub")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.PingInterval < 0 || o.WriteTimeout < 0 || o.Retry < 0 || o.MaxConnections < 0 || o.FlushInterval < 0 {
		return nil, errors.New("sse: negative option")
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Retry == 0 {
		o.Retry = DefaultRetry
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		hub:   hub,
		opts:  o,
		log:   o.Logger,
		retry: fmt.Appendf(nil, "retry: %d\n\n", o.Retry.Milliseconds()),
		pumps: live.Pumps{Tick: max(o.PingInterval/4, 10*time.Millisecond), Interval: o.FlushInterval},
	}, nil
}

// Connections returns how many streams the handler is serving.
func (h *Handler) Connections() int { return int(h.conns.Load()) }

// ServeHTTP serves GET /v1/collections/{c}/events: it checks the
// collection name and the cursor (400 when malformed), admits the stream
// (503 past MaxConnections or once the hub is closed), and then streams
// until the client goes away, a write stalls or the hub closes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, protocol.CodeMethodNotAllowed, r.Method+" is not allowed here; allowed: GET, HEAD")
		return
	}
	pr, err := h.opts.Policy.Admit(r, auth.Read, r.PathValue("c"))
	if err != nil {
		auth.WriteDenied(w, err)
		return
	}
	coll, err := h.hub.Collection(r.PathValue("c"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cur, err := parseCursor(r.Header.Values("Last-Event-ID"), r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !canFlush(w) {
		h.log.Error("sse: the ResponseWriter cannot flush; streaming is impossible", "path", r.URL.Path)
		writeError(w, protocol.CodeInternal, "streaming is not supported by this server")
		return
	}
	if r.Method == http.MethodHead {
		setStreamHeaders(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	if h.conns.Add(1) > int64(h.opts.MaxConnections) {
		h.conns.Add(-1)
		h.unavailable(w, fmt.Sprintf("too many event streams (limit %d); retry later", h.opts.MaxConnections))
		return
	}
	sub, err := coll.Subscribe(cur)
	if err != nil {
		h.conns.Add(-1)
		h.fail(w, r, err)
		return
	}
	if h.serveLive(w, r, coll.Name(), sub, pr) {
		return // the live stream owns the slot and the subscription
	}
	defer h.conns.Add(-1)
	defer sub.Close()

	ctx, cancel := auth.UntilExpiry(r.Context(), pr)
	defer cancel()
	s := newStream(h, w, sub)
	start := time.Now()
	end := s.run(ctx)
	h.log.Log(r.Context(), end.level, "sse: stream ended",
		"reason", end.reason, "err", end.err, "collection", coll.Name(),
		"cursor", sub.Cursor().String(), "remote", r.RemoteAddr,
		"took", time.Since(start), "commits", s.commits, "catchups", s.catchups,
		"resets", s.resets, "pings", s.pings)
}

// setStreamHeaders sets the headers of an event stream.
func setStreamHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd["Content-Type"] = []string{"text/event-stream"}
	hd["Cache-Control"] = []string{"no-cache"}
	hd["X-Accel-Buffering"] = []string{"no"}
}

// fail answers, before any streaming, with the error err maps to.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := viewsync.ErrorCode(err)
	if errors.Is(err, fanout.ErrClosed) {
		code = protocol.CodeUnavailable
	}
	switch code {
	case protocol.CodeInternal:
		h.log.Error("sse: request failed", "path", r.URL.Path, "err", err)
		writeError(w, code, "internal error")
	case protocol.CodeUnavailable:
		h.unavailable(w, "the server is shutting down; retry later")
	default:
		writeError(w, code, err.Error())
	}
}

// unavailable answers 503, with the retry hint as Retry-After.
func (h *Handler) unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(max(1, (h.opts.Retry+time.Second-1)/time.Second)), 10))
	writeError(w, protocol.CodeUnavailable, msg)
}

// writeError writes the contract's error body.
func writeError(w http.ResponseWriter, code protocol.Code, msg string) {
	b := protocol.MarshalError(code, msg)
	hd := w.Header()
	hd["Content-Type"] = []string{"application/json"}
	hd["Cache-Control"] = []string{"no-store"}
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(code.Status())
	w.Write(b)
}

// canFlush reports whether w, or a writer it wraps, can flush, as
// http.ResponseController would find it.
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}
