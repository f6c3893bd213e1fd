package sse

import (
	"log/slog"
	"time"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// Options configures a Handler. A nil *Options, or its zero value, means the
// defaults.
type Options struct {
	// PingInterval is how long a stream may stay silent before the handler
	// writes a ": ping" comment, so that proxies keep it open and dead
	// clients are found. Default 15s.
	PingInterval time.Duration
	// WriteTimeout bounds each write to a client: a batch of events or a
	// ping that cannot be handed to the connection within it cuts the
	// client off (it resumes with Last-Event-ID when it reconnects). It is
	// what keeps a stalled client from holding its handler forever.
	// Default 30s.
	WriteTimeout time.Duration
	// FlushInterval bounds how long a commit may wait to be written to
	// the live clients of a collection, so that commits coming fast to
	// many clients go out together (see docs/architecture.md). Default 0:
	// every commit is written at once.
	FlushInterval time.Duration
	// Retry is the reconnection delay hinted to clients in the stream's
	// first line (retry: milliseconds). Default 2s.
	Retry time.Duration
	// Logger receives the reasons streams end (Debug; Info for a client cut
	// off for stalling) and unexpected failures (Warn). Default: discard.
	Logger *slog.Logger
	// MaxConnections bounds the streams served at once; past it requests
	// get 503 unavailable. Default 10000.
	MaxConnections int
	// Policy admits each stream: the caller must hold the read right on
	// the collection. A stream ends, with an "error" event (code
	// unauthorized), when the principal's token expires. Nil: anonymous
	// access with every right.
	Policy *auth.Policy
}

// Defaults of Options.
const (
	DefaultPingInterval   = push.DefaultPingInterval
	DefaultWriteTimeout   = push.DefaultWriteTimeout
	DefaultRetry          = push.DefaultRetryAfter
	DefaultMaxConnections = push.DefaultMaxConnections
)
