package viewsync

import (
	"context"
	"sync"

	"github.com/viewsync/viewsync/store"
)

// watcher relays the events of a store that several processes share
// (store.Watcher) to this hub's one commit path, Hub.publish, as if this
// hub had made them: heads advance, waiters wake, subscribers receive the
// commits and visibility is measured. Commits this process made arrive
// here too; publish ignores what it has already seen. The store calls
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
			wt.h.publish(context.Background(), ev)
			batch[i] = store.Event{}
		}
	}
}

// close stops the store's calls and the relay.
func (wt *watcher) close() {
	wt.stop()
	close(wt.closed)
	<-wt.done
}
