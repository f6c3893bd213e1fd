package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/callproxy"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/demo"
	"github.com/viewsync/viewsync/internal/rlimit"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/pgsource"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/server"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/transport/guard"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/ndjson"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

// serveUsage is the help of 'viewsync serve', before its flags.
const serveUsage = `Usage: viewsync serve [flags]

Runs the viewsync server: the HTTP API v1 under /v1/, /healthz, /readyz and
/metrics, on a durable embedded store in --data, or with --engine nats on NATS
JetStream, which several viewsync nodes share. Stops gracefully on SIGINT or
SIGTERM, finishing in-flight commits.

Without --auth-secret or --auth-jwks access is anonymous and only a loopback
--addr is served (see --insecure-anonymous).

Each flag can also be set by the environment variable shown with it
(VIEWSYNC_<NAME>); the command line wins. Sizes are bytes (1048576) or take a
unit: KiB, MiB, GiB (512KiB, 4MiB) or KB, MB, GB. Durations take units too:
300ms, 10s, 5m, 168h.

`

// serveSections are the sections of 'viewsync serve --help': every flag is
// in one (TestServeHelp), the PostgreSQL ones by their prefix.
var serveSections = []cliflag.Section{
	{Title: "Server", Names: []string{"addr", "log-level", "log-format", "shutdown-timeout", "drain-delay"}},
	{Title: "Connections and requests", Names: []string{"max-conns", "health-conns", "read-header-timeout",
		"max-header-bytes", "max-body", "body-timeout", "idle-timeout"}},
	{Title: "Storage", Names: []string{"engine", "data", "retain-commits", "retain-tombstones"}},
	{Title: "Idempotency keys", Names: []string{"idempotency-ttl", "idempotency-max-keys", "idempotency-max-key-bytes"}},
	{Title: "Cluster (--engine nats)", Names: []string{"nats-url", "nats-replicas", "nats-prefix", "nats-timeout",
		"nats-heartbeat", "nats-idle-after", "nats-layout", "nats-max-batch", "nats-max-backlog", "nats-log-cache", "nats-record-cache", "nats-record-index", "nats-creds", "nats-tls-ca", "nats-tls-cert", "nats-tls-key"}, Prefix: "nats-"},
	{Title: "Writes", Names: []string{"max-ops", "max-commit", "max-id", "max-value", "max-value-depth"}},
	{Title: "Views and reads of history", Names: []string{"max-filter-bytes", "max-filter-depth", "max-filter-terms",
		"page-size", "page-bytes", "history-memory", "history-wait", "max-wait"}},
	{Title: "Push (SSE, NDJSON stream, WebSocket)", Names: []string{"buffer-bytes", "flush-interval", "ping-interval",
		"stall-timeout", "max-sse-connections", "max-stream-connections", "max-ws-connections", "ws-max-message",
		"ws-max-subscriptions", "ws-origins", "presence-ttl", "presence-max-state", "presence-max-members", "presence-set-rate"}},
	{Title: "Auth and browsers", Names: []string{"auth-secret", "auth-secret-file", "auth-secret-alg", "auth-jwks",
		"auth-audience", "auth-issuer", "auth-leeway", "auth-cookie", "insecure-anonymous", "cors-origin"}, Prefix: "auth-"},
	{Title: "Limits per client", Names: []string{"max-conns-per-ip", "commit-rate", "commit-burst", "call-rate", "call-burst"}},
	{Title: "Calls", Names: []string{"call-timeout", "call-proxy", "call-proxy-timeout"}},
	{Title: "PostgreSQL source", Names: []string{"pg-url", "pg-table", "pg-slot", "pg-publication"}, Prefix: "pg-"},
	{Title: "Metrics and debugging", Names: []string{"metrics-addr", "metrics-collections", "metrics-collection",
		"lag-threshold", "pprof"}},
	{Title: "Demo", Names: []string{"demo", "demo-seed"}},
}

