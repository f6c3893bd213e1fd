package ndjson

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// ContentType is the streams' Content-Type.
const ContentType = "application/x-ndjson"

// Options configures a Handler. A nil *Options, or its zero value, means
// the defaults; negative values are refused by New.
type Options struct {
	// PingInterval is how long a stream may stay silent before the
	// handler writes a {"type":"ping"} line, so that proxies keep it open
	// and dead clients are found. Default 15s.
	PingInterval time.Duration
	// WriteTimeout bounds each write to a client: a client that cannot
	// take a batch of lines within it is stalled, and cut off (it resumes
	// from its cursor when it reconnects). Default 30s.
	WriteTimeout time.Duration
	// FlushInterval bounds how long a commit may wait to be written to
	// the live clients of a collection, so that commits coming fast to
	// many clients go out together (see docs/architecture.md). Default 0:
	// every commit is written at once.
	FlushInterval time.Duration
	// MaxConnections bounds the streams served at once; past it requests
	// get 503 unavailable. Default 10000.
	MaxConnections int
	// Logger receives the reasons streams end (Debug; Info for a client
	// cut off for stalling) and unexpected failures. Default: discard.
	Logger *slog.Logger
	// Policy admits each stream: the caller must hold the read right on
	// the collection. A stream ends, with an error line (code
	// unauthorized), when the principal's token expires. Nil: anonymous
	// access with every right.
	Policy *auth.Policy
}

// Defaults of Options.
const (
	DefaultPingInterval   = push.DefaultPingInterval
	DefaultWriteTimeout   = push.DefaultWriteTimeout
	DefaultMaxConnections = push.DefaultMaxConnections
)

// Handler serves the streams of a hub's collections. Make one with New;
// it is safe for concurrent use.
type Handler struct {
	p *push.Handler
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler streaming the collections of hub. A nil opts means
// the defaults.
func New(hub *viewsync.Hub, opts *Options) (*Handler, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	p, err := push.NewHandler(hub, push.Options{
		Name:           "ndjson",
		Streams:        "streams",
		ContentType:    ContentType,
		Encoder:        encoder{},
		PingInterval:   o.PingInterval,
		WriteTimeout:   o.WriteTimeout,
		FlushInterval:  o.FlushInterval,
		MaxConnections: o.MaxConnections,
		Logger:         o.Logger,
		Policy:         o.Policy,
	})
	if err != nil {
		return nil, err
	}
	return &Handler{p: p}, nil
}

// Connections returns how many streams the handler is serving.
func (h *Handler) Connections() int { return h.p.Connections() }

// ServeHTTP serves GET /v1/collections/{c}/stream; mount it with a pattern
// naming the collection {c}.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.p.ServeHTTP(w, r) }

// encoder writes each message as one line: the WebSocket server message,
// then a line feed.
type encoder struct{}

var _ push.StreamEncoder = encoder{}

var newline = []byte("\n")

// Commit implements push.Encoder.
func (encoder) Commit(dst []byte, f *fanout.Frame) (out, body, tail []byte) {
	out, body = push.AppendCommitMessage(dst, f, "")
	return out, body, newline
}

// CatchUp implements push.Encoder.
func (encoder) CatchUp(cu *protocol.CatchUp) ([][]byte, error) {
	b, err := protocol.EncodeCatchUp(cu, "")
	return [][]byte{b, newline}, err
}

// Reset implements push.Encoder.
func (encoder) Reset(s *protocol.Snapshot) ([][]byte, error) {
	b, err := protocol.EncodeReset(s, "")
	return [][]byte{b, newline}, err
}

var (
	pingLine    = []byte(`{"type":"ping"}` + "\n")
	expiredLine = errorLine(push.EndExpired)
	busyLine    = errorLine(push.EndBusy)
	closingLine = errorLine(push.EndClosing)
)

// errorLine returns the error message of r, as a WebSocket's error
// message without an id, and a line feed.
func errorLine(r push.EndReason) []byte {
	b, _ := json.Marshal(struct {
		Type    string        `json:"type"`
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
	}{protocol.TypeError, r.Code(), r.Message()})
	return append(b, '\n')
}

// Progress implements push.Encoder: a line like the WebSocket message.
func (encoder) Progress(collection, epoch string, version uint64) []byte {
	return append(push.AppendProgress(nil, collection, "", epoch, version), '\n')
}

// Ping implements push.StreamEncoder.
func (encoder) Ping() []byte { return pingLine }

// End implements push.StreamEncoder: an error line, whatever the reason.
func (encoder) End(r push.EndReason) []byte {
	switch r {
	case push.EndExpired:
		return expiredLine
	case push.EndBusy:
		return busyLine
	}
	return closingLine
}

// Presence implements push.StreamEncoder: the presence message as a line.
func (encoder) Presence(msg []byte) [][]byte { return [][]byte{msg, newline} }
