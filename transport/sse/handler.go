package sse

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// Handler serves the event streams of a hub's collections. Make one with
// New; it is safe for concurrent use.
type Handler struct {
	p *push.Handler
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler streaming the collections of hub. A nil opts means
// the defaults; negative durations or limits are refused.
func New(hub *viewsync.Hub, opts *Options) (*Handler, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Retry < 0 {
		return nil, errors.New("sse: negative option")
	}
	if o.Retry == 0 {
		o.Retry = DefaultRetry
	}
	p, err := push.NewHandler(hub, push.Options{
		Name:           "sse",
		Streams:        "event streams",
		ContentType:    "text/event-stream",
		Encoder:        encoder{},
		Preamble:       fmt.Appendf(nil, "retry: %d\n\n", o.Retry.Milliseconds()),
		PingInterval:   o.PingInterval,
		WriteTimeout:   o.WriteTimeout,
		FlushInterval:  o.FlushInterval,
		RetryAfter:     o.Retry,
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

// ServeHTTP serves GET /v1/collections/{c}/events: it checks the
// collection name and the cursor (400 when malformed), admits the stream
// (503 past MaxConnections or once the hub is closed), and then streams
// until the client goes away, a write stalls or the hub closes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.p.ServeHTTP(w, r) }
