package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/viewsync/viewsync/filter"
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
	// ViewLinger is how long a filtered view (and its collection's
	// buffer) is kept after its last subscription ends, so that a client
	// coming back — the next long-poll, a reconnect — resumes from the
	// view's buffer instead of reading the store. Default 30s; negative:
	// not kept.
	ViewLinger time.Duration
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
	DefaultViewLinger  = 30 * time.Second
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
	if o.ViewLinger == 0 {
		o.ViewLinger = DefaultViewLinger
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
// blocks on subscribers. prev holds the value each op's record had before
// it (store.Applied.Prev), nil when unknown: filtered views need it, and
// restart (their subscribers reading the store) after a commit without it.
func (b *Broker) Publish(collection, epoch string, c protocol.Commit, prev []json.RawMessage) {
	b.mu.Lock()
	t := b.topics[collection]
	b.mu.Unlock()
	if t == nil {
		return // nobody listens; a later subscriber reads the store
	}
	f, err := NewFrameWithPrev(collection, epoch, c, prev)
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
	return b.SubscribeView(collection, nil, cursor)
}

// SubscribeView starts a subscription to the filtered view of collection
// by where (the whole collection when nil). Its events hold only what
// concerns the view: commits restricted to the ops on its records (a
// record leaving it arrives as a delete, one entering it as a put of its
// whole value) with Commit.After set, commits that concern it not at all
// skipped; catch-ups and resets of its records alone. Subscriptions with
// equal filters (filter.Key) share one view: its commits are restricted
// once and encoded once per wire format. The caller must Close it.
func (b *Broker) SubscribeView(collection string, where *filter.Filter, cursor *protocol.Cursor) (*Subscription, error) {
	if err := protocol.ValidateCollection(collection); err != nil {
		return nil, err
	}
	s, err := b.subscribe(collection, where, cursor)
	if err != nil || where == nil {
		return s, err
	}
	// A view's history starts where its topic's does: read the head now,
	// so that it covers every commit published from here on.
	ctx, cancel := b.storeCtx()
	defer cancel()
	s.t.mu.Lock()
	err = s.t.initLocked(ctx)
	s.t.mu.Unlock()
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// subscribe makes a subscription, its topic and view.
func (b *Broker) subscribe(collection string, where *filter.Filter, cursor *protocol.Cursor) (*Subscription, error) {
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
	if where != nil {
		t.mu.Lock()
		v := t.viewLocked(where)
		if v.refs++; v.linger != nil {
			// Lingering: the linger's reference to the topic is released
			// here, or by the timer if it has fired meanwhile.
			if v.linger.Stop() {
				t.refs--
			}
			v.linger = nil
		}
		s.v = v
		t.mu.Unlock()
	}
	if cursor == nil {
		s.needReset = true
	} else {
		s.cur = *cursor
	}
	return s, nil
}

// release drops a subscription's reference to its topic and view.
func (b *Broker) release(t *topic, v *view) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v != nil {
		t.mu.Lock()
		if v.refs--; v.refs == 0 {
			if b.opts.ViewLinger > 0 && !b.closed {
				// The view keeps the subscription's reference to the
				// topic while it lingers.
				v.linger = time.AfterFunc(b.opts.ViewLinger, func() { b.endLinger(t, v) })
				t.mu.Unlock()
				return
			}
			t.dropViewLocked(v)
		}
		t.mu.Unlock()
	}
	b.releaseLocked(t)
}

// endLinger ends a view's linger: the view goes unless subscribed again,
// and its reference to the topic is released.
func (b *Broker) endLinger(t *topic, v *view) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	t.mu.Lock()
	if v.refs == 0 {
		t.dropViewLocked(v)
	}
	t.mu.Unlock()
	b.releaseLocked(t)
}

// releaseLocked drops a reference to t, stopping it with the last one.
// b.mu must be held.
func (b *Broker) releaseLocked(t *topic) {
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
