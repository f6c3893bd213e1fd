package viewsync

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Hub serves versioned collections from a store. It is safe for concurrent
// use. The store is the caller's: the hub does not close it.
type Hub struct {
	store  store.Store
	log    *slog.Logger
	met    Metrics
	limits Limits
	maxCol int

	// broker fans commits out to live subscribers.
	broker *fanout.Broker
	// vis measures how long commits take to reach clients' screens.
	vis *visibility

	// calls maps call names to handlers; fallback serves the others.
	callsMu  sync.RWMutex
	calls    map[string]CallFunc
	fallback CallFunc

	closed atomic.Bool
	// done is closed by Close; waiters watch it.
	done chan struct{}

	// heads caches each collection's head: name → *headCache. Lock order:
	// evictMu before a headCache's mu; a headCache's mu is never held while
	// taking another's, nor while calling cache (which may evict).
	heads  sync.Map
	nheads atomic.Int64
	// evictMu serialises evictions.
	evictMu sync.Mutex

	// watcher relays commits made by other processes, when the store is
	// shared (a store.Watcher); nil otherwise.
	watcher *watcher
	// holder is the store when it releases the collections not in use
	// (a store.Holder), nil otherwise. Its watcher is silent about a
	// released collection, so the cached heads are read through (see
	// head), and a collection is held while it has subscribers (the
	// broker's topics) or waiters (Collection.Wait).
	holder store.Holder

	// feeds holds the collections fed from a source: name → *Feed. Other
	// writes to them are refused (Collection.Commit, Collection.Drop).
	feeds sync.Map

	// presence holds who is present in each collection (package presence).
	presence *presence.Registry

	// idem remembers the answers of keyed requests (see Once).
	idem *idem.Table

	// sources maps names to the sources Call.Await waits for. sourcesMu
	// guards the map only, and is held while taking no other lock.
	sourcesMu sync.RWMutex
	sources   map[string]*source
}

// headCache is one collection's head as last seen by this hub.
type headCache struct {
	// mu serialises loading, advancing and eviction; readers use state
	// without it.
	mu sync.Mutex
	// evicted is set (under mu) once the cache has been removed from
	// Hub.heads. Its state then never changes again and, if loaded, has its
	// changed channel closed, so that whoever still holds it looks the
	// collection up again instead of waiting on a cache no commit reaches.
	evicted bool
	// state is nil until loaded from the store.
	state atomic.Pointer[headState]
}

// headState is an immutable head plus a channel closed when it is superseded.
type headState struct {
	head    Head
	changed chan struct{}
}

