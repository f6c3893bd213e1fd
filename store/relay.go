package store

import "sync"

// Relay queues events and hands them, oldest first, to a function called
// from one goroutine (Run's), so that whoever sends them never waits for
// that function: a Watcher's callback, which must return quickly and must
// not call the store, can send to a Relay whose function does either. The
// queue is unbounded. The zero value is not usable; make one with
// NewRelay. It is safe for concurrent use.
type Relay struct {
	mu    sync.Mutex
	queue []Event
	// wake has room for one signal: "the queue may be non-empty".
	wake chan struct{}
}

// NewRelay returns an empty Relay.
func NewRelay() *Relay { return &Relay{wake: make(chan struct{}, 1)} }

// Send queues ev. It never blocks.
func (r *Relay) Send(ev Event) {
	r.mu.Lock()
	r.queue = append(r.queue, ev)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run calls fn with the events sent, a batch at a time, oldest first,
// until done is closed; events still queued then are dropped. fn must not
// keep the batch.
func (r *Relay) Run(done <-chan struct{}, fn func(batch []Event)) {
	var batch []Event
	for {
		select {
		case <-done:
			return
		case <-r.wake:
		}
		for {
			r.mu.Lock()
			batch, r.queue = r.queue, batch[:0]
			r.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			fn(batch)
			clear(batch)
		}
	}
}
