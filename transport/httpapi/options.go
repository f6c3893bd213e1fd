package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/store"
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
	// PageBytes bounds the size of a page of changes (the commits'
	// protocol.CommitSize summed; a single larger commit comes alone). A
	// page cut by it ends at the last boundary, aligned like PageSize's
	// but finer, that it reaches, so that clients still share cached
	// pages. Default 4 MiB.
	PageBytes int
	// Memory, when set, bounds the memory that reads of history (pages of
	// changes, catch-ups, snapshots) hold at once, from the store read
	// until the answer is written; give the hub's subscriptions the same
	// one. Nil: no bound.
	Memory *limit.Memory
	// MemoryWait bounds how long a request waits for Memory; past it the
	// client gets 503 unavailable with Retry-After. Default 10s.
	MemoryWait time.Duration
	// WriteTimeout bounds writing an answer of history, so that a client
	// that reads slowly cannot hold its share of Memory for long. Default
	// 30s.
	WriteTimeout time.Duration
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
	// Stream, when set, serves GET /v1/collections/{c}/stream (the stream
	// of newline-delimited JSON, package transport/ndjson).
	Stream http.Handler
	// WebSocket, when set, serves GET /v1/ws (package transport/ws).
	WebSocket http.Handler
	// CallTimeout bounds a call (POST /v1/calls/{name}): its handler's
	// context ends then, and the caller gets 504 timeout. Default 30s.
	CallTimeout time.Duration
	// Policy authenticates every /v1/ request, checks its rights on the
	// collection or call it names and the principal's commit and call
	// rates. Nil: anonymous access with every right. The Events, Stream
	// and WebSocket handlers enforce their own (give them the same one).
	Policy *auth.Policy
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxWait      = 60 * time.Second
	DefaultPageSize     = 1000
	DefaultCallTimeout  = 30 * time.Second
	DefaultPageBytes    = store.DefaultPageBytes
	DefaultMemoryWait   = 10 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// Observer receives one measurement per request.
type Observer interface {
	// ObserveRequest reports a finished request: its route pattern (such as
	// "GET /v1/collections/{c}"), status code and duration.
	ObserveRequest(route string, status int, took time.Duration)
}