// serveConfig holds the flags of 'viewsync serve'.
type serveConfig struct {
	addr             string
	data             string
	retainCommits    int
	retainTombstones time.Duration
	idemTTL          time.Duration
	idemMaxKeys      int
	idemMaxKeyBytes  cliflag.Size
	maxBody          cliflag.Size
	maxOps           int
	maxID            cliflag.Size
	maxValue         cliflag.Size
	maxValueDepth    int
	maxFilterBytes   cliflag.Size
	maxFilterDepth   int
	maxFilterTerms   int
	maxCommit        cliflag.Size
	maxWait          time.Duration
	pageSize         int
	pageBytes        cliflag.Size
	historyMemory    cliflag.Size
	historyWait      time.Duration
	readHeaderTO     time.Duration
	bodyTO           time.Duration
	idleTO           time.Duration
	maxHeaderBytes   cliflag.Size
	maxConns         int
	healthConns      int
	shutdownTO       time.Duration
	bufferBytes      cliflag.Size
	pingInterval     time.Duration
	stallTimeout     time.Duration
	flushInterval    time.Duration
	maxSSE           int
	maxStream        int
	maxWS            int
	wsMaxMessage     cliflag.Size
	presenceTTL      time.Duration
	presenceMaxState cliflag.Size
	presenceMembers  int
	presenceSetRate  float64
	wsMaxSubs        int
	wsOrigins        string
	lagThreshold     time.Duration
	metricsColls     int
	metricsNamed     string
	demo             bool
	demoSeed         bool
	pprofAddr        string
	metricsAddr      string
	drainDelay       time.Duration
	logLevel         string
	logFormat        string
	callProxy        string
	callProxyTO      time.Duration
	callTO           time.Duration
	access           accessConfig
	engine           engineConfig
	pg               pgConfig
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	c := &serveConfig{
		maxBody:         httpapi.DefaultMaxBodyBytes,
		idemMaxKeyBytes: idem.DefaultMaxKeyBytes,
		maxID:           viewsync.DefaultMaxIDBytes,
		maxFilterBytes:  filter.DefaultMaxBytes,
		maxValue:        viewsync.DefaultMaxValueBytes,
		maxCommit:       viewsync.DefaultMaxCommitBytes,
		bufferBytes:     fanout.DefaultBufferBytes,
		pageBytes:       store.DefaultPageBytes,
		historyMemory:   server.DefaultHistoryMemory,
		wsMaxMessage:    ws.DefaultMaxMessageBytes,
		maxHeaderBytes:  server.DefaultMaxHeaderBytes,
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port)")
	fs.StringVar(&c.data, "data", "./viewsync-data", "directory of the durable store (created if missing; --engine bbolt)")
	fs.IntVar(&c.retainCommits, "retain-commits", store.DefaultRetainCommits, "commits each collection's change log keeps at least; older cursors get a compacted catch-up")
	fs.DurationVar(&c.retainTombstones, "retain-tombstones", store.DefaultRetainTombstones, "how long deletions are remembered for catch-ups; older cursors get a full reset")
	fs.DurationVar(&c.idemTTL, "idempotency-ttl", store.DefaultKeyTTL, "how long an Idempotency-Key is remembered after its write or call; a retry after it applies again")
	fs.IntVar(&c.idemMaxKeys, "idempotency-max-keys", store.DefaultMaxKeys, "idempotency keys kept at most: recorded with their commits in the store (bbolt: the whole file's; NATS: each collection's; each about 200 B on disk beside its answer), and their answers in memory (64 MiB at most); past it the oldest are forgotten before their TTL")
	fs.Var(&c.idemMaxKeyBytes, "idempotency-max-key-bytes", "the longest Idempotency-Key accepted, in bytes of printable ASCII; a longer one gets 400 bad_idempotency_key")
	fs.Var(&c.maxBody, "max-body", "largest request body; a larger declared Content-Length gets 413 at once")
	fs.IntVar(&c.maxOps, "max-ops", viewsync.DefaultMaxOpsPerCommit, "most ops in one commit")
	fs.Var(&c.maxID, "max-id", "longest record id (at most 256 bytes)")
	fs.Var(&c.maxValue, "max-value", "largest record value, in bytes of compact JSON")
	fs.Var(&c.maxFilterBytes, "max-filter-bytes", "largest filter of a view (where=, a subscription's where), in bytes of JSON")
	fs.IntVar(&c.maxFilterDepth, "max-filter-depth", filter.DefaultMaxDepth, "deepest nesting of a view's filter ($and/$or, operators)")
	fs.IntVar(&c.maxFilterTerms, "max-filter-terms", filter.DefaultMaxTerms, "most conditions in a view's filter (each $in value counts)")
	fs.IntVar(&c.maxValueDepth, "max-value-depth", viewsync.DefaultMaxValueDepth, "deepest nesting of arrays and objects in a record value, a merge patch or a call's argument (at most 512); the default keeps every answer within what common JSON libraries decode")
	fs.Var(&c.maxCommit, "max-commit", "largest commit: its ops' ids and values together; also what a page of history may hold beyond --page-bytes, when one commit is larger")
	fs.DurationVar(&c.maxWait, "max-wait", httpapi.DefaultMaxWait, "longest long-poll wait a client may ask for (at most 60s)")
	fs.IntVar(&c.pageSize, "page-size", httpapi.DefaultPageSize, "commits per page of changes; pages are cut at multiples of it so caches share them")
	fs.Var(&c.pageBytes, "page-bytes", "largest page of history (changes, and a resuming stream's pages) in bytes of commits; a page of large commits ends earlier, at a boundary clients share; a single larger commit comes alone")
	fs.Var(&c.historyMemory, "history-memory", "memory all reads of history together may hold (pages, catch-ups, snapshots, from the store read until the answer is written); more readers wait their turn")
	fs.DurationVar(&c.historyWait, "history-wait", httpapi.DefaultMemoryWait, "longest a read of history waits for --history-memory; past it the client gets 503 unavailable (a stream: an unavailable end) and retries")
	fs.DurationVar(&c.readHeaderTO, "read-header-timeout", server.DefaultReadHeaderTimeout, "time allowed to read a request's headers")
	fs.DurationVar(&c.bodyTO, "body-timeout", guard.DefaultBodyTimeout, "time allowed to read a request's body; a client sending it slower gets 408 and its connection is closed")
	fs.DurationVar(&c.idleTO, "idle-timeout", server.DefaultIdleTimeout, "a kept-alive connection waiting this long for its next request is closed")
	fs.Var(&c.maxHeaderBytes, "max-header-bytes", "largest request headers; larger get 431")
	fs.IntVar(&c.maxConns, "max-conns", 0, "most TCP connections open at once, idle keep-alive ones included; at it the longest idle one is closed to make room, and with none idle new ones get 503; 0: the open-files limit less a reserve for the store and health checks (the figure is logged at start)")
	fs.IntVar(&c.healthConns, "health-conns", server.DefaultHealthConns, "connections accepted beyond --max-conns-per-ip or --max-conns that may only ask for /healthz or /readyz, once (one client address holds at most a quarter of them), so that health checks keep working; 0: none")
	fs.DurationVar(&c.shutdownTO, "shutdown-timeout", server.DefaultShutdownTimeout, "on SIGINT/SIGTERM, time allowed for in-flight requests to finish")
	fs.DurationVar(&c.drainDelay, "drain-delay", 0, "on SIGINT/SIGTERM, time /readyz reports unavailable before the listener closes, so load balancers stop sending traffic first")
	fs.Var(&c.bufferBytes, "buffer-bytes", "per collection with live subscribers: recent commits kept in memory; a subscriber further behind gets one compacted catch-up instead of its backlog")
	fs.DurationVar(&c.pingInterval, "ping-interval", server.DefaultPingInterval, "keep-alive interval of idle SSE, NDJSON stream and WebSocket connections")
	fs.DurationVar(&c.flushInterval, "flush-interval", server.DefaultFlushInterval, "longest time a commit may wait to be written to a collection's SSE, NDJSON stream and WebSocket clients: write rounds start at least ten times the last round's duration apart, up to this, so that commits coming faster to many clients go out together, one system call for several (less CPU per delivery); few clients wait for nothing; 0 writes every commit at once")
	fs.DurationVar(&c.stallTimeout, "stall-timeout", server.DefaultStallTimeout, "an SSE, NDJSON stream or WebSocket client whose writes block longer than this is cut off (it resumes from its cursor on reconnect)")
	fs.IntVar(&c.maxSSE, "max-sse-connections", sse.DefaultMaxConnections, "most concurrent Server-Sent Events streams")
	fs.IntVar(&c.maxStream, "max-stream-connections", ndjson.DefaultMaxConnections, "most concurrent NDJSON streams (GET /v1/collections/{c}/stream)")
	fs.IntVar(&c.maxWS, "max-ws-connections", ws.DefaultMaxConnections, "most concurrent WebSocket connections")
	fs.Var(&c.wsMaxMessage, "ws-max-message", "largest WebSocket message a client may send")
	fs.IntVar(&c.wsMaxSubs, "ws-max-subscriptions", ws.DefaultMaxSubscriptions, "most subscriptions on one WebSocket connection")
	c.presenceMaxState = presence.DefaultMaxStateBytes
	fs.DurationVar(&c.presenceTTL, "presence-ttl", presence.DefaultTTL, "a client's presence in a collection (who is editing what) leaves this long after its last heartbeat or set, when its connection went without a word; clients heartbeat every third of it")
	fs.Var(&c.presenceMaxState, "presence-max-state", "largest presence state a client may publish (compact JSON); larger get 413")
	fs.IntVar(&c.presenceMembers, "presence-max-members", presence.DefaultMaxMembers, "members of a collection's presence listed to its subscribers; above it they get only the count")
	fs.Float64Var(&c.presenceSetRate, "presence-set-rate", presence.DefaultSetRate, "presence states one connection may set per second on average, in bursts of twice as many; past it a set gets 429 (heartbeats are not sets)")
	fs.StringVar(&c.wsOrigins, "ws-origins", "", "comma-separated origins allowed to open WebSockets besides the server's own and --cors-origin's: an origin with a scheme admits that scheme only (https://app.example.com, https://*.example.com); a host pattern without one admits http and https (app.example.com, *.example.com); * admits any")
	fs.DurationVar(&c.lagThreshold, "lag-threshold", server.DefaultLagThreshold, "a client whose first unrendered commit is older than this counts as lagging (metric viewsync_clients_lagging)")
	fs.BoolVar(&c.demo, "demo", true, "serve the products demo at / (and register its \"discount\" call); --demo=false turns it off")
	fs.BoolVar(&c.demoSeed, "demo-seed", true, "with --demo: on a store whose collection \"products\" was never written, write a few sample products into it at start; --demo-seed=false leaves it empty")
	fs.IntVar(&c.metricsColls, "metrics-collections", metrics.DefaultCollections, "collections with series of their own in /metrics besides --metrics-collection's (the busiest, the most lagging, the first observed); the rest are summed as collection=\"_other\", so that a scrape stays small with any number of collections; 0: none")
	fs.StringVar(&c.metricsNamed, "metrics-collection", "", "comma-separated collections that always have series of their own in /metrics")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve /metrics on this separate address (e.g. 127.0.0.1:9090) instead of the API's, which needs no token: keep it off the public network")
	fs.StringVar(&c.pprofAddr, "pprof", "", "debugging: serve Go's profiler (net/http/pprof) on this separate address, e.g. 127.0.0.1:6060; off when empty")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.callProxy, "call-proxy", "", "URL of a backend that serves the calls without a Go handler: POST /v1/calls/{name} is relayed to it as {\"name\",\"arg\"} (user:password in the URL is sent as Basic auth)")
	fs.DurationVar(&c.callProxyTO, "call-proxy-timeout", callproxy.DefaultTimeout, "time the --call-proxy backend has to answer a call; past it the caller gets 504")
	fs.DurationVar(&c.callTO, "call-timeout", httpapi.DefaultCallTimeout, "time a call may take in all; past it the caller gets 504")
	c.access.register(fs)
	c.engine.register(fs)
	c.pg.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		cliflag.PrintFlags(fs.Output(), fs, serveSections)
	}
	return fs, c
}

