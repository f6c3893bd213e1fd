package pgsource

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/store"
)

// Group apply.
//
// The stream's goroutine decodes transactions and queues them; the
// applier's goroutine takes everything queued at once and applies it as
// one group: each collection's commits in order through Feed.CommitAll,
// which the store makes durable together (one fsync for the group, not
// one per transaction), the collections side by side. While one group is
// being made durable the next one gathers, so a lone transaction is
// applied at once and a backlog in few durable writes. Only once a group
// is durable does the source's applied position (confirmed to PostgreSQL,
// awaited by calls) move past it.
//
// Decoding a transaction reads the records it deletes, and those whose
// unchanged TOAST columns it keeps, as the transactions before it leave
// them: the session's pending records hold what the queued transactions
// wrote until they are applied.

// Bounds of the queue: the stream waits while it holds this many
// transactions or ops (one larger transaction is queued alone).
const (
	maxQueuedUnits = 1024
	maxQueuedOps   = 64 << 10
)

// unit is a received transaction as the applier applies it.
type unit struct {
	seq   uint64
	end   pglogrepl.LSN
	at    time.Time
	steps []step
}

// step is one drop or commit of a unit, to one table's collection.
type step struct {
	t    *table
	drop bool
	ops  []viewsync.Op
	pos  []byte
}

// applier applies a session's queued units in the background.
type applier struct {
	s *Source
	// ctx is the session's: applying stops with it.
	ctx context.Context
	// fail ends the session's stream with the applier's failure.
	fail context.CancelCauseFunc

	// mu guards the fields below; cond is signalled when they change.
	mu       sync.Mutex
	cond     *sync.Cond
	queue    []*unit
	ops      int
	busy     bool
	stopping bool
	err      error
	seq      uint64

	// applied is the seq of the last unit applied.
	applied atomic.Uint64
	done    chan struct{}
}

// startApplier starts the applier of a session whose stream ends with
// fail.
func startApplier(ctx context.Context, s *Source, fail context.CancelCauseFunc) *applier {
	a := &applier{s: s, ctx: ctx, fail: fail, done: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	go a.run()
	return a
}

// enqueue queues u, giving it the next seq, once the queue has room. It
// fails with the applier's failure.
func (a *applier) enqueue(u *unit) error {
	n := 0
	for _, st := range u.steps {
		n += len(st.ops)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.err == nil && !a.stopping && len(a.queue) > 0 && (len(a.queue) >= maxQueuedUnits || a.ops+n > maxQueuedOps) {
		a.cond.Wait()
	}
	if a.err != nil {
		return a.err
	}
	a.seq++
	u.seq = a.seq
	a.queue = append(a.queue, u)
	a.ops += n
	a.cond.Broadcast()
	return nil
}

// idle reports whether every unit queued has been applied.
func (a *applier) idle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue) == 0 && !a.busy && a.err == nil
}

// stop ends the applier once the group it applies, if any, is done; what
// is still queued is dropped (the slot streams it again).
func (a *applier) stop() {
	a.mu.Lock()
	a.stopping = true
	a.cond.Broadcast()
	a.mu.Unlock()
	<-a.done
}

func (a *applier) run() {
	defer close(a.done)
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.stopping {
			a.cond.Wait()
		}
		if a.stopping {
			a.mu.Unlock()
			return
		}
		group := a.queue
		a.queue, a.ops, a.busy = nil, 0, true
		a.cond.Broadcast()
		a.mu.Unlock()

		err := a.apply(group)

		a.mu.Lock()
		a.busy = false
		if err != nil {
			a.err = err
		}
		a.cond.Broadcast()
		a.mu.Unlock()
		if err != nil {
			a.fail(err)
			return
		}
	}
}

// apply applies a group: each collection's steps in order, the
// collections side by side; then counts its transactions and moves the
// applied position past it.
func (a *applier) apply(group []*unit) error {
	var tables []*table
	steps := map[*table][]step{}
	for _, u := range group {
		for _, st := range u.steps {
			if steps[st.t] == nil {
				tables = append(tables, st.t)
			}
			steps[st.t] = append(steps[st.t], st)
		}
	}
	errs := make([]error, len(tables))
	if len(tables) == 1 {
		errs[0] = a.applyTable(tables[0], steps[tables[0]])
	} else {
		var wg sync.WaitGroup
		for i, t := range tables {
			wg.Go(func() { errs[i] = a.applyTable(t, steps[t]) })
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s := a.s
	var end pglogrepl.LSN
	for _, u := range group {
		if len(u.steps) > 0 {
			s.transactions.Add(1)
			s.lagNanos.Store(int64(max(0, time.Since(u.at))))
		}
		end = max(end, u.end)
	}
	a.applied.Store(group[len(group)-1].seq)
	s.advance(end)
	return nil
}

// applyTable applies one collection's steps in order: runs of commits
// through CommitAll, drops one by one.
func (a *applier) applyTable(t *table, steps []step) error {
	for len(steps) > 0 {
		if steps[0].drop {
			if _, err := t.feed.Drop(a.ctx, steps[0].pos); err != nil {
				return fmt.Errorf("pgsource: truncate %s: %w", t.Collection, err)
			}
			a.s.opts.Logger.Info("PostgreSQL source: table truncated; new epoch", "table", t.String(), "collection", t.Collection)
			steps = steps[1:]
			continue
		}
		var run []viewsync.FeedCommit
		for len(steps) > 0 && !steps[0].drop {
			run = append(run, viewsync.FeedCommit{Ops: steps[0].ops, Pos: steps[0].pos})
			steps = steps[1:]
		}
		if made, err := t.feed.CommitAll(a.ctx, run); err != nil {
			return fmt.Errorf("pgsource: apply %d transactions to %s (%d made): %w", len(run), t.Collection, len(made), err)
		}
	}
	return nil
}

// pendingRecord is a record as a queued transaction left it: its value,
// nil when deleted, and the unit's seq.
type pendingRecord struct {
	v   []byte
	seq uint64
}

// pending is a table's records written by queued units, and the seq of
// the last queued TRUNCATE.
type pending struct {
	recs  map[string]pendingRecord
	trunc uint64
	// sweepAt is the size at which recs is next swept of what is applied.
	sweepAt int
}

// minSweep is the least number of pending records a sweep waits for.
const minSweep = 4096

// note records what a queued unit's changes to t leave.
func (ss *session) note(t *table, ch *changes, seq uint64) {
	p := ss.pending[t]
	if p == nil {
		p = &pending{recs: map[string]pendingRecord{}, sweepAt: minSweep}
		ss.pending[t] = p
	}
	if ch.truncated {
		clear(p.recs)
		p.trunc = seq
	}
	for id, v := range ch.after {
		p.recs[id] = pendingRecord{v: v, seq: seq}
	}
	if len(p.recs) >= p.sweepAt {
		applied := ss.ap.applied.Load()
		for id, r := range p.recs {
			if r.seq <= applied {
				delete(p.recs, id)
			}
		}
		p.sweepAt = max(minSweep, 2*len(p.recs))
	}
}

// lookup returns the value of the record id of t's collection as the
// transactions received so far leave it (nil when it has none): a queued
// one's, else the collection's.
func (ss *session) lookup(ctx context.Context, t *table, id string) ([]byte, error) {
	if p := ss.pending[t]; p != nil {
		if r, ok := p.recs[id]; ok {
			return r.v, nil
		}
		if p.trunc > ss.ap.applied.Load() {
			return nil, nil // a queued TRUNCATE emptied it
		}
	}
	rec, err := t.coll.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgsource: %s: %w", t.Collection, err)
	}
	return rec.Value, nil
}
