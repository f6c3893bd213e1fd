package ws

import (
	"github.com/viewsync/viewsync/auth"
	"log/slog"
	"time"
)

// Options configures a Handler. The zero value of each field means its
// default; negative values are refused by New.
type Options struct {
	// PingInterval is how often an idle-or-not connection is pinged.
	// Default 20s.
	PingInterval time.Duration

	// WriteTimeout bounds each write of a message and each ping's wait for
	// its pong. A client that takes longer is stalled: its connection is
	// cut (no close frame can reach a client that does not read) and it
	// resumes from its cursors when it reconnects. Default 30s.
	WriteTimeout time.Duration

	// FlushInterval bounds how long a commit may wait to be written to
	// the live clients of a collection, so that commits coming fast to
	// many clients go out together (see docs/architecture.md). Default 0:
	// every commit is written at once.
	FlushInterval time.Duration

	// MaxMessageBytes bounds one client message. A larger one closes the
	// connection with status 1009 (message too big). Default 1 MiB.
	MaxMessageBytes int64

	// MaxSubscriptions bounds the subscriptions of one connection. A
	// subscribe past it is answered with an error of code rate_limited
	// (a quota, not malformed input) and the connection stays.
	// Default 100.
	MaxSubscriptions int

	// MaxConnections bounds the open WebSocket connections of the
	// handler; past it an upgrade is refused with 503 unavailable.
	// Default 10000.
	MaxConnections int

	// MaxBadMessages is how many bad messages (malformed JSON, unknown
	// type, missing or invalid fields, binary frames) a connection may
	// send; each is answered with a bad_request error. One more closes
	// the connection with status 1008 (policy violation). Default 10.
	MaxBadMessages int

	// OriginPatterns lists the origins, besides the request's own host,
	// whose pages may connect, as cors.ParseOriginPatterns takes them and
	// matched as the CORS middleware matches its origins: an origin with
	// a scheme admits that scheme, host and port only
	// ("https://app.example.com", "https://*.example.com" for any
	// subdomain); a host pattern without a scheme admits the host over
	// http and https ("app.example.com", "*.example.com"); "*" admits
	// every origin. Hosts compare case-insensitively. Others are refused
	// with 403 forbidden before the upgrade; New refuses a malformed
	// pattern. Empty means same-origin only. Requests without an Origin
	// (not from a browser) are not checked.
	// Security: every origin listed can act with the credentials (cookies)
	// of the users who visit it.
	OriginPatterns []string
	// Policy authenticates the upgrade request (401 before the upgrade)
	// and then admits every message: subscribe needs the read right on
	// the collection, commit the write right and the principal's commit
	// rate, call the call right and the call rate. The connection is
	// closed with status 4401 ("token expired") when the principal's token
	// expires. Nil: anonymous access with every right.
	Policy *auth.Policy

	// Logger receives connection failures: stalled clients, abusive ones,
	// internal errors. Default: discard.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultPingInterval     = 20 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultMaxMessageBytes  = 1 << 20
	DefaultMaxSubscriptions = 100
	DefaultMaxConnections   = 10000
	DefaultMaxBadMessages   = 10
)

// maxConcurrentCalls bounds the calls one connection runs at once; the
// connection reads no further message while a call waits for a slot.
const maxConcurrentCalls = 16
