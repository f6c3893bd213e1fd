package viewsync

import (
	"context"
	"sync"

	"github.com/viewsync/viewsync/store"
)

// watcher relays the events of a store that several processes share
// (store.Watcher) to this hub: heads advance, waiters wake and
// subscribers receive commits made by other processes. The store calls
// enqueue from its own goroutine, which must not block nor call the store,
// so events are queued and applied from the watcher's goroutine.
type watcher struct {
	h    *Hub
	stop func()

	mu     sync.Mutex
	queue  []store.Event
	wake   chan struct{}
	closed chan struct{}
	done   chan struct{}
}

// watch starts relaying w's events to h.
func (h *Hub) watch(w store.Watcher) *watcher {
	wt := &watcher{h: h, wake: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	go wt.run()
	wt.stop = w.Watch(wt.enqueue)
	return wt
}

func (wt *watcher) enqueue(ev store.Event) {
	wt.mu.Lock()
	wt.queue = append(wt.queue, ev)
	wt.mu.Unlock()
	select {
	case wt.wake <- struct{}{}:
	default:
	}
}

func (wt *watcher) run() {
	defer close(wt.done)
	var batch []store.Event
	for {
		select {
		case <-wt.wake:
		case <-wt.closed:
			return
		}
		wt.mu.Lock()
		batch, wt.queue = wt.queue, batch[:0]
		wt.mu.Unlock()
		for i, ev := range batch {
			wt.apply(ev)
			batch[i] = store.Event{}
		}
	}
}

// apply hands one event to the hub, as a local commit or drop would.
// Commits this process made arrive here too; the head and the broker
// ignore what they have already seen.
func (wt *watcher) apply(ev store.Event) {
	h := wt.h
	ctx := context.Background()
	if ev.Commit != nil {
		h.advance(ctx, ev.Collection, Head{Epoch: ev.Epoch, Version: ev.Commit.Version})
		h.broker.Publish(ev.Collection, ev.Epoch, *ev.Commit)
		return
	}
	// A replaced history: reset the subscribers unless this hub already
	// moved to that epoch (its own Drop did).
	seen := false
	if st := h.cache(ev.Collection).state.Load(); st != nil && st.head.Epoch == ev.Epoch {
		seen = true
	}
	h.advance(ctx, ev.Collection, Head{Epoch: ev.Epoch, Version: ev.Version})
	if !seen {
		h.broker.Reset(ev.Collection)
	}
}

// close stops the store's calls and the relay.
func (wt *watcher) close() {
	wt.stop()
	close(wt.closed)
	<-wt.done
}