// New returns a hub serving the collections of s. When s is shared by
// several processes (it implements store.Watcher, as the NATS engine
// does), the hub also delivers the commits the others make.
func New(s store.Store, opts ...Option) (*Hub, error) {
	if s == nil {
		return nil, fmt.Errorf("viewsync: nil store")
	}
	o := options{
		logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics:       nopMetrics{},
		maxCollection: 65536,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	pres, err := presence.New(&o.presence)
	if err != nil {
		return nil, fmt.Errorf("viewsync: %w", err)
	}
	fo := o.fanout
	if fo.Logger == nil {
		fo.Logger = o.logger
	}
	h := &Hub{
		store:   s,
		log:     o.logger,
		met:     o.metrics,
		limits:  o.limits.withDefaults(),
		maxCol:  o.maxCollection,
		broker:  fanout.New(s, &fo),
		vis:     newVisibility(),
		calls:   map[string]CallFunc{},
		sources: map[string]*source{},
		done:    make(chan struct{}),
		idem:    idem.New(o.idem),
	}
	h.presence = pres
	if w, ok := s.(store.Watcher); ok {
		h.watcher = h.watch(w)
	}
	if hs, ok := s.(store.Holder); ok {
		h.holder = hs
	}
	return h, nil
}

// Limits returns the write limits in force.
func (h *Hub) Limits() Limits { return h.limits }

// Collection returns the collection with the given name, which must match
// ^[a-z0-9][a-z0-9_.-]{0,63}$. Every valid name exists; one never written is
// empty at version 0.
func (h *Hub) Collection(name string) (*Collection, error) {
	if err := protocol.ValidateCollection(name); err != nil {
		return nil, invalid(err)
	}
	return &Collection{hub: h, name: name}, nil
}

// Close stops the hub's waiting: calls blocked in Wait, and later ones that
// would block, return ErrClosed at once, and every subscription ends, so
// long-polls answer, streams close and a server can shut down. Writes go on
// until the store is closed; Close does not close the store.
func (h *Hub) Close() error {
	if h.closed.CompareAndSwap(false, true) {
		if h.watcher != nil {
			h.watcher.close()
		}
		close(h.done)
		h.broker.Close()
		h.presence.Close()
	}
	return nil
}

// LiveCollections returns how many collections have live subscribers.
func (h *Hub) LiveCollections() int { return h.broker.Topics() }

// cache returns the head cache of a collection, creating it if needed.
func (h *Hub) cache(name string) *headCache {
	if c, ok := h.heads.Load(name); ok {
		return c.(*headCache)
	}
	c, loaded := h.heads.LoadOrStore(name, &headCache{})
	if !loaded && h.nheads.Add(1) > int64(h.maxCol) {
		h.evict(name)
	}
	return c.(*headCache)
}

// evict forgets about half of the cached heads (never keep). A forgotten
// entry's waiters are woken and look the collection up again.
func (h *Hub) evict(keep string) {
	if !h.evictMu.TryLock() {
		return
	}
	defer h.evictMu.Unlock()
	target := int64(h.maxCol / 2)
	h.heads.Range(func(k, v any) bool {
		if h.nheads.Load() <= target {
			return false
		}
		if k.(string) == keep {
			return true
		}
		h.heads.Delete(k)
		h.nheads.Add(-1)
		c := v.(*headCache)
		c.mu.Lock()
		c.evicted = true
		if st := c.state.Load(); st != nil {
			close(st.changed)
		}
		c.mu.Unlock()
		return true
	})
}

// head returns the collection's head, loading it from the store once; from
// a store.Holder, which may have released the collection and missed other
// processes' commits meanwhile, on every call (advancing the cache).
func (h *Hub) head(ctx context.Context, name string) (*headState, error) {
	for {
		c := h.cache(name)
		st := c.state.Load()
		if st != nil && h.holder != nil {
			// Read without c.mu: the store may be opening the
			// collection again, and the watcher's events for other
			// collections must not wait behind c.mu meanwhile.
			hd, err := h.store.Head(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("viewsync: head of %q: %w", name, err)
			}
			c.mu.Lock()
			evicted := c.evicted
			if !evicted {
				h.advanceLocked(ctx, name, c, hd)
			}
			st = c.state.Load()
			c.mu.Unlock()
			if evicted {
				continue
			}
		}
		if st != nil {
			return st, nil
		}
		st, err := c.load(ctx, h.store, name)
		if err != nil {
			return nil, fmt.Errorf("viewsync: head of %q: %w", name, err)
		}
		if st != nil {
			return st, nil
		}
		// The entry was evicted while we loaded it: look it up again.
	}
}

// load reads the head from the store into c, unless c is already loaded.
// It returns nil without error when c has been evicted.
func (c *headCache) load(ctx context.Context, s store.Store, name string) (*headState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evicted {
		return nil, nil
	}
	if st := c.state.Load(); st != nil {
		return st, nil
	}
	hd, err := s.Head(ctx, name)
	if err != nil {
		return nil, err
	}
	st := &headState{head: hd, changed: make(chan struct{})}
	c.state.Store(st)
	return st, nil
}

// publish makes one change of a collection's history take effect in the
// hub: a durable commit (ev.Commit set), or a replaced history (ev.Commit
// nil: a Drop, or the data lost and recreated). It is the hub's one commit
// path: its own commits and drops and those the store's watcher relays
// from other processes all come through it, so that every node keeps the
// same books. In order, it
//
//   - records the commit's time, so that a client that renders it is
//     measured (Rendered) and one behind it counted (Lagging); a new
//     history makes it forget the old one's times and client positions;
//   - advances the cached head, which wakes the long-polls (Wait);
//   - hands the commit to the broker, which wakes the streams — or, for a
//     replaced history, resets them.
//
// A change may come twice (a shared store reports this process's own
// changes too); the books, the head and the broker each ignore what they
// have already seen.
func (h *Hub) publish(ctx context.Context, ev store.Event) {
	if ev.Commit != nil {
		h.vis.committed(ev.Collection, ev.Epoch, ev.Commit.Version, ev.Commit.At, h.maxCol)
		h.advance(ctx, ev.Collection, Head{Epoch: ev.Epoch, Version: ev.Commit.Version})
		h.broker.Publish(ev.Collection, ev.Epoch, *ev.Commit, ev.Prev)
		return
	}
	h.vis.replaced(ev.Collection, ev.Epoch, h.maxCol)
	h.advance(ctx, ev.Collection, Head{Epoch: ev.Epoch, Version: ev.Version})
	h.broker.Reset(ev.Collection)
}

// advance records that the store reached hd (after a commit or drop) and
// wakes the waiters on the head. Heads only move forward within an epoch;
// another epoch means the history was replaced, and the head is read again
// from the store.
func (h *Hub) advance(ctx context.Context, name string, hd Head) {
	for {
		c := h.cache(name)
		c.mu.Lock()
		if c.evicted {
			// Evicted after cache returned it: advance the entry that
			// replaced it.
			c.mu.Unlock()
			continue
		}
		h.advanceLocked(ctx, name, c, hd)
		c.mu.Unlock()
		return
	}
}

// advanceLocked is advance on c, whose mu is held.
func (h *Hub) advanceLocked(ctx context.Context, name string, c *headCache, hd Head) {
	old := c.state.Load()
	if old == nil {
		return // not loaded yet: the next reader loads it from the store
	}
	if old.head.Epoch != hd.Epoch {
		fresh, err := h.store.Head(ctx, name)
		if err != nil {
			h.log.Warn("reload head after epoch change", "collection", name, "err", err)
			c.state.Store(nil)
			close(old.changed)
			return
		}
		hd = fresh
	} else if hd.Version <= old.head.Version {
		return
	}
	c.state.Store(&headState{head: hd, changed: make(chan struct{})})
	close(old.changed)
}
