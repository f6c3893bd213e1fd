// Package server serves viewsync's whole HTTP surface from one Options
// and one access policy: the API under /v1/ (reads, writes, changes and
// long-poll, calls), the push transports (Server-Sent Events, the NDJSON
// stream, WebSocket), the browser client at /viewsync.js, /healthz,
// /readyz and /metrics, and the API's own documents at /openapi.yaml and
// /asyncapi.yaml, behind CORS, body limits, connection limits and
// timeouts, with a graceful shutdown. `viewsync serve` is built on it.
//
//	srv, err := server.Open("data", nil) // a durable store in ./data
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv.Hub().HandleCall("discount", discount) // your server functions
//	log.Fatal(srv.ListenAndServe(ctx, "localhost:8080"))
//
// New takes a store already open (another engine, say); Handler mounts
// the surface in a server of one's own.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/client"
	"github.com/viewsync/viewsync/docs"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/cors"
	"github.com/viewsync/viewsync/transport/guard"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/ndjson"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

// StoreFile is the name of the store's file in the folder Open opens.
const StoreFile = "viewsync.db"

// Server is viewsync's HTTP surface over one hub. Make one with New or
// Open; serve it with Serve or ListenAndServe, or mount Handler in a
// server of one's own. Close releases it.
type Server struct {
	opts    Options
	hub     *viewsync.Hub
	store   store.Store // closed by Close when Open opened it
	metrics *metrics.Prometheus
	mux     *http.ServeMux
	handler http.Handler
	sockets *ws.Handler

	stopping  atomic.Bool
	liveOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating it if missing) the durable store in the folder
