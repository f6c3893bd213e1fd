package httpapi

import (
	"github.com/viewsync/viewsync/auth"
	"log/slog"
	"net/http"
	"time"
)

// Options configures a Handler. The zero value means the defaults.
type Options struct {
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxWait bounds a long-poll's wait. Default and upper bound 60s.
	MaxWait time.Duration
	// PageSize is the alignment, and the largest size, of a page of
	// changes. Default 1000.
	PageSize int
	// Logger receives request errors. Default: discard.
	Logger *slog.Logger
	// Observer receives per-request measurements. Default: none.
	Observer Observer
	// Ready reports whether the server should receive traffic (/readyz).
	// Default: always ready.
	Ready func() error
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Events, when set, serves GET /v1/collections/{c}/events (the
	// Server-Sent Events transport, package transport/sse).
	Events http.Handler
	// WebSocket, when set, serves GET /v1/ws (package transport/ws).
	WebSocket http.Handler
	// CallTimeout bounds a call (POST /v1/calls/{name}): its handler's
	// context ends then, and the caller gets 504 timeout. Default 30s.
	CallTimeout time.Duration
	// Policy authenticates every /v1/ request, checks its rights on the
	// collection or call it names and the principal's commit and call
	// rates. Nil: anonymous access with every right. The Events and
	// WebSocket handlers enforce their own (give them the same one).
	Policy *auth.Policy
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxWait      = 60 * time.Second
	DefaultPageSize     = 1000
	DefaultCallTimeout  = 30 * time.Second
)

// Observer receives one measurement per request.
type Observer interface {
	// ObserveRequest reports a finished request: its route pattern (such as
	// "GET /v1/collections/{c}"), status code and duration.
	ObserveRequest(route string, status int, took time.Duration)
}
