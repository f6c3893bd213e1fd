package httpapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
)

// Handler serves the HTTP API. Make one with New.
type Handler struct {
	hub  *viewsync.Hub
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler serving hub. A nil opts means the defaults.
func New(hub *viewsync.Hub, opts *Options) (*Handler, error) {
	if hub == nil {
		return nil, errors.New("httpapi: nil hub")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxBodyBytes < 0 || o.MaxWait < 0 || o.PageSize < 0 || o.CallTimeout < 0 ||
		o.PageBytes < 0 || o.MemoryWait < 0 || o.WriteTimeout < 0 {
		return nil, errors.New("httpapi: negative limit")
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxWait == 0 || o.MaxWait > DefaultMaxWait {
		o.MaxWait = DefaultMaxWait
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PageBytes == 0 {
		o.PageBytes = DefaultPageBytes
	}
	if o.MemoryWait == 0 {
		o.MemoryWait = DefaultMemoryWait
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &Handler{hub: hub, opts: o, log: o.Logger, mux: http.NewServeMux()}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	const (
		coll    = "/v1/collections/{c}"
		version = coll + "/version"
		changes = coll + "/changes"
		record  = coll + "/records/{id...}"
		commits = coll + "/commits"
		pres    = coll + "/presence"
		calls   = "/v1/calls/{name}"
		events  = coll + "/events"
		stream  = coll + "/stream"
		ws      = "/v1/ws"
	)
	h.handle("GET "+coll, h.guard(auth.Read, "c", h.getSnapshot))
	h.handle("GET "+version, h.guard(auth.Read, "c", h.getVersion))
	h.handle("GET "+changes, h.guard(auth.Read, "c", h.getChanges))
	h.handle("GET "+record, h.guard(auth.Read, "c", h.getRecord))
	h.handle("PUT "+record, h.guard(auth.Write, "c", h.putRecord))
	h.handle("PATCH "+record, h.guard(auth.Write, "c", h.patchRecord))
	h.handle("DELETE "+record, h.guard(auth.Write, "c", h.deleteRecord))
	h.handle("POST "+commits, h.guard(auth.Write, "c", h.postCommit))
	h.handle("PUT "+pres, h.guard(auth.Read, "c", h.putPresence))
	h.handle("DELETE "+pres, h.guard(auth.Read, "c", h.deletePresence))
	h.handle("POST "+calls, h.guard(auth.Call, "name", h.postCall))
	h.handle("GET /healthz", h.healthz)
	h.handle("GET /readyz", h.readyz)
	if h.opts.Metrics != nil {
		h.mux.Handle("GET /metrics", h.opts.Metrics)
	}
	// Streams are mounted unmeasured: their duration is the session's.
	if h.opts.Events != nil {
		h.mux.Handle("GET "+events, h.opts.Events)
	}
	if h.opts.Stream != nil {
		h.mux.Handle("GET "+stream, h.opts.Stream)
	}
	if h.opts.WebSocket != nil {
		h.mux.Handle("GET "+ws, h.opts.WebSocket)
	}

	allow := map[string]string{
		coll:    "GET, HEAD",
		version: "GET, HEAD",
		changes: "GET, HEAD",
		record:  "GET, HEAD, PUT, PATCH, DELETE",
		commits: "POST",
		pres:    "PUT, DELETE",
		calls:   "POST",
	}
	if h.opts.Events != nil {
		allow[events] = "GET, HEAD"
	}
	if h.opts.Stream != nil {
		allow[stream] = "GET, HEAD"
	}
	if h.opts.WebSocket != nil {
		allow[ws] = "GET"
	}
	for path, methods := range allow {
		h.handle(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			writeError(w, protocol.CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; allowed: %s", r.Method, methods))
		})
	}
	h.handle("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, protocol.CodeNotFound, "no such endpoint: "+r.URL.Path)
	})
}

// guard admits a request under the Policy before fn serves it: the
// caller must be authenticated, hold right a on the collection or call
// named by the path parameter param, and be within its rate. The principal
// travels in the request's context (call handlers read it with
// auth.FromContext).
func (h *Handler) guard(a auth.Action, param string, fn http.HandlerFunc) http.HandlerFunc {
	pol := h.opts.Policy
	if pol == nil {
		return fn
	}
	return func(w http.ResponseWriter, r *http.Request) {
		pr, err := pol.Admit(r, a, r.PathValue(param))
		if err != nil {
			auth.WriteDenied(w, err)
			return
		}
		fn(w, r.WithContext(auth.NewContext(r.Context(), pr)))
	}
}

// handle registers fn under pattern, measuring each request when an
// Observer is set.
func (h *Handler) handle(pattern string, fn http.HandlerFunc) {
	obs := h.opts.Observer
	if obs == nil {
		h.mux.HandleFunc(pattern, fn)
		return
	}
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		fn(sw, r)
		obs.ObserveRequest(pattern, sw.status, time.Since(start))
	})
}

// ServeHTTP implements http.Handler. Every answer says nosniff: bodies are
// JSON (or event streams), and no browser may take one — an error message
// that quotes the request, say — for HTML.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["X-Content-Type-Options"] = nosniff
	if err := checkQuery(r); err != nil {
		h.fail(w, r, err)
		return
	}
	h.mux.ServeHTTP(w, r)
}

var nosniff = []string{"nosniff"}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, `{"status":"ok"}`)
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	if h.opts.Ready != nil {
		if err := h.opts.Ready(); err != nil {
			writeError(w, protocol.CodeUnavailable, "not ready: "+err.Error())
			return
		}
	}
	h.healthz(w, r)
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