func (c *serveConfig) validate() error {
	switch {
	case c.retainCommits <= 0:
		return errors.New("--retain-commits must be positive")
	case c.retainTombstones <= 0:
		return errors.New("--retain-tombstones must be positive")
	case c.idemTTL <= 0 || c.idemMaxKeys <= 0 || c.idemMaxKeyBytes <= 0:
		return errors.New("--idempotency-ttl, --idempotency-max-keys and --idempotency-max-key-bytes must be positive")
	case c.maxBody <= 0:
		return errors.New("--max-body must be positive")
	case c.maxOps <= 0:
		return errors.New("--max-ops must be positive")
	case c.maxID <= 0 || c.maxID > 256:
		return errors.New("--max-id must be 1..256")
	case c.maxFilterBytes <= 0 || c.maxFilterDepth <= 0 || c.maxFilterTerms <= 0:
		return fmt.Errorf("--max-filter-bytes, --max-filter-depth and --max-filter-terms must be positive")
	case c.maxValueDepth <= 0 || c.maxValueDepth > protocol.MaxValueDepth:
		return fmt.Errorf("--max-value-depth must be 1..%d", protocol.MaxValueDepth)
	case c.maxCommit <= 0:
		return errors.New("--max-commit must be positive")
	case c.maxValue <= 0:
		return errors.New("--max-value must be positive")
	case c.maxWait <= 0 || c.maxWait > httpapi.DefaultMaxWait:
		return errors.New("--max-wait must be in (0, 60s]")
	case c.pageSize <= 0:
		return errors.New("--page-size must be positive")
	case c.pageBytes <= 0:
		return errors.New("--page-bytes must be positive")
	case c.historyMemory < c.pageBytes:
		return errors.New("--history-memory must be at least --page-bytes (one page at a time)")
	case c.historyWait <= 0:
		return errors.New("--history-wait must be positive")
	case c.readHeaderTO <= 0:
		return errors.New("--read-header-timeout must be positive")
	case c.bodyTO <= 0:
		return errors.New("--body-timeout must be positive")
	case c.idleTO <= 0:
		return errors.New("--idle-timeout must be positive")
	case c.maxHeaderBytes <= 0:
		return errors.New("--max-header-bytes must be positive")
	case c.maxConns < 0:
		return errors.New("--max-conns must not be negative")
	case c.healthConns < 0:
		return errors.New("--health-conns must not be negative")
	case c.bufferBytes <= 0:
		return errors.New("--buffer-bytes must be positive")
	case c.pingInterval <= 0:
		return errors.New("--ping-interval must be positive")
	case c.flushInterval < 0:
		return errors.New("--flush-interval must not be negative")
	case c.stallTimeout <= 0:
		return errors.New("--stall-timeout must be positive")
	case c.maxSSE <= 0 || c.maxStream <= 0 || c.maxWS <= 0:
		return errors.New("--max-sse-connections, --max-stream-connections and --max-ws-connections must be positive")
	case c.wsMaxMessage <= 0:
		return errors.New("--ws-max-message must be positive")
	case c.wsMaxSubs <= 0:
		return errors.New("--ws-max-subscriptions must be positive")
	case c.presenceTTL <= 0 || c.presenceMaxState <= 0 || c.presenceMembers <= 0:
		return errors.New("--presence-ttl, --presence-max-state and --presence-max-members must be positive")
	case !(c.presenceSetRate > 0) || math.IsInf(c.presenceSetRate, 0):
		return errors.New("--presence-set-rate must be a positive number")
	case c.lagThreshold <= 0:
		return errors.New("--lag-threshold must be positive")
	case c.metricsColls < 0:
		return errors.New("--metrics-collections must not be negative")
	case c.drainDelay < 0:
		return errors.New("--drain-delay must not be negative")
	case c.callProxyTO <= 0:
		return errors.New("--call-proxy-timeout must be positive")
	case c.callTO <= 0:
		return errors.New("--call-timeout must be positive")
	}
	if err := c.engine.validate(); err != nil {
		return err
	}
	if err := c.pg.validate(c.engine.engine); err != nil {
		return err
	}
	return c.access.validate()
}

