package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// benchSub is one subscriber: it connects, reads, and reconnects from its
// cursor when its connection ends, counting what it sees.
//
// It reads the wire itself (sse.go, ws.go) rather than through
// client/vsclient, whose View would distort what is measured: a View
// drops a repeated commit and reconnects at a gap without handing either
// out, where the bench must count them (missing, dups); it decodes every
// commit's ops and keeps the records, where a subscriber here takes only
// the send time from a message, in a reused buffer, so that tens of
// thousands fit beside the server on one machine; and its connections do
// not go through the dialer that spreads them over source addresses.
type benchSub struct {
	// Updated by its goroutine, read by the progress line and the drain.
	last        atomic.Uint64
	deliveries  atomic.Int64
	established atomic.Bool
	catchUps    atomic.Int64
	errs        atomic.Int64

	// Owned by its goroutine; read once it has ended.
	epoch string
	// missing counts commits skipped without a catch-up, dups commits
	// delivered again, compacted the commits catch-ups stood for, resets
	// the resets after the first.
	missing, dups, compacted, resets, reconnects int64
	lat                                          []time.Duration
	lastErr                                      error
	// view is the subscriber's view (see benchCommon.views), -1 for the
	// whole collection. A view's commits skip the versions that did not
	// concern it: a gap is a commit whose "after" is past the cursor, and
	// counts as one missing commit.
	view int
	// coll is the subscriber's own collection (see benchCommon.colls), -1
	// for --collection.
	coll int
}

// collection returns the collection the subscriber follows.
func (s *benchSub) collection(c *benchCommon) string {
	if s.coll < 0 {
		return c.collection
	}
	return spreadCollection(c.collection, s.coll)
}

// where returns the filter of the subscriber's view, "" for none.
func (s *benchSub) where() string {
	if s.view < 0 {
		return ""
	}
	return viewWhere(s.view)
}

// target returns the version the subscriber reaches once it has every
// commit of a writer that stopped at last: for a view, the last commit to
// its owner (lasts[view]); for a collection of its own, that collection's
// last (lasts[coll]).
func (s *benchSub) target(last uint64, lasts []uint64) uint64 {
	k := s.view
	if k < 0 {
		k = s.coll
	}
	switch {
	case k < 0:
		return last
	case k < len(lasts):
		return lasts[k]
	}
	return 0
}

// counters returns the subscriber's counters now.
func (s *benchSub) counters() groupTick {
	tk := groupTick{Deliveries: s.deliveries.Load(), CatchUps: s.catchUps.Load(), Errors: s.errs.Load()}
	if s.established.Load() {
		tk.Connected = 1
	}
	return tk
}

// subEnv is what subscribers share.
type subEnv struct {
	target *benchTarget
	common *benchCommon
	// sem bounds the connections being set up.
	sem chan struct{}
	// ready is called once per subscriber, at its first reset.
	ready func()
	// record says whether to keep latency samples.
	record bool
}

// run keeps the subscriber connected until ctx ends.
func (s *benchSub) run(ctx context.Context, env *subEnv) {
	backoff := 100 * time.Millisecond
	for first := true; ; first = false {
		if !first {
			s.reconnects++
		}
		err := s.connect(ctx, env)
		if ctx.Err() != nil {
			return
		}
		s.errs.Add(1)
		s.lastErr = err
		t := time.NewTimer(backoff/2 + time.Duration(time.Now().UnixNano()%int64(backoff)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// connect makes one connection and reads it until it ends. The setup slot
// is held until the stream is open and, for a first connection, until its
// reset has arrived; the connection must be open within the connect
// timeout.
func (s *benchSub) connect(ctx context.Context, env *subEnv) error {
	select {
	case env.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	held := true
	release := func() {
		if held {
			held = false
			<-env.sem
		}
	}
	defer release()
	var cur *protocol.Cursor
	if s.established.Load() {
		cur = &protocol.Cursor{Epoch: s.epoch, Version: s.last.Load()}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(env.common.connectTimeout, cancel)
	st, err := env.target.dialer.open(cctx, env.common.transport, env.target.base, s.collection(env.common), s.where(), cur)
	if err != nil {
		if !timer.Stop() {
			return fmt.Errorf("not connected within %v", env.common.connectTimeout)
		}
		return err
	}
	defer st.close()
	if cur != nil {
		// A resumed stream may stay silent until the next commit.
		timer.Stop()
		release()
	}
	for {
		ev, err := st.next()
		if err != nil {
			if !timer.Stop() && !s.established.Load() {
				return fmt.Errorf("no reset within %v", env.common.connectTimeout)
			}
			return err
		}
		now := time.Now()
		switch ev.kind {
		case evReset:
			timer.Stop()
			s.epoch = ev.epoch
			s.last.Store(ev.version)
			if s.established.CompareAndSwap(false, true) {
				release()
				env.ready()
			} else {
				s.resets++
			}
		case evCatchUp:
			s.epoch = ev.epoch
			if last := s.last.Load(); ev.version > last {
				s.compacted += int64(ev.version - last)
				s.last.Store(ev.version)
			}
			s.catchUps.Add(1)
		case evProgress:
			if ev.version > s.last.Load() {
				s.last.Store(ev.version)
			}
		case evCommit:
			switch last := s.last.Load(); {
			case ev.version <= last:
				s.dups++
				continue
			case s.view >= 0:
				if ev.after > last {
					s.missing++
				}
			case ev.version != last+1:
				s.missing += int64(ev.version - last - 1)
			}
			s.last.Store(ev.version)
			s.deliveries.Add(1)
			if env.record && ev.sentNS > 0 {
				s.lat = append(s.lat, now.Sub(time.Unix(0, ev.sentNS)))
			}
		}
	}
}

// drainSubs waits until every connected subscriber has reached its
// target (version last, or for a view its owner's last version in lasts),
// or for at most d.
func drainSubs(ctx context.Context, subs []*benchSub, last uint64, lasts []uint64, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := 0
		for _, s := range subs {
			if s.established.Load() && s.last.Load() < s.target(last, lasts) {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// subSetup tracks the subscribers connecting.
type subSetup struct {
	n     int
	start time.Time
	ready atomic.Int64
	// all is closed when every subscriber is connected.
	all  chan struct{}
	once sync.Once
}

func (s *subSetup) readyOne() {
	if int(s.ready.Add(1)) == s.n {
		s.once.Do(func() { close(s.all) })
	}
}

// startSubs starts n subscribers. stop ends them and waits for them; it
// may be called more than once.
func startSubs(ctx context.Context, t *benchTarget, c *benchCommon, n int, record bool, stderr io.Writer) ([]*benchSub, func(), *subSetup) {
	setup := &subSetup{n: n, start: time.Now(), all: make(chan struct{})}
	env := &subEnv{target: t, common: c, sem: make(chan struct{}, c.dialParallel), ready: setup.readyOne, record: record}
	sctx, cancel := context.WithCancel(ctx)
	subs := make([]*benchSub, n)
	var wg sync.WaitGroup
	for i := range subs {
		s := &benchSub{view: -1, coll: -1}
		if c.views > 0 {
			s.view = (c.first + i) % c.views
		}
		if c.colls > 0 {
			s.coll = (c.first + i) % c.colls
		}
		subs[i] = s
		wg.Go(func() { s.run(sctx, env) })
	}
	fmt.Fprintf(stderr, "bench: connecting %d %s subscribers to %s (%d at a time)\n", n, c.transport, t.base, c.dialParallel)
	return subs, func() {
		cancel()
		wg.Wait()
	}, setup
}
