package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/viewsync/viewsync/transport/guard"
)

// ErrAnonymousPublic is returned by Serve for anonymous access (no
// Policy.Authenticate) on an address that is not loopback, unless
// Options.InsecureAnonymous.
var ErrAnonymousPublic = errors.New("server: anonymous access with every right on an address that is not loopback")

// ListenAndServe listens on the TCP address addr and serves there until
// ctx ends (see Serve).
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.checkAnonymous(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the surface on ln, under the connection limits and
// timeouts of Options, until ctx ends or serving fails. Then /readyz
// turns unavailable for Options.DrainDelay, requests in flight get
// Options.ShutdownTimeout to finish, long-polls and streams end and
// WebSockets are closed, and then the Server is closed (see Close). It
// returns nil after a shutdown that ctx asked for.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.checkAnonymous(ln.Addr().String()); err != nil {
		ln.Close()
		return err
	}
	o := &s.opts
	gl, err := guard.NewListener(ln, &guard.ListenerOptions{
		MaxConns:        o.MaxConns,
		MaxConnsPerAddr: o.MaxConnsPerAddr,
		HealthConns:     o.HealthConns,
		Logger:          o.Logger,
		Refused:         func(string) { s.metrics.Denied("too_many_connections") },
	})
	if err != nil {
		ln.Close()
		return err
	}
	o.Logger.Info("connections limited", "max_conns", o.MaxConns, "max_conns_per_ip", o.MaxConnsPerAddr, "health_conns", o.HealthConns,
		"idle_timeout", o.IdleTimeout.String(), "body_timeout", o.BodyTimeout.String(), "max_header_bytes", o.MaxHeaderBytes)
	srv := &http.Server{
		Handler:           gl.Middleware(s.handler),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ConnState:         gl.ConnState,
		ConnContext:       gl.ConnContext,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for handlers, so long-lived ones must be told to end:
	// closing the hub answers long-polls and ends SSE and NDJSON streams;
	// WebSockets (hijacked, invisible to Shutdown) are closed apart.
	srv.RegisterOnShutdown(s.endLive)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(gl) }()
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	if o.DrainDelay > 0 {
		o.Logger.Info("shutting down: /readyz now unavailable; draining", "drain_delay", o.DrainDelay.String())
		time.Sleep(o.DrainDelay)
	}
	o.Logger.Info("shutting down: finishing in-flight requests", "timeout", o.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		o.Logger.Warn("shutdown timed out; closing remaining connections", "err", err)
		srv.Close()
	}
	return s.Close()
}

// checkAnonymous refuses anonymous access on an address beyond loopback,
// unless allowed.
func (s *Server) checkAnonymous(addr string) error {
	if s.opts.Policy.Authenticate != nil || s.opts.InsecureAnonymous {
		return nil
	}
	loop, err := Loopback(addr)
	if err != nil {
		return err
	}
	if !loop {
		return fmt.Errorf("%w (%s): give Options.Policy an Authenticate (package auth), listen on 127.0.0.1, or set Options.InsecureAnonymous", ErrAnonymousPublic, addr)
	}
	return nil
}

// Loopback reports whether addr (host:port) binds only loopback
// interfaces. An empty host binds every interface.
func Loopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
