package push

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

// Options configures a Handler. Name, Streams, ContentType and Encoder
// must be set; zero durations and limits mean the defaults below, and
// negative ones are refused.
type Options struct {
	// Name names the transport in logs, e.g. "sse".
	Name string
	// Streams names its streams in refusals, e.g. "event streams".
	Streams string
	// ContentType is the streams' Content-Type.
	ContentType string
	// Encoder writes the streams' messages.
	Encoder StreamEncoder
	// Preamble is written right after the response head, so that a
	// client knows at once that it is connected; it may be empty.
	Preamble []byte
	// PingInterval is how long a stream may stay silent before a ping.
	PingInterval time.Duration
	// WriteTimeout bounds each write: a client that takes longer is
	// stalled and cut off.
	WriteTimeout time.Duration
	// FlushInterval is live.Pumps.Interval.
	FlushInterval time.Duration
	// RetryAfter is the Retry-After of 503 refusals.
	RetryAfter time.Duration
	// MaxConnections bounds the streams served at once.
	MaxConnections int
	// Logger receives the reasons streams end.
	Logger *slog.Logger
	// Policy admits each stream (the read right on its collection); nil
	// admits everyone.
	Policy *auth.Policy
}

// Handler serves the streams of one wire format, one collection per
// request, at a path naming the collection {c}:
//
//	GET /v1/collections/{c}/…?after=V&epoch=E
//
// with the Last-Event-ID header, EPOCH:VERSION, overriding the query. It is
// safe for concurrent use.
type Handler struct {
	hub  *viewsync.Hub
	opts Options
	log  *slog.Logger
	// format is opts.Encoder's, shared by the handler's subscriptions.
	format *Format
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

// Defaults of Options, the transports' defaults too.
const (
	DefaultPingInterval   = 15 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultRetryAfter     = 2 * time.Second
	DefaultMaxConnections = 10000
)

// NewHandler returns a handler streaming the collections of hub.
func NewHandler(hub *viewsync.Hub, opts Options) (*Handler, error) {
	if hub == nil {
		return nil, fmt.Errorf("%s: nil hub", opts.Name)
	}
	o := opts
	if o.PingInterval < 0 || o.WriteTimeout < 0 || o.FlushInterval < 0 || o.RetryAfter < 0 || o.MaxConnections < 0 {
		return nil, fmt.Errorf("%s: negative option", o.Name)
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		hub:    hub,
		opts:   o,
		log:    o.Logger,
		format: NewFormat(o.Encoder),
		pumps:  live.Pumps{Tick: max(o.PingInterval/4, 10*time.Millisecond), Interval: o.FlushInterval},
	}, nil
}

// Connections returns how many streams the handler is serving.
func (h *Handler) Connections() int { return int(h.conns.Load()) }

// ServeHTTP checks the method, admits the request (the read right), checks
// the collection name and the cursor (400 when malformed), takes a
// connection slot (503 past MaxConnections or once the hub is closed), and
// then streams until the client goes away, a write stalls, the token
// expires or the hub closes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		Refuse(w, protocol.CodeMethodNotAllowed, r.Method+" is not allowed here; allowed: GET, HEAD")
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
	cur, err := ParseCursor(r.Header.Values("Last-Event-ID"), r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	where, err := h.hub.WhereQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	pres := presenceRequest{coll: coll}
	if pres.want, err = ParsePresence(r.URL.RawQuery); err != nil {
		h.fail(w, r, err)
		return
	}
	// The client's view, within the rows the principal may read.
	coll = coll.Where(where).Where(pr.Where(auth.Read, coll.Name()))
	if !canFlush(w) {
		h.log.Error(h.opts.Name+": the ResponseWriter cannot flush; streaming is impossible", "path", r.URL.Path)
		Refuse(w, protocol.CodeInternal, "streaming is not supported by this server")
		return
	}
	if r.Method == http.MethodHead {
		h.setHeaders(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	if h.conns.Add(1) > int64(h.opts.MaxConnections) {
		h.conns.Add(-1)
		h.unavailable(w, fmt.Sprintf("too many %s (limit %d); retry later", h.opts.Streams, h.opts.MaxConnections))
		return
	}
	sub, err := coll.Subscribe(cur)
	if err != nil {
		h.conns.Add(-1)
		h.fail(w, r, err)
		return
	}
	if h.serveHijacked(w, r, coll.Name(), sub, pr, pres) {
		return // the stream owns the slot and the subscription
	}
	defer h.conns.Add(-1)
	defer sub.Close()
	h.serveResponse(w, r, coll.Name(), sub, pr, pres)
}

// setHeaders sets the headers of a stream.
func (h *Handler) setHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd["Content-Type"] = []string{h.opts.ContentType}
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
		h.log.Error(h.opts.Name+": request failed", "path", r.URL.Path, "err", err)
		Refuse(w, code, "internal error")
	case protocol.CodeUnavailable:
		h.unavailable(w, "the server is shutting down; retry later")
	default:
		Refuse(w, code, err.Error())
	}
}

// unavailable answers 503, with Retry-After.
func (h *Handler) unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(max(1, (h.opts.RetryAfter+time.Second-1)/time.Second)), 10))
	Refuse(w, protocol.CodeUnavailable, msg)
}

// Refuse answers, before any streaming, with the contract's error body and
// the status of code.
func Refuse(w http.ResponseWriter, code protocol.Code, msg string) {
	protocol.WriteError(w, 0, code, msg)
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
