package natskv

import (
	"context"
	"sync"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// A collection open on this process costs a consumer on a server (some
// 200 KiB of its memory), a heartbeat message every Options.Heartbeat and
// the collection's whole state in this process's memory. One that nobody
// here has read, written or held (Hold) for Options.IdleAfter is released:
// its follower stops, its consumer is deleted and it leaves Store.colls,
// so that the next use opens it afresh. Each use is counted (coll.users,
// taken under s.mu by Store.coll and given back by coll.unuse) and the
// sweep removes only a collection counted by nobody, under s.mu too: a
// call never meets a collection released under it.

// Hold implements store.Holder: it keeps the collection open, opening it
// now if it is not (without waiting for it to load), so that Watch
// reports its commits until release is called. release may be called more
// than once; holds of one collection add up. An invalid name is not held.
func (s *Store) Hold(collection string) (release func()) {
	if protocol.ValidateCollection(collection) != nil {
		return func() {}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return func() {}
	}
	s.holds[collection]++
	if s.colls[collection] == nil {
		s.openLocked(collection)
	}
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if n := s.holds[collection] - 1; n > 0 {
				s.holds[collection] = n
			} else {
				delete(s.holds, collection)
			}
			if c := s.colls[collection]; c != nil {
				// Idle from now on.
				c.lastUse.Store(s.now())
			}
		})
	}
}

// OpenCollections returns how many collections the store has open: those
// read, written or held lately (see Options.IdleAfter), each with a
// consumer on a server.
func (s *Store) OpenCollections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.colls)
}

// unuse ends a use of the collection begun by Store.coll.
func (c *coll) unuse() {
	// lastUse before the count: a sweep that sees no user sees the time.
	c.lastUse.Store(c.s.now())
	c.users.Add(-1)
}

// sweepInterval is how often the store looks for idle collections.
func (s *Store) sweepInterval() time.Duration {
	return min(max(s.idle/2, 10*time.Millisecond), 30*time.Second)
}

// sweep releases idle collections, every sweepInterval, until the store
// closes.
func (s *Store) sweep() {
	t := time.NewTicker(s.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.releaseIdle()
	}
}

// releaseIdle releases the collections idle for s.idle, and opens again
// the held ones that are not open (their opening failed).
func (s *Store) releaseIdle() {
	now := s.now()
	var idle []*coll
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for name, c := range s.colls {
		if s.holds[name] > 0 || c.users.Load() > 0 || now-c.lastUse.Load() < int64(s.idle) || !c.releasable() {
			continue
		}
		delete(s.colls, name)
		delete(s.streams, c.names.stream)
		idle = append(idle, c)
	}
	for name := range s.holds {
		if s.colls[name] == nil {
			s.openLocked(name)
		}
	}
	s.mu.Unlock()
	// A few at a time: each deletes its consumer with a request.
	sem := make(chan struct{}, releaseParallel)
	var wg sync.WaitGroup
	for _, c := range idle {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.release()
		})
	}
	wg.Wait()
}

// releaseParallel bounds the collections a sweep releases at once.
const releaseParallel = 16

// releasable reports whether nothing is under way in the collection: it
// has loaded (or failed to), and no commit is queued, being committed or
// awaited. It does not wait for a lock: a collection whose lock is taken
// is busy. s.mu is held.
func (c *coll) releasable() bool {
	select {
	case <-c.ready:
	default:
		return false
	}
	if !c.wmu.TryLock() {
		return false
	}
	defer c.wmu.Unlock()
	if !c.qmu.TryLock() {
		return false
	}
	queued := len(c.queue)
	c.qmu.Unlock()
	if queued > 0 || !c.mu.TryRLock() {
		return false
	}
	defer c.mu.RUnlock()
	return len(c.awaited) == 0
}

// release closes a collection the store no longer has open: its follower
// stops, its goroutines end, and its consumer is deleted from the server.
func (c *coll) release() {
	consumer := c.stop()
	c.cancel()
	c.deleteConsumer(consumer)
	c.s.log.Debug("natskv: released idle collection", "collection", c.name, "idle_after", c.s.idle)
}

// deleteConsumer deletes the consumer of a stopped follower from the
// server, rather than leave it to expire (Options.Timeout after the
// follower's last pull request expires). Nothing is done once the store
// closes.
func (c *coll) deleteConsumer(name string) {
	if err := c.s.deleteConsumer(c.names.stream, name); err != nil {
		c.s.log.Debug("natskv: delete a consumer no longer followed", "collection", c.name, "consumer", name, "err", err)
	}
}

// deleteConsumer deletes the consumer name of stream from the server,
// within an attempt's time; one already gone is no error. Nothing is done
// for no name, or once the store closes.
func (s *Store) deleteConsumer(stream, name string) error {
	if name == "" || s.ctx.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.attempt)
	defer cancel()
	if err := s.js.DeleteConsumer(ctx, stream, name); err != nil && !isGoneErr(err) {
		return err
	}
	return nil
}
