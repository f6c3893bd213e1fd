package natskv

import (
	"sync"
	"sync/atomic"

	"github.com/viewsync/viewsync/store"
)

// watchHub queues the events of every open collection, in the order the
// followers applied them, and delivers them to the watchers from one
// goroutine, so a slow watcher never blocks a follower.
type watchHub struct {
	events *store.Relay

	mu       sync.Mutex
	watchers map[uint64]*watcher
	next     uint64
	// count is len(watchers), read without mu by followers to skip making
	// events nobody watches.
	count atomic.Int32
}

// watcher is one Watch call's callback.
type watcher struct {
	mu      sync.Mutex // held while fn runs
	fn      func(store.Event)
	stopped bool
}

func newWatchHub() *watchHub {
	return &watchHub{events: store.NewRelay(), watchers: make(map[uint64]*watcher)}
}

// active reports whether anybody watches.
func (h *watchHub) active() bool { return h.count.Load() > 0 }

// publish queues ev for delivery.
func (h *watchHub) publish(ev store.Event) { h.events.Send(ev) }

// add registers fn and returns the function that removes it.
func (h *watchHub) add(fn func(store.Event)) func() {
	w := &watcher{fn: fn}
	h.mu.Lock()
	id := h.next
	h.next++
	h.watchers[id] = w
	h.count.Store(int32(len(h.watchers)))
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.watchers, id)
			h.count.Store(int32(len(h.watchers)))
			h.mu.Unlock()
			// Wait for a call under way, then make sure none follows.
			w.mu.Lock()
			w.stopped = true
			w.mu.Unlock()
		})
	}
}

// run delivers queued events until done is closed.
func (h *watchHub) run(done <-chan struct{}) { h.events.Run(done, h.deliver) }

// deliver calls the watchers with evs.
func (h *watchHub) deliver(evs []store.Event) {
	h.mu.Lock()
	ws := make([]*watcher, 0, len(h.watchers))
	for _, w := range h.watchers {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	for _, ev := range evs {
		for _, w := range ws {
			w.mu.Lock()
			if !w.stopped {
				w.fn(ev)
			}
			w.mu.Unlock()
		}
	}
}
