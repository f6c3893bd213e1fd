package server

import (
	"log/slog"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/store"
)

// Options configure a Server. The zero value serves with the defaults
// below, anonymous access with every right, on loopback addresses only.
type Options struct {
	// Policy authenticates every request and checks its rights and rates,
	// on every route and transport alike. Nil: anonymous access with every
	// right, which Serve accepts on a loopback address only, unless
	// InsecureAnonymous.
	Policy *auth.Policy
	// InsecureAnonymous lets Serve accept anonymous access (a Policy
	// without Authenticate) on an address that is not loopback: anyone who
	// reaches it may read and write everything.
	InsecureAnonymous bool
	// CORSOrigins are the origins whose pages may use the API and open
	// WebSockets (https://app.example.com, https://*.example.com, or *).
	CORSOrigins []string
	// WebSocketOrigins are further origins that may open WebSockets
	// (besides the server's own and CORSOrigins).
	WebSocketOrigins []string

	// Logger receives what the server does and refuses. Default: discard.
	Logger *slog.Logger
	// Metrics receives the server's measurements. Default: a new
	// registry, served at /metrics.
	Metrics *metrics.Prometheus
	// PrivateMetrics keeps /metrics off the Handler, for a Metrics
	// registry served on a private address instead.
	PrivateMetrics bool
	// Ready, when set, is asked by /readyz besides the server's own state
	// (not ready once shutting down): the store's health, say.
	Ready func() error
	// LagThreshold: a client whose first unrendered commit is older than
	// this counts as lagging (viewsync_clients_lagging). Default 5s.
	LagThreshold time.Duration

	// Limits bound what one commit may hold (the hub's).
	Limits viewsync.Limits
	// HubOptions are further options of the hub New makes.
	HubOptions []viewsync.Option
	// Store configures the store Open opens (retention and clock); New
	// takes a store already open.
	Store store.Config

	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxWait bounds a long-poll's wait. Default and upper bound 60s.
	MaxWait time.Duration
	// PageSize is the alignment and largest size of a page of changes.
	// Default 1000.
	PageSize int
	// PageBytes bounds a page of history in bytes of commits. Default
	// 4 MiB.
	PageBytes int
	// HistoryMemory bounds the memory all reads of history together hold
	// (pages, catch-ups, snapshots, for requests and streams alike).
	// Default 64 MiB; it is at least PageBytes.
	HistoryMemory int64
	// HistoryWait bounds a read's wait for HistoryMemory; past it the
	// client gets 503 unavailable (a stream, an unavailable end). Default
	// 10s.
	HistoryWait time.Duration
	// BufferBytes bounds each live collection's buffer of recent commits;
	// a subscriber further behind gets one catch-up. Default 4 MiB.
	BufferBytes int
	// CallTimeout bounds a call. Default 30s.
	CallTimeout time.Duration
	// CallFallback, when set, serves the calls without a handler (see
	// package callproxy).
	CallFallback viewsync.CallFunc

	// PingInterval is the keep-alive of idle push connections. Default
	// 15s.
	PingInterval time.Duration
	// StallTimeout cuts off a push client whose writes block longer; it
	// also bounds writing an answer of history. Default 30s.
	StallTimeout time.Duration
	// FlushInterval is the longest a commit waits to be written to a
	// collection's push clients, so that commits coming fast go out
	// together. Default 50ms; negative: every commit at once.
	FlushInterval time.Duration
	// MaxSSEConnections, MaxStreamConnections and MaxWebSocketConnections
	// bound the concurrent push connections of each transport. Default
	// 10,000 each.
	MaxSSEConnections, MaxStreamConnections, MaxWebSocketConnections int
	// WebSocketMaxMessageBytes bounds a WebSocket client's message.
	// Default 1 MiB.
	WebSocketMaxMessageBytes int64
	// WebSocketMaxSubscriptions bounds the subscriptions of one WebSocket
	// connection. Default 100.
	WebSocketMaxSubscriptions int
	// Idempotency bounds the answers of keyed writes and calls the hub
	// remembers in memory (TTL, count, bytes) and the keys clients may
	// send; zero fields mean the defaults. Give Store.KeyTTL the same TTL.
	Idempotency viewsync.IdempotencyOptions
	// Presence configures who-is-here (package presence): the TTL of a
	// connection's presence without a heartbeat, the size of a state,
	// the members listed before subscribers see only their count. Zero
	// fields mean presence's defaults.
	Presence presence.Options

	// The connection layer, applied by Serve.

	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body; a slower client gets
	// 408. Default 10s.
	BodyTimeout time.Duration
	// IdleTimeout closes a kept-alive connection idle this long. Default
	// 60s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers; larger get 431. Default
	// 64 KiB.
	MaxHeaderBytes int
	// MaxConns bounds the TCP connections open at once, idle ones
	// included. Default 10,000; negative: no limit.
	MaxConns int
	// MaxConnsPerAddr bounds the connections of one client address; past
	// it 429. Default 512; negative: no limit.
	MaxConnsPerAddr int
	// HealthConns are connections accepted beyond those limits that may
	// only ask for /healthz or /readyz. Default 8; negative: none.
	HealthConns int
	// DrainDelay is how long /readyz reports unavailable before Serve
	// stops accepting connections, so that load balancers move away
	// first. Default 0.
	DrainDelay time.Duration
	// ShutdownTimeout bounds the wait for requests in flight when Serve
	// stops; the rest are closed. Default 30s.
	ShutdownTimeout time.Duration
}

// Defaults of Options that no package below sets.
const (
	DefaultHistoryMemory     = 64 << 20
	DefaultFlushInterval     = 50 * time.Millisecond
	DefaultPingInterval      = 15 * time.Second
	DefaultStallTimeout      = 30 * time.Second
	DefaultLagThreshold      = 5 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 10_000
	DefaultMaxConnsPerAddr   = 512
	DefaultHealthConns       = 8
	DefaultShutdownTimeout   = 30 * time.Second
)

// withDefaults returns o, nil meaning the zero Options, with its defaults
// filled in. Fields whose defaults the packages below own are left zero.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	or := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	or(&c.FlushInterval, DefaultFlushInterval)
	or(&c.PingInterval, DefaultPingInterval)
	or(&c.StallTimeout, DefaultStallTimeout)
	or(&c.LagThreshold, DefaultLagThreshold)
	or(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	or(&c.IdleTimeout, DefaultIdleTimeout)
	or(&c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.FlushInterval < 0 {
		c.FlushInterval = 0
	}
	if c.HistoryMemory <= 0 {
		c.HistoryMemory = DefaultHistoryMemory
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	c.MaxConns = count(c.MaxConns, DefaultMaxConns)
	c.MaxConnsPerAddr = count(c.MaxConnsPerAddr, DefaultMaxConnsPerAddr)
	c.HealthConns = count(c.HealthConns, DefaultHealthConns)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Policy == nil {
		c.Policy = &auth.Policy{}
	}
	return c
}

// count returns a limit of a count: the default for 0, none (0, as the
// guard counts it) for a negative n.
func count(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return n
}
