package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Options configures a Broker. The zero value means the defaults.
type Options struct {
	// BufferBytes bounds each collection's buffer of recent frames, and so
	// how far a live subscriber may fall behind before its backlog is
	// replaced by a catch-up. Default 4 MiB.
	BufferBytes int
	// PageSize is how many commits a subscriber resuming from an old
	// cursor reads from the store at a time. Default 1000.
	PageSize int
	// PageBytes bounds the size of such a page (protocol.CommitSize
	// summed; a single larger commit comes alone). Default 4 MiB.
	PageBytes int
	// Memory, when set, bounds the memory of the history reads of all
	// subscriptions (and of whatever else shares it): each page,
	// catch-up and reset holds its bytes from the store read until the
	// next call to Next. Nil: no bound.
	Memory *limit.Memory
	// MemoryWait bounds how long a subscription waits for Memory before
	// its read fails with ErrBusy. Default 10s.
	MemoryWait time.Duration
	// GapTimeout is how long a commit published out of order waits for its
	// predecessors before they are read from the store. Default 100ms.
	GapTimeout time.Duration
	// Logger receives the broker's warnings. Default: discard.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultBufferBytes = 4 << 20
	DefaultPageSize    = 1000
	DefaultPageBytes   = store.DefaultPageBytes
	DefaultMemoryWait  = 10 * time.Second
	DefaultGapTimeout  = 100 * time.Millisecond
)

// ErrClosed is returned by a subscription that is closed, or whose broker
// is. It matches store.ErrClosed, so transports answer it as "unavailable".
var ErrClosed = fmt.Errorf("fanout: subscription %w", store.ErrClosed)

// ErrBusy is returned by a subscription whose read of history waited
// Options.MemoryWait for the memory budget in vain: too many clients are
// reading history at once. The client should resume from its cursor
// later. It matches limit.ErrBusy.
var ErrBusy = fmt.Errorf("fanout: too many clients reading history at once: %w", limit.ErrBusy)

// ErrIdle is returned by NextIdle when nothing arrived within the idle
// time; the subscription stays usable.
var ErrIdle = errors.New("fanout: idle")

// Broker holds one topic per collection that has subscribers.
type Broker struct {
	store store.Store
	opts  Options
	log   *slog.Logger

	mu     sync.Mutex
	topics map[string]*topic
	closed bool
	done   chan struct{}
}

// New returns a broker reading history from s. A nil opts means defaults.
func New(s store.Store, opts *Options) *Broker {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.BufferBytes <= 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PageBytes <= 0 {
		o.PageBytes = DefaultPageBytes
	}
	if o.MemoryWait <= 0 {
		o.MemoryWait = DefaultMemoryWait
	}
	if o.GapTimeout <= 0 {
		o.GapTimeout = DefaultGapTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Broker{store: s, opts: o, log: o.Logger, topics: map[string]*topic{}, done: make(chan struct{})}
}

// Publish hands a durable commit of collection (in epoch) to its
// subscribers. Commits may be published in any order and more than once;
// each reaches every subscriber once, in version order. Publish never
// blocks on subscribers.
func (b *Broker) Publish(collection, epoch string, c protocol.Commit) {
	b.mu.Lock()
	t := b.topics[collection]
	b.mu.Unlock()
	if t == nil {
		return // nobody listens; a later subscriber reads the store
	}
	f, err := NewFrame(collection, epoch, c)
	if err != nil {
		b.log.Error("encode commit", "collection", collection, "version", c.Version, "err", err)
		return
	}
	t.offer(f)
}

// Reset tells the broker that collection's history was replaced (dropped):
// its subscribers get a reset.
func (b *Broker) Reset(collection string) {
	b.mu.Lock()
	t := b.topics[collection]
	b.mu.Unlock()
	if t != nil {
		t.reinit()
	}
}

// Subscribe starts a subscription to collection. With a cursor it resumes
// after it (the first events are the commits after the cursor, or a
// catch-up or reset when those are gone); with nil it starts with a reset.
// The caller must Close it.
func (b *Broker) Subscribe(collection string, cursor *protocol.Cursor) (*Subscription, error) {
	if err := protocol.ValidateCollection(collection); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	t := b.topics[collection]
	if t == nil {
		t = newTopic(b, collection)
		b.topics[collection] = t
	}
	t.refs++
	s := &Subscription{b: b, t: t, done: make(chan struct{})}
	if cursor == nil {
		s.needReset = true
	} else {
		s.cur = *cursor
	}
	return s, nil
}

// release drops a subscription's reference to its topic.
func (b *Broker) release(t *topic) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t.refs--
	if t.refs == 0 && b.topics[t.name] == t {
		delete(b.topics, t.name)
		t.stop()
	}
}

// Close ends every subscription's wait with ErrClosed.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	close(b.done)
	for name, t := range b.topics {
		t.stop()
		delete(b.topics, name)
	}
}

// Topics returns how many collections have subscribers.
func (b *Broker) Topics() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.topics)
}

// storeCtx bounds the broker's own store reads.
func (b *Broker) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