func (c *serveConfig) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	ho := &slog.HandlerOptions{Level: lvl}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", c.logFormat)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := serveFlags(stderr)
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	var proxy viewsync.CallFunc
	if c.callProxy != "" {
		if proxy, err = callproxy.New(c.callProxy, &callproxy.Options{Timeout: c.callProxyTO}); err != nil {
			return fmt.Errorf("%w: --call-proxy: %w", cliflag.ErrBadFlag, err)
		}
	}

	st, err := c.engine.open(ctx, c.data, store.Config{RetainCommits: c.retainCommits, RetainTombstones: c.retainTombstones,
		KeyTTL: c.idemTTL, MaxKeys: c.idemMaxKeys}, log)
	if err != nil {
		return err
	}
	defer st.Close()

	if c.engine.engine == "nats" {
		// A commit is one atomic batch: a message per op, the log entry
		// (up to two chunks within --max-body) and the head.
		if most := c.engine.maxBatch - 3; c.maxOps > most {
			if cliflag.Given(fs, "max-ops") {
				return fmt.Errorf("%w: --max-ops %d needs --nats-max-batch (and the NATS servers' jetstream batch max_msgs) of at least %d", cliflag.ErrBadFlag, c.maxOps, c.maxOps+3)
			}
			log.Info("commits limited to what one NATS atomic batch holds", "max_ops", most, "nats_max_batch", c.engine.maxBatch)
			c.maxOps = most
		}
	}
	mo := metrics.Options{Collections: c.metricsColls, Named: splitList(c.metricsNamed)}
	if c.metricsColls == 0 {
		mo.Collections = -1 // none beyond the named ones
	}
	met := metrics.NewWithOptions(mo)
	// pgSource is the PostgreSQL source once started; /readyz asks it.
	var pgSource atomic.Pointer[pgsource.Source]
	acc, err := c.access.build(c.addr, func(name string) bool { return cliflag.Given(fs, name) }, met, log)
	if err != nil {
		return err
	}
	// The engine's own store, not its wrapper: the hub finds what else
	// it implements (store.Watcher, store.Positions for --pg-url).
	srv, err := server.New(st.Store, &server.Options{
		Policy:            acc.policy,
		InsecureAnonymous: c.access.insecureAnonymous,
		CORSOrigins:       acc.origins,
		WebSocketOrigins:  splitList(c.wsOrigins),
		Logger:            log,
		Metrics:           met,
		PrivateMetrics:    c.metricsAddr != "",
		Ready: func() error {
			if err := st.ready(); err != nil {
				return err
			}
			if src := pgSource.Load(); src != nil {
				return src.Ready()
			}
			return nil
		},
		LagThreshold: c.lagThreshold,
		Limits: viewsync.Limits{MaxOpsPerCommit: c.maxOps, MaxIDBytes: int(c.maxID), MaxValueBytes: int(c.maxValue),
			MaxValueDepth: c.maxValueDepth, MaxCommitBytes: int(c.maxCommit),
			Filter: filter.Limits{MaxBytes: int(c.maxFilterBytes), MaxDepth: c.maxFilterDepth, MaxTerms: c.maxFilterTerms}},
		MaxBodyBytes:              int64(c.maxBody),
		MaxWait:                   c.maxWait,
		PageSize:                  c.pageSize,
		PageBytes:                 int(c.pageBytes),
		HistoryMemory:             int64(c.historyMemory),
		HistoryWait:               c.historyWait,
		BufferBytes:               int(c.bufferBytes),
		CallTimeout:               c.callTO,
		CallFallback:              proxy,
		PingInterval:              c.pingInterval,
		StallTimeout:              c.stallTimeout,
		FlushInterval:             orNone(c.flushInterval),
		MaxSSEConnections:         c.maxSSE,
		MaxStreamConnections:      c.maxStream,
		MaxWebSocketConnections:   c.maxWS,
		WebSocketMaxMessageBytes:  int64(c.wsMaxMessage),
		WebSocketMaxSubscriptions: c.wsMaxSubs,
		Idempotency:               viewsync.IdempotencyOptions{TTL: c.idemTTL, MaxKeys: c.idemMaxKeys, MaxKeyBytes: int(c.idemMaxKeyBytes)},
		Presence:                  presence.Options{TTL: c.presenceTTL, MaxStateBytes: int(c.presenceMaxState), MaxMembers: c.presenceMembers, SetRate: c.presenceSetRate, Bus: st.presenceBus},
		ReadHeaderTimeout:         c.readHeaderTO,
		BodyTimeout:               c.bodyTO,
		IdleTimeout:               c.idleTO,
		MaxHeaderBytes:            int(c.maxHeaderBytes),
		MaxConns:                  c.connsLimit(log),
		MaxConnsPerAddr:           orNone(acc.maxConnsPerIP),
		HealthConns:               orNone(c.healthConns),
		DrainDelay:                c.drainDelay,
		ShutdownTimeout:           c.shutdownTO,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	met.TrackPresence(srv.Hub().Presence().Stats)
	if ns, ok := st.Store.(natsStore); ok {
		met.TrackOpenCollections(ns.OpenCollections)
		met.TrackLogReads(ns.LogReads)
		met.TrackRecordReads(ns.RecordReads)
		met.TrackRecordScans(ns.RecordsScanned)
	}
	src, err := c.pg.start(ctx, srv.Hub(), met, log)
	if err != nil {
		srv.Close()
		return err
	}
	if src != nil {
		pgSource.Store(src)
		// Stopped before the store closes: its last position confirmed.
		defer src.Close()
	}
	if c.demo {
		if err := demo.Setup(ctx, srv.Hub(), demo.Options{NoSeed: !c.demoSeed, Logger: log, Postgres: c.pg.demoDB}); err != nil {
			srv.Close()
			return fmt.Errorf("demo: %w", err)
		}
		page := demo.Handler()
		for _, p := range demo.Patterns {
			srv.Handle(p, page)
		}
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen: %w", err)
	}
	if c.metricsAddr != "" {
		stopMetrics, err := serveMetrics(c.metricsAddr, met.Handler(), log)
		if err != nil {
			ln.Close()
			srv.Close()
			return err
		}
		defer stopMetrics()
	}
	if c.pprofAddr != "" {
		stopPprof, err := servePprof(c.pprofAddr, log)
		if err != nil {
			ln.Close()
			srv.Close()
			return err
		}
		defer stopPprof()
	}

	log.Info("viewsync serving", "addr", ln.Addr().String(), "store", st.where, "version", versionString(),
		"retain_commits", c.retainCommits, "retain_tombstones", c.retainTombstones.String(), "demo", c.demo)
	if proxy != nil {
		log.Info("calls without a handler go to the call proxy", "url", redactURL(c.callProxy), "timeout", c.callProxyTO.String())
	}
	fmt.Fprintf(stdout, "viewsync listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	if src != nil {
		src.Close()
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// orNone returns a flag's value for server.Options, where 0 means the
// default: a flag's 0 (none, or at once) becomes -1.
func orNone[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// redactURL hides the password of a URL for the logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Connections in all when --max-conns is 0: the open-files limit less a
// reserve of an eighth of it, at least connsReserve, for the store, the
// logs, the other listeners, outgoing connections (NATS, the call proxy),
// the health-only connections and the refused ones being answered; at
// least half the limit. Where the limit is unknown, fallbackMaxConns.
const (
	connsReserve     = 256
	fallbackMaxConns = 10_000
)

// maxConnsFor returns the connections allowed in all under an open-files
// limit of openFiles (0: unknown).
func maxConnsFor(openFiles uint64) int {
	if openFiles == 0 {
		return fallbackMaxConns
	}
	n := int(min(openFiles, 1<<40))
	return max(n-max(connsReserve, n/8), n/2)
}

// connsLimit returns --max-conns, or when it is 0 the figure derived from
// the open-files limit, raised to its hard limit first.
func (c *serveConfig) connsLimit(log *slog.Logger) int {
	soft, hard, err := rlimit.RaiseOpenFiles()
	if err != nil {
		log.Info("open-files limit not raised", "err", err, "open_files_limit", soft, "hard_limit", hard)
	}
	if c.maxConns == 0 {
		n := maxConnsFor(soft)
		log.Info("connections limited by the open-files limit", "max_conns", n, "open_files_limit", soft)
		return n
	}
	if soft > 0 && uint64(c.maxConns) > soft {
		log.Warn("--max-conns is over the open-files limit: past that, new connections fail at accept", "max_conns", c.maxConns, "open_files_limit", soft)
	}
	return c.maxConns
}