// dir, the file StoreFile in it, and returns a Server over it, which
// closes the store when closed. A folder another process holds fails
// within a second or two with an error wrapping boltstore.ErrLocked that
// says so.
func Open(dir string, opts *Options) (*Server, error) {
	o := opts.withDefaults()
	st, err := OpenStore(dir, &boltstore.Options{Config: o.Store, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	ready := o.Ready
	o.Ready = func() error {
		if err := st.Writable(); err != nil {
			return err
		}
		if ready != nil {
			return ready()
		}
		return nil
	}
	s, err := New(st, &o)
	if err != nil {
		st.Close()
		return nil, err
	}
	s.store = st
	return s, nil
}

// OpenStore opens (creating it and its folder if missing) the durable
// store StoreFile in dir, with errors that say what to do about a folder
// in use or a damaged file.
func OpenStore(dir string, opts *boltstore.Options) (*boltstore.Store, error) {
	path := filepath.Join(dir, StoreFile)
	st, err := boltstore.Open(path, opts)
	switch {
	case errors.Is(err, boltstore.ErrLocked):
		return nil, fmt.Errorf("open store: %s is locked: another viewsync process uses the folder %s: %w", path, dir, err)
	case errors.Is(err, boltstore.ErrDamaged):
		return nil, fmt.Errorf("open store: %w; restore it from a backup, or move it aside to start empty", err)
	case err != nil:
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

// New returns a Server over st: a hub on it and every route of the
// surface. nil opts means the defaults. The caller keeps st, and closes
// it after the Server.
func New(st store.Store, opts *Options) (*Server, error) {
	o := opts.withDefaults()
	if o.HistoryMemory < int64(max(o.PageBytes, 0)) {
		return nil, fmt.Errorf("server: HistoryMemory %d is less than PageBytes %d: one page must fit", o.HistoryMemory, o.PageBytes)
	}
	met := o.Metrics
	if met == nil {
		met = metrics.New()
	}
	policy := *o.Policy
	if policy.Denied == nil {
		policy.Denied = met.Denied
	}
	history := limit.NewMemory(o.HistoryMemory)
	hub, err := viewsync.New(st, append([]viewsync.Option{
		viewsync.WithLogger(o.Logger),
		viewsync.WithMetrics(met),
		viewsync.WithLimits(o.Limits),
		viewsync.WithFanout(fanout.Options{BufferBytes: o.BufferBytes, PageBytes: o.PageBytes, Memory: history, MemoryWait: o.HistoryWait, Logger: o.Logger}),
		viewsync.WithPresence(o.Presence),
		viewsync.WithIdempotency(o.Idempotency),
	}, o.HubOptions...)...)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, hub: hub, metrics: met, mux: http.NewServeMux()}
	if err := s.build(&policy, history); err != nil {
		hub.Close()
		return nil, err
	}
	met.TrackLagging(hub, o.LagThreshold)
	met.TrackHistoryMemory(history)
	if o.CallFallback != nil {
		hub.HandleCallFallback(o.CallFallback)
	}
	return s, nil
}

// build makes the routes: the API owns /v1/, health and metrics (and
// answers unknown paths with a JSON 404); the browser client sits beside
// it; CORS and the body limits are in front of all.
func (s *Server) build(policy *auth.Policy, history *limit.Memory) error {
	o := &s.opts
	events, err := sse.New(s.hub, &sse.Options{
		PingInterval:   o.PingInterval,
		WriteTimeout:   o.StallTimeout,
		FlushInterval:  o.FlushInterval,
		MaxConnections: o.MaxSSEConnections,
		Logger:         o.Logger,
		Policy:         policy,
	})
	if err != nil {
		return err
	}
	stream, err := ndjson.New(s.hub, &ndjson.Options{
		PingInterval:   o.PingInterval,
		WriteTimeout:   o.StallTimeout,
		FlushInterval:  o.FlushInterval,
		MaxConnections: o.MaxStreamConnections,
		Logger:         o.Logger,
		Policy:         policy,
	})
	if err != nil {
		return err
	}
	s.sockets, err = ws.New(s.hub, &ws.Options{
		PingInterval:     o.PingInterval,
		WriteTimeout:     o.StallTimeout,
		FlushInterval:    o.FlushInterval,
		MaxMessageBytes:  o.WebSocketMaxMessageBytes,
		MaxSubscriptions: o.WebSocketMaxSubscriptions,
		MaxConnections:   o.MaxWebSocketConnections,
		OriginPatterns:   append(append([]string(nil), o.WebSocketOrigins...), o.CORSOrigins...),
		Logger:           o.Logger,
		Policy:           policy,
	})
	if err != nil {
		return fmt.Errorf("server: WebSocket origins: %w", err)
	}
	var metricsRoute http.Handler
	if !o.PrivateMetrics {
		metricsRoute = s.metrics.Handler()
	}
	api, err := httpapi.New(s.hub, &httpapi.Options{
		Events:       events,
		Stream:       stream,
		WebSocket:    s.sockets,
		MaxBodyBytes: o.MaxBodyBytes,
		MaxWait:      o.MaxWait,
		PageSize:     o.PageSize,
		PageBytes:    o.PageBytes,
		Memory:       history,
		MemoryWait:   o.HistoryWait,
		WriteTimeout: o.StallTimeout,
		CallTimeout:  o.CallTimeout,
		Policy:       policy,
		Logger:       o.Logger,
		Observer:     s.metrics,
		Metrics:      metricsRoute,
		Ready:        s.ready,
	})
	if err != nil {
		return err
	}
	s.mux.Handle("/", api)
	for _, p := range client.Patterns {
		s.mux.Handle(p, client.Handler())
	}
	// The contract, like /healthz, needs no token.
	s.mux.Handle("GET /openapi.yaml", yamlDocument(docs.OpenAPI))
	s.mux.Handle("GET /asyncapi.yaml", yamlDocument(docs.AsyncAPI))
	h := http.Handler(s.mux)
	if len(o.CORSOrigins) > 0 {
		mw, err := cors.Middleware(cors.Options{Origins: o.CORSOrigins})
		if err != nil {
			return fmt.Errorf("server: CORS origins: %w", err)
		}
		h = mw(h)
	}
	// Bodies runs before anything reads a body: it refuses a
	// Transfer-Encoding and a Content-Length over the limit, and bounds
	// the time a body takes to arrive.
	s.handler, err = guard.Bodies(h, &guard.BodyOptions{MaxBytes: o.MaxBodyBytes, Timeout: o.BodyTimeout, Logger: o.Logger})
	return err
}

// yamlDocument serves one of the API's documents (package docs), to any
// caller: GET /openapi.yaml is the OpenAPI document of the HTTP API, GET
// /asyncapi.yaml the AsyncAPI document of the push transports' messages.
func yamlDocument(doc []byte) http.Handler {
	length := strconv.Itoa(len(doc))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = []string{"application/yaml"}
		hd["Content-Length"] = []string{length}
		hd["Cache-Control"] = []string{"no-cache"}
		hd["X-Content-Type-Options"] = []string{"nosniff"}
		if r.Method != http.MethodHead {
			w.Write(doc)
		}
	})
}

// ready answers /readyz: not once shutting down, nor while Options.Ready
// says so.
func (s *Server) ready() error {
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	if s.opts.Ready != nil {
		return s.opts.Ready()
	}
	return nil
}

// Hub returns the server's hub: register calls on it, read and write its
// collections.
func (s *Server) Hub() *viewsync.Hub { return s.hub }

// Metrics returns the registry the server reports to.
func (s *Server) Metrics() *metrics.Prometheus { return s.metrics }

// Handle adds a route of the application (a page, say) beside
// viewsync's, with http.ServeMux patterns; the routes of viewsync win
// over "/". Call it before serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the whole surface as one handler, with CORS and the
// body limits, for a server of one's own. The connection limits and
// timeouts of Options are Serve's; a server of one's own sets its own.
func (s *Server) Handler() http.Handler { return s.handler }

// Close ends the server's long-polls and streams, closes its WebSockets
// (1001 going away, waiting up to Options.ShutdownTimeout for their
// clients' answers) and its hub, and the store when Open opened it. Serve
// calls it on its way out.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.endLive()
		if s.store != nil {
			if err := s.store.Close(); err != nil {
				s.closeErr = fmt.Errorf("close store: %w", err)
			}
		}
	})
	return s.closeErr
}

// endLive ends what lives beyond a request: long-polls and streams (by
// closing the hub) and WebSockets.
func (s *Server) endLive() {
	s.liveOnce.Do(func() {
		s.stopping.Store(true)
		s.hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		if err := s.sockets.Shutdown(ctx); err != nil {
			s.opts.Logger.Warn("closing WebSocket connections", "err", err)
		}
	})
}
