package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's profiler on its own listener, apart from the API,
// so it is never exposed where the API is. It returns a function that stops
// it.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serveSide("pprof", addr, "/debug/pprof/", mux, log)
}

// serveMetrics serves the Prometheus metrics on their own listener, apart
// from the API (--metrics-addr). It returns a function that stops it.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return serveSide("metrics-addr", addr, "/metrics", mux, log)
}

// serveSide serves h on a listener of its own at addr; flag names the
// flag that asked for it, path what to log.
func serveSide(flag, addr, path string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("side server stopped", "flag", flag, "err", err)
		}
	}()
	log.Info("serving "+path+" on its own listener", "addr", "http://"+ln.Addr().String()+path)
	return func() { srv.Close() }, nil
}
