// Package natsbus is a presence.Bus on core NATS: the registries of the
// viewsync nodes sharing a NATS engine's prefix publish and hear each
// other's presence on plain subjects, which no stream captures (presence
// is not history).
//
// A collection's presence goes on PREFIX.COLLECTION.p (dots in the name
// become '~', as in the engine's subjects); what concerns a node as a
// whole (hello, bye) on PREFIX._node.p, which no collection name can
// take. Each node subscribes to PREFIX.*.p: it hears the presence of
// every collection, and keeps the members of those with any. The user
// viewsync connects as needs to publish and subscribe on these subjects,
// which PREFIX.> already allows.
//
// Messages are delivered at most once: a node that reconnects says hello
// (through the registry's lost callback) and the others publish their
// members again at once.
package natsbus

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// DefaultPrefix is the NATS engine's default prefix.
const DefaultPrefix = "VS"

// nodeToken is the subject token of messages about a node: collection
// names start with [a-z0-9], so none is it.
const nodeToken = "_node"

// Options configures a Bus.
type Options struct {
	// Conn is the NATS connection, the engine's own or another to the
	// same servers. The bus does not close it.
	Conn *nats.Conn
	// Prefix is the engine's prefix (natskv.Options.Prefix): nodes
	// sharing it share presence. Default DefaultPrefix.
	Prefix string
}

// ErrClosed: the bus is closed.
var ErrClosed = errors.New("natsbus: closed")

// Bus is a presence.Bus on NATS. Make one with New; a presence.Registry
// starts and closes it.
type Bus struct {
	nc     *nats.Conn
	prefix string

	// mu guards closed and is held while delivering, so that Close
	// waits for a delivery under way.
	mu     sync.Mutex
	closed bool
	sub    *nats.Subscription
	status chan nats.Status
	done   chan struct{}
}

// New returns a bus on opts.Conn under opts.Prefix.
func New(opts Options) (*Bus, error) {
	if opts.Conn == nil {
		return nil, errors.New("natsbus: no connection")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if err := validPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	return &Bus{nc: opts.Conn, prefix: opts.Prefix, done: make(chan struct{})}, nil
}

// validPrefix checks p as the engine does: 1-32 of [A-Za-z0-9_-].
func validPrefix(p string) error {
	if p == "" || len(p) > 32 {
		return fmt.Errorf("natsbus: prefix %q must be 1-32 characters", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("natsbus: prefix %q must match ^[A-Za-z0-9_-]{1,32}$", p)
		}
	}
	return nil
}

// Subject returns the subject of collection's presence under prefix
// (empty collection: the node messages' subject).
func Subject(prefix, collection string) string {
	if collection == "" {
		return prefix + "." + nodeToken + ".p"
	}
	return prefix + "." + strings.ReplaceAll(collection, ".", "~") + ".p"
}

// Start implements presence.Bus: it subscribes to PREFIX.*.p and waits
// until the servers have the subscription; lost is called after each
// reconnection.
func (b *Bus) Start(deliver func(msg []byte), lost func()) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.sub != nil {
		return errors.New("natsbus: started twice")
	}
	sub, err := b.nc.Subscribe(b.prefix+".*.p", func(m *nats.Msg) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.closed {
			deliver(m.Data)
		}
	})
	if err != nil {
		return fmt.Errorf("natsbus: subscribe: %w", err)
	}
	if err := b.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("natsbus: subscribe: %w", err)
	}
	b.sub = sub
	b.status = b.nc.StatusChanged(nats.CONNECTED)
	go func() {
		defer close(b.done)
		for range b.status {
			b.mu.Lock()
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return
			}
			lost()
		}
	}()
	return nil
}

// Publish implements presence.Bus. It fails at once while the
// connection is down (the engine's connections buffer nothing).
func (b *Bus) Publish(collection string, msg []byte) error {
	if err := b.nc.Publish(Subject(b.prefix, collection), msg); err != nil {
		return fmt.Errorf("natsbus: publish: %w", err)
	}
	return nil
}

// Close implements presence.Bus: it unsubscribes and waits for a
// delivery under way.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	sub, status := b.sub, b.status
	b.mu.Unlock()
	if sub == nil {
		return nil
	}
	err := sub.Unsubscribe()
	b.nc.RemoveStatusListener(status) // closes it
	<-b.done
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("natsbus: unsubscribe: %w", err)
	}
	return nil
}
