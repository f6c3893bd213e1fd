package viewsync

import (
	"context"

	"github.com/viewsync/viewsync/store"
)

// watcher relays the events of a store that several processes share
// (store.Watcher) to this hub's one commit path, Hub.publish, as if this
// hub had made them: heads advance, waiters wake, subscribers receive the
// commits and visibility is measured. Commits this process made arrive
// here too; publish ignores what it has already seen. The store calls its
// callback from its own goroutine, which must not block nor call the
// store, so events go through a store.Relay and are applied from the
// watcher's goroutine.
type watcher struct {
	stop   func()
	closed chan struct{}
	done   chan struct{}
}

// watch starts relaying w's events to h.
func (h *Hub) watch(w store.Watcher) *watcher {
	wt := &watcher{closed: make(chan struct{}), done: make(chan struct{})}
	relay := store.NewRelay()
	go func() {
		defer close(wt.done)
		relay.Run(wt.closed, func(batch []store.Event) {
			for _, ev := range batch {
				h.publish(context.Background(), ev)
			}
		})
	}()
	wt.stop = w.Watch(relay.Send)
	return wt
}

// close stops the store's calls and the relay.
func (wt *watcher) close() {
	wt.stop()
	close(wt.closed)
	<-wt.done
}
