package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// request is one Apply waiting for the committer.
type request struct {
	ops     []protocol.Op
	opsJSON []byte // AppendOps of ops
	ifs     map[string]uint64
	// msgs bounds the messages the request adds to a batch.
	msgs int
	// key, when not nil, is the idempotency key ApplyKeyed records with
	// the commit, as a message of the same batch.
	key *store.NewKey

	state atomic.Int32 // reqPending, reqTaken or reqCancelled
	done  chan struct{}
	res   store.Applied
	err   error
}

// Request states: the committer takes a pending request, or the caller,
// its context done, cancels it; whoever swaps first decides.
const (
	reqPending int32 = iota
	reqTaken
	reqCancelled
)

// answer completes a taken request.
func (r *request) answer(res store.Applied, err error) {
	r.res, r.err = res, err
	close(r.done)
}

// enqueue hands r to the committer.
func (c *coll) enqueue(r *request) {
	c.qmu.Lock()
	c.queue = append(c.queue, r)
	c.qmu.Unlock()
	c.committer.signal()
}

// commitQueued commits queued requests, a group at a time, until none is
// left; once the store closes (or the collection is released, with none
// queued) it fails those still queued.
func (c *coll) commitQueued() {
	if c.ctx.Err() == nil {
		for {
			group := c.take(false)
			if len(group) == 0 {
				break
			}
			c.commitGroup(group)
		}
	}
	if c.ctx.Err() != nil {
		for _, r := range c.take(true) {
			r.answer(store.Applied{}, store.ErrClosed)
		}
	}
}

// take takes the next group of pending requests: as many as fit in one
// batch by their bounds (at least one), or all when all is set.
func (c *coll) take(all bool) []*request {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	budget := c.s.maxBatch - 1 // the horizon message
	bytes := 0
	var group []*request
	i := 0
	for ; i < len(c.queue); i++ {
		r := c.queue[i]
		if r.state.Load() != reqPending {
			continue
		}
		if !all && len(group) > 0 && (r.msgs > budget || bytes+len(r.opsJSON) > maxGroupBytes) {
			break
		}
		if !r.state.CompareAndSwap(reqPending, reqTaken) {
			continue
		}
		group = append(group, r)
		budget -= r.msgs
		bytes += len(r.opsJSON)
	}
	clear(c.queue[:i])
	c.queue = c.queue[i:]
	return group
}

// requeue puts taken requests back at the head of the queue, pending.
func (c *coll) requeue(rs []*request) {
	for _, r := range rs {
		r.state.Store(reqPending)
	}
	c.qmu.Lock()
	c.queue = append(slices.Clone(rs), c.queue...)
	c.qmu.Unlock()
	c.committer.signal()
}

// maxGroupBytes bounds the encoded ops of the commits grouped in one batch
// (a single larger commit gets a batch of its own).
const maxGroupBytes = 4 << 20

// maxAttempts bounds how often a group is re-planned after other
// processes' commits or a replaced stream got in the way.
const maxAttempts = 1000

// plan is one attempt at committing a group: the batch and what it does.
// A group may be planned several times, each time against another state,
// so what an attempt decided for each request is kept with the attempt:
// the answer a request gets is that of the attempt that was stored.
type plan struct {
	epoch string
	// expect is the stream's last sequence the plan was made at (in the
	// shared layout, that of the collection's last message).
	expect uint64
	// end is where the stream told the batch ended (shared layout; see
	// endSeq).
	end     uint64
	ok      []*request
	commits []protocol.Commit   // the commit of each request of ok
	prevs   [][]json.RawMessage // the Applied.Prev of each request of ok
	entries [][]byte            // the log entry of each request of ok
	// deferred are the group's requests left for a later batch, which
	// this one has no room for.
	deferred []*request
	// need lists the records whose values the state shed and the plan
	// needs (to tell what the commits replace): it is to be made again
	// once they are read.
	need []*protocol.Record
	// probe lists the records the state does not know (it shed their
	// index entries) and the plan needs: it is to be made again once
	// they are read (see coll.probe), at the state of version asOf.
	probe  []string
	asOf   uint64
	failed []*request
	errs   []error // why each request of failed failed
	// later holds requests whose key another request of the group has:
	// once the batch is stored they are answered with it (keys).
	later []*request
	keys  map[string]store.Key
	msgs  []*nats.Msg
	id    string // batch id
	msgID string // the group's message id (see fate.go)

	// published is when the batch was handed to the connection, window
	// the stream's duplicate window then.
	published time.Time
	window    time.Duration
	// settled: the stream could not tell whether the batch was stored;
	// the duplicate window guards against it (see settle).
	settled bool
	// term is the stream's leader term the batch was published in, link
	// the connection's.
	term, link *term
}

// pending is the state of a record after the commits planned so far.
type pending struct {
	exists  bool
	value   []byte
	version uint64
	tomb    bool // deleted by a planned commit while it existed
	at      time.Time
}

// commitGroup commits the group's requests that pass their checks as
// consecutive commits in one atomic batch, and answers every request.
func (c *coll) commitGroup(group []*request) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx := c.ctx
	// Every attempt carries the group's message id: once the stream has
	// stored one, it refuses the others (see fate.go).
	gid := nuid.Next()
	var tried []*plan // attempts whose outcome is unknown
	defer func() { c.forget(tried...) }()
	// The state keeps the index entries of what is written after the
	// latest probes until the group is done (see coll.pin).
	unpin := func() {}
	defer func() { unpin() }()
	var (
		wait     backoff   // between attempts the stream could not take
		noLeader time.Time // since when nobody takes the batches
		// vals are the values of records the state shed that the plans
		// needed, read from the stream, and probes the records it does
		// not know.
		vals   = make(map[string]heldValue)
		probes = make(map[string]probed)
	)
	fail := func(err error) {
		if len(tried) > 0 && !errors.Is(err, ErrOutcomeUnknown) {
			err = fmt.Errorf("%w (an earlier attempt's outcome is unknown: the commit may have been made)", err)
		}
		for _, r := range group {
			r.answer(store.Applied{}, err)
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt == maxAttempts {
			fail(fmt.Errorf("natskv: apply to %s: gave up after %d attempts against concurrent writers", c.name, attempt))
			return
		}
		err := c.waitFor(ctx, func() bool {
			return c.st != nil && !c.broken && c.fol != nil && c.fol.ld == nil && c.fol.epoch == c.st.Epoch
		})
		if err != nil {
			fail(fmt.Errorf("natskv: apply to %s: %w", c.name, err))
			return
		}
		// Did an earlier attempt commit after all? If not, plan again
		// from the same state, read under the same lock: a state that
		// holds none of the earlier attempts. Each of them was planned at
		// a last sequence at or below this one, so at most one of them
		// and this plan can be stored (the server refuses the others) —
		// unless the follower read past an attempt without seeing it:
		// then the stream is asked first (settle).
		c.mu.RLock()
		done, seq := c.committed(tried)
		var p *plan
		var unsure []*plan
		if done == nil {
			unsure = c.unsure(tried)
			if len(unsure) == 0 {
				// Only a group no attempt of which may have been stored
				// can shrink.
				p, err = c.plan(group, len(tried) == 0, vals, probes)
				if err == nil && len(p.probe) > 0 {
					unpin()
					unpin = c.pin(p.asOf)
				}
			}
		}
		c.mu.RUnlock()
		if done != nil {
			c.finish(done, seq)
			return
		}
		if len(unsure) > 0 {
			done, seq, tried, err = c.settle(ctx, unsure, tried)
			switch {
			case done != nil:
				c.finish(done, seq)
				return
			case errors.Is(err, ErrOutcomeUnknown):
				fail(fmt.Errorf("natskv: apply to %s: %w", c.name, err))
				return
			case err != nil:
				if ctx.Err() != nil {
					fail(fmt.Errorf("natskv: apply to %s: outcome unknown: %w", c.name, err))
					return
				}
				sleep(ctx, retryDelay)
			}
			continue
		}
		if err != nil {
			fail(err)
			return
		}
		if len(p.need) > 0 || len(p.probe) > 0 {
			if err := c.readNeeded(ctx, p, vals, probes, &wait); err != nil {
				fail(fmt.Errorf("natskv: apply to %s: %w", c.name, err))
				return
			}
			continue
		}
		if len(p.deferred) > 0 {
			group = group[:len(group)-len(p.deferred)]
			c.requeue(p.deferred)
		}
		if len(p.ok) == 0 {
			if len(tried) > 0 {
				// The state moved on since an attempt the stream could not
				// tell about: its checks passed then, fail now, and the
				// answer depends on whether it was stored.
				fail(fmt.Errorf("natskv: apply to %s: %w", c.name, ErrOutcomeUnknown))
				return
			}
			c.answerFailed(p)
			return
		}
		if c.isAbsent() {
			// The collection's first commit: make its stream, then plan
			// again against what it holds.
			if err := c.materialize(ctx); err != nil {
				if ctx.Err() != nil {
					fail(fmt.Errorf("natskv: apply to %s: %w", c.name, err))
					return
				}
				c.s.log.Debug("natskv: create stream", "collection", c.name, "err", err)
				wait.sleep(ctx)
			}
			continue
		}
		for _, t := range tried {
			if t.settled && !c.guarded(t) {
				fail(fmt.Errorf("natskv: apply to %s: %w", c.name, ErrOutcomeUnknown))
				return
			}
		}
		if c.makeWay(ctx, p.epoch, p.expect) {
			// Another process committed while this one held back.
			continue
		}
		// The follower records the batch's id from now on, so that it
		// can be found should the acknowledgement be lost.
		p.id, p.msgID = nuid.Next(), gid
		c.mu.Lock()
		c.awaited[p.id] = 0
		c.mu.Unlock()
		sent := time.Now()
		seq, err = c.publish(p)
		if err == nil {
			c.fair.stored(time.Since(sent))
			c.forget(p)
			c.finish(p, seq)
			return
		}
		var wl *wrongLastError
		if !errors.Is(err, nats.ErrNoResponders) {
			noLeader = time.Time{}
		}
		switch {
		case errors.As(err, &wl):
			// Another batch got there first: catch up, check again.
			c.forget(p)
			c.refused()
			wait.reset()
			c.afterWrongLast(ctx, p, wl)
		case errors.Is(err, nats.ErrNoResponders):
			// Nobody took the batch's commit message, so it was not
			// stored: the stream is electing a leader, or no stream
			// takes this epoch's subjects any more (dropped or lost).
			c.forget(p)
			if noLeader.IsZero() {
				noLeader = time.Now()
			}
			c.afterNoResponders(ctx, p, noLeader, &wait)
		case errors.Is(err, errNotSent):
			// The connection is down: wait for it to be back.
			c.forget(p)
			if !c.waitConnected(ctx) {
				fail(fmt.Errorf("natskv: apply to %s: %w: no connection to NATS for %v", c.name, store.ErrUnavailable, c.s.timeout))
				return
			}
			wait.sleep(ctx)
		case errors.Is(err, errDuplicate):
			// An earlier attempt was stored: answer as it decided.
			c.forget(p)
			c.s.log.Debug("natskv: an earlier attempt was stored", "collection", c.name, "attempts", len(tried))
			done, seq, err := c.whichStored(ctx, p.epoch, tried)
			if err != nil {
				fail(fmt.Errorf("natskv: apply to %s: %w", c.name, err))
				return
			}
			c.finish(done, seq)
			return
		case errors.Is(err, errInProcess):
			// An earlier attempt is being stored: let the follower see it.
			c.forget(p)
			wait.sleep(ctx)
			_ = c.catchUp(ctx, p.epoch)
		case errors.Is(err, errRejected):
			c.forget(p)
			fail(fmt.Errorf("natskv: apply to %s: %w", c.name, err))
			return
		default:
			// The outcome is unknown (the acknowledgement did not come
			// in time: the leader may be gone). Try again at once: the
			// next attempt, planned from a state that does not hold this
			// one, is refused if this one was stored, and the follower
			// then finds it.
			tried = append(tried, p)
			c.s.log.Warn("natskv: commit outcome unknown, trying again", "collection", c.name, "err", err)
			wait.sleepTerm(ctx, p.term)
		}
	}
}

// isAbsent reports whether the collection has no stream yet.
func (c *coll) isAbsent() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.absent
}

// forget stops recording the ids of the batches of plans.
func (c *coll) forget(plans ...*plan) {
	c.mu.Lock()
	for _, p := range plans {
		delete(c.awaited, p.id)
	}
	c.mu.Unlock()
}

// afterWrongLast waits, after the stream refused p's batch for being
// planned at an old last sequence, until the follower has read the
// stream up to the sequence the server reported, or for a while: the
// server counts batches it has not stored yet, which may still fail.
func (c *coll) afterWrongLast(ctx context.Context, p *plan, wl *wrongLastError) {
	if wl.seq <= p.expect {
		// The stream holds less than the state was read from: it lost
		// messages. Read it again.
		c.mu.Lock()
		if c.st != nil && c.st.Epoch == p.epoch && c.st.lastSeq == p.expect {
			c.breakLocked(fmt.Errorf("the stream is at sequence %d, behind the state at %d", wl.seq, p.expect))
		}
		c.mu.Unlock()
		return
	}
	wctx, cancel := context.WithTimeout(ctx, c.s.attempt)
	defer cancel()
	err := c.waitFor(wctx, func() bool {
		return c.broken || c.st.Epoch != p.epoch || c.st.lastSeq >= wl.seq
	})
	if err != nil && ctx.Err() == nil {
		// Not there yet: read what the stream holds now instead.
		if err := c.catchUp(ctx, p.epoch); err != nil {
			sleep(ctx, jitter(retryDelay))
		}
	}
}

// afterNoResponders waits a moment, after nobody took p's batch since
// noLeader, before the batch is tried again: a leader election is under
// way. Once that has lasted an attempt's time, it also finds out whether
// the stream still takes p's epoch; if not, it reloads the collection from
// its successor.
func (c *coll) afterNoResponders(ctx context.Context, p *plan, noLeader time.Time, wait *backoff) {
	if time.Since(noLeader) < c.s.attempt {
		wait.sleepTerm(ctx, p.term)
		return
	}
	ictx, cancel := c.attemptCtx(ctx)
	si, err := c.info(ictx, p.epoch)
	cancel()
	if err != nil || si.epoch == p.epoch {
		wait.sleepTerm(ctx, p.term)
		return
	}
	c.s.log.Debug("natskv: no stream for epoch", "collection", c.name, "epoch", p.epoch)
	c.mu.Lock()
	c.breakLocked(fmt.Errorf("no stream takes epoch %s", p.epoch))
	c.mu.Unlock()
	c.waitFor(ctx, func() bool { return !c.broken })
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// retryDelay is how long to wait before trying again after the server
// could not be reached.
const retryDelay = 250 * time.Millisecond

// backoff spaces the attempts of a group that the stream could not take
// (no leader, no connection, no acknowledgement): minRetry at first,
// doubling up to retryDelay, each give or take a half.
type backoff struct{ d time.Duration }

// minRetry is the first wait of a backoff.
const minRetry = 10 * time.Millisecond

func (b *backoff) sleep(ctx context.Context) {
	b.d = min(max(2*b.d, minRetry), retryDelay)
	sleep(ctx, jitter(b.d))
}

// sleepTerm is sleep, cut short when t ends (the stream's leader
// changes).
func (b *backoff) sleepTerm(ctx context.Context, t *term) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.ctx, cancel)()
	b.sleep(ctx)
}

func (b *backoff) reset() { b.d = 0 }

// waitConnected waits until the connection is up, for at most the store's
// timeout; it reports whether it is.
func (c *coll) waitConnected(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	for !c.s.nc.IsConnected() && ctx.Err() == nil {
		sleep(ctx, minRetry)
	}
	return c.s.nc.IsConnected()
}

// committed returns the attempt among tried that the follower has seen
// stored, and the sequence its batch ended at, once the state holds it or
// has moved to another history. c.mu must be held for reading.
func (c *coll) committed(tried []*plan) (*plan, uint64) {
	for _, p := range tried {
		// Seen in a history since replaced (dropped): it was made there.
		if seq := c.awaited[p.id]; seq != 0 && (c.st.Epoch != p.epoch || c.st.lastSeq >= seq) {
			return p, seq
		}
	}
	return nil, 0
}

// catchUp waits until the follower has read everything the stream held
// when it was called, in the history epoch the caller planned in. A
// follower that cannot get there reloads: one still in epoch while the
// stream has moved to another history (it missed the start message), or
// one that read nothing of what the stream holds beyond it for
// Options.Timeout. Without that, a committer whose batches the stream
// refuses for a state it holds no more would wait for it forever.
func (c *coll) catchUp(ctx context.Context, epoch string) error {
	ictx, cancel := c.attemptCtx(ctx)
	si, err := c.info(ictx, epoch)
	cancel()
	if err != nil {
		return err
	}
	c.mu.Lock()
	from := c.st.lastSeq
	if !c.broken && c.st.Epoch == epoch && si.epoch != epoch {
		c.breakLocked(fmt.Errorf("the stream is in epoch %s, the state still in %s", si.epoch, epoch))
	}
	c.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	err = c.waitFor(wctx, func() bool {
		return c.broken || c.st.Epoch != si.epoch || c.st.Epoch == si.epoch && c.st.lastSeq >= si.lastSeq
	})
	if err != nil && ctx.Err() == nil {
		c.mu.Lock()
		if !c.broken && c.st.Epoch == si.epoch && c.st.lastSeq == from {
			c.breakLocked(fmt.Errorf("the follower stayed at sequence %d, the stream holds %d", from, si.lastSeq))
		}
		c.mu.Unlock()
	}
	return err
}

// finish answers a group whose batch the stream acknowledged at seq, once
// the follower has applied it (read-your-writes), then trims the stream.
func (c *coll) finish(p *plan, seq uint64) {
	// The commits are durable: they are answered as such even if the
	// store closes before the follower gets there.
	_ = c.waitFor(c.ctx, func() bool {
		return c.broken || c.st.Epoch != p.epoch || c.st.lastSeq >= seq
	})
	if c.s.shared && p.expect == 0 {
		// The collection's first batch: processes that hold it as never
		// written follow it from now on.
		c.announce()
	}
	for i, r := range p.ok {
		r.answer(store.Applied{Epoch: p.epoch, Commit: p.commits[i], Prev: p.prevs[i]}, nil)
	}
	c.answerFailed(p)
	c.trim()
}

// answerFailed answers the requests that failed their checks in p, and
// those that came with a key another request of the stored batch had.
func (c *coll) answerFailed(p *plan) {
	for i, r := range p.failed {
		r.answer(store.Applied{}, fmt.Errorf("natskv: apply to %s: %w", c.name, p.errs[i]))
	}
	for _, r := range p.later {
		k := p.keys[r.key.ID]
		k.Answer = slices.Clone(k.Answer)
		r.answer(store.Applied{}, fmt.Errorf("natskv: apply to %s: %w", c.name, &store.KeyExistsError{Key: k}))
	}
}

// plan checks each request of the group against the state and the
// commits planned before it, and builds the batch of those that pass.
// With mayDefer, the requests from the first one whose log entry, with
// the values its ops replace, would take the batch past Options.MaxBatch
// are left out, in plan.deferred. The values of records the state shed
// come from vals, and the records it does not know from probes; when
// those lack some, the plan only lists them, in plan.need and
// plan.probe. c.mu must be held for reading.
func (c *coll) plan(group []*request, mayDefer bool, vals map[string]heldValue, probes map[string]probed) (*plan, error) {
	st := c.st
	p := &plan{epoch: st.Epoch, expect: st.lastSeq, asOf: st.Version}
	at := c.s.cfg.Now().UTC()
	prefix := c.fol.prefix
	ov := make(map[string]*pending)
	// fromProbe returns what probes tell of a record the state does not
	// know, else lists it in p.probe and returns that it does not exist:
	// the plan is made again once it is read.
	probing := make(map[string]bool)
	fromProbe := func(id string) probed {
		if pr, ok := probes[id]; ok && pr.valid(st) {
			return pr
		}
		if !probing[id] {
			probing[id] = true
			p.probe = append(p.probe, id)
		}
		return probed{}
	}
	lookup := func(id string) (bool, uint64) {
		if o := ov[id]; o != nil {
			if !o.exists {
				return false, 0
			}
			return true, o.version
		}
		v, ok, known := st.Lookup(id)
		if !known {
			pr := fromProbe(id)
			return pr.exists, pr.version
		}
		return ok, v
	}
	// value returns a copy of a record's value after the commits planned
	// so far, nil when it does not exist. A value the state shed comes
	// from vals, else the plan needs it read (p.need).
	needed := make(map[string]bool)
	value := func(id string) json.RawMessage {
		if o := ov[id]; o != nil {
			return slices.Clone(o.value) // nil for a tombstone
		}
		r, ok := st.Get(id) // a copy
		if !ok {
			if _, _, known := st.Lookup(id); known {
				return nil
			}
			return slices.Clone(fromProbe(id).value)
		}
		if r.Value != nil {
			return r.Value
		}
		if h, ok := vals[id]; ok && h.epoch == st.Epoch && h.version == r.Version {
			return slices.Clone(h.value)
		}
		if !needed[id] {
			needed[id] = true
			p.need = append(p.need, &r)
		}
		return nil
	}
	v := st.Version
	type change struct {
		value   []byte
		deleted bool
	}
	// keyed holds the keys of the requests planned so far.
	var keyed map[string]bool
	chunk := c.s.chunkSize()
	chunks := 0 // the log entries' messages
	for gi, r := range group {
		var err error
		if r.key != nil {
			if k, ok := st.keys.Get(r.key.ID, at, c.s.cfg.KeyTTL); ok {
				k.Answer = slices.Clone(k.Answer)
				p.failed = append(p.failed, r)
				p.errs = append(p.errs, &store.KeyExistsError{Key: k})
				continue
			}
			if keyed[r.key.ID] {
				// Another request of the group has the key: this one
				// is tried again once that one is stored, and finds it.
				p.later = append(p.later, r)
				continue
			}
		}
		for _, id := range slices.Sorted(maps.Keys(r.ifs)) {
			want := r.ifs[id]
			if _, have := lookup(id); have != want {
				err = &store.PreconditionError{ID: id, Want: want, Have: have}
				break
			}
		}
		net := make(map[string]change, len(r.ops))
		for i, op := range r.ops {
			if err != nil {
				break
			}
			if op.Op == protocol.OpPut {
				net[op.ID] = change{value: op.Value}
				continue
			}
			exists, _ := lookup(op.ID)
			if ch, ok := net[op.ID]; ok {
				exists = !ch.deleted
			}
			if !exists {
				err = fmt.Errorf("op %d: delete %q: %w", i, op.ID, store.ErrNotFound)
			}
			net[op.ID] = change{deleted: true}
		}
		if err != nil {
			p.failed = append(p.failed, r)
			p.errs = append(p.errs, err)
			continue
		}
		prevs := prevValues(r.ops, value)
		entry := protocol.AppendLogEntry(nil, v+1, at, r.opsJSON, prevs)
		n := (len(entry) + chunk - 1) / chunk
		if mayDefer && len(p.ok) > 0 {
			// The batch's messages: one a record, one a key, the log
			// entries' and the horizon's.
			msgs := len(ov) + len(keyed) + chunks + n + 1
			for id := range net {
				if ov[id] == nil {
					msgs++
				}
			}
			if r.key != nil {
				msgs++
			}
			if msgs > c.s.maxBatch {
				p.deferred = group[gi:]
				break
			}
		}
		v++
		chunks += n
		p.prevs = append(p.prevs, prevs)
		p.entries = append(p.entries, entry)
		for id, ch := range net {
			existed, _ := lookup(id)
			switch {
			case !ch.deleted:
				ov[id] = &pending{exists: true, value: ch.value, version: v}
			case existed:
				ov[id] = &pending{tomb: true, version: v, at: at}
			}
		}
		p.ok = append(p.ok, r)
		p.commits = append(p.commits, protocol.Commit{Version: v, At: at, Ops: r.ops})
		if r.key != nil {
			if keyed == nil {
				keyed = make(map[string]bool)
			}
			keyed[r.key.ID] = true
		}
	}
	if len(p.ok) == 0 || len(p.need) > 0 || len(p.probe) > 0 {
		return p, nil
	}

	for _, id := range slices.Sorted(maps.Keys(ov)) {
		o := ov[id]
		m := nats.NewMsg(recordSubject(prefix, id))
		m.Header.Set(hdrVersion, strconv.FormatUint(o.version, 10))
		if o.exists {
			m.Data = o.value
		} else {
			m.Header.Set(hdrDeleted, strconv.FormatInt(o.at.UnixNano(), 10))
		}
		p.msgs = append(p.msgs, m)
	}
	for i, r := range p.ok {
		if r.key == nil {
			continue
		}
		// The key, in the same atomic batch as its commit: a process
		// that sees the one sees the other.
		m := nats.NewMsg(keySubject(prefix, r.key.ID))
		m.Header.Set(hdrKeyAt, strconv.FormatInt(at.UnixNano(), 10))
		m.Header.Set(hdrKeyFP, r.key.Fingerprint)
		m.Data = r.key.Answer(store.Applied{Epoch: p.epoch, Commit: p.commits[i], Prev: p.prevs[i]})
		p.msgs = append(p.msgs, m)
		if p.keys == nil {
			p.keys = make(map[string]store.Key)
		}
		p.keys[r.key.ID] = store.Key{ID: r.key.ID, Fingerprint: r.key.Fingerprint, Answer: m.Data, At: at}
	}
	if h := st.ExpiredHorizon(at, c.s.cfg.RetainTombstones); h > st.TombFloor() {
		m := nats.NewMsg(horizonSubject(prefix))
		m.Data = strconv.AppendUint(nil, h, 10)
		p.msgs = append(p.msgs, m)
	}
	for i := range p.ok {
		v := p.commits[i].Version
		js := p.entries[i]
		n := (len(js) + chunk - 1) / chunk
		for k := range n {
			m := nats.NewMsg(logSubject(prefix, v, k))
			m.Header.Set(hdrChunks, strconv.Itoa(n))
			if k == 0 {
				// The log entry must not exist yet: a batch planned from a
				// state that lacks version v is refused even should the
				// stream's last sequence match by mistake, instead of
				// overwriting the entry (the stream keeps one message per
				// subject).
				m.Header.Set(hdrExpectedLastSubjSeq, "0")
			}
			m.Data = js[k*chunk : min(len(js), (k+1)*chunk)]
			p.msgs = append(p.msgs, m)
		}
	}
	if len(p.msgs) > c.s.maxBatch {
		// Only a group of one request can exceed the bound (see take).
		return nil, fmt.Errorf("natskv: apply to %s: %w: the commit needs a batch of %d messages, the limit is %d (Options.MaxBatch, the server's max_batch_size)",
			c.name, protocol.ErrTooLarge, len(p.msgs), c.s.maxBatch)
	}
	return p, nil
}

// wrongLastError is the stream's refusal of a batch planned at an old
// last sequence: another process committed first.
type wrongLastError struct{ seq uint64 }

func (e *wrongLastError) Error() string {
	return fmt.Sprintf("wrong last sequence: the stream is at %d", e.seq)
}

// pubAck is the stream's answer to a batch's commit message.
type pubAck struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Seq   uint64 `json:"seq"`
	Count int    `json:"count"`
}

// JetStream error codes the committer tells apart.
const (
	errCodeWrongLastSeq = 10071 // JSStreamWrongLastSequenceErrF, the stream's or a subject's
	// JSStreamWrongLastSequenceConstantErr: a subject expectation met a
	// batch under way that writes the subject.
	errCodeWrongLastSeqConst = 10164
	errCodeNotLeader         = 10011 // JSClusterNotLeaderErr
	errCodeIncomplete        = 10176 // JSAtomicPublishIncompleteBatchErr
	// JSAtomicPublishContainsDuplicateMessageErr: the batch's message id
	// was stored already.
	errCodeDuplicate = 10201
	// JSStreamDuplicateMessageConflict: the batch's message id is in a
	// batch being stored.
	errCodeInProcess = 10158
)

// publish sends p's batch as one JetStream atomic batch and returns the
// stream sequence of its last message.
func (c *coll) publish(p *plan) (uint64, error) {
	nc := c.s.nc
	p.term, p.link = c.term.Load(), c.s.link.Load()
	n := len(p.msgs)
	for i, m := range p.msgs {
		m.Header.Set(hdrBatchID, p.id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
	}
	if c.s.shared {
		// The first message is a record's (every commit writes one),
		// which carries no expectation of its own.
		p.msgs[0].Header.Set(hdrExpectedLastSubjSeq, strconv.FormatUint(p.expect, 10))
		p.msgs[0].Header.Set(hdrExpectedLastSubjSeqSubj, c.names.filter())
	} else {
		p.msgs[0].Header.Set(hdrExpectedLast, strconv.FormatUint(p.expect, 10))
	}
	last := p.msgs[n-1]
	last.Header.Set(hdrEnd, "1")
	last.Header.Set(hdrBatchCommit, "1")
	// On the last message: of the batch's messages, a log entry's is the
	// one the stream keeps longest, and the server learns the ids it
	// remembers again after a restart from the messages it holds.
	last.Header.Set(hdrMsgID, p.msgID)
	p.published, p.window = time.Now(), time.Duration(c.dupWindow.Load())
	for _, m := range p.msgs[:n-1] {
		if err := nc.PublishMsg(m); err != nil {
			// Without its commit message the batch is abandoned.
			return 0, fmt.Errorf("publish: %w: %w", errNotSent, err)
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.ackWait())
	defer cancel()
	// A new leader ends the wait: the old one may never answer; so does a
	// lost connection: an answer sent to it is lost.
	defer context.AfterFunc(p.term.ctx, cancel)()
	defer context.AfterFunc(p.link.ctx, cancel)()
	resp, err := nc.RequestMsgWithContext(ctx, last)
	if err != nil {
		if unsent(err) {
			return 0, fmt.Errorf("publish: %w: %w", errNotSent, err)
		}
		return 0, fmt.Errorf("publish: %w", err)
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("publish: bad acknowledgement %q: %w", resp.Data, err)
	}
	if e := ack.Error; e != nil {
		if e.ErrCode == errCodeWrongLastSeqConst {
			// An expectation on a subject the batch writes met a batch
			// under way: this one was planned from an old state.
			return 0, &wrongLastError{seq: p.expect + 1}
		}
		switch e.ErrCode {
		case errCodeDuplicate:
			return 0, errDuplicate
		case errCodeInProcess:
			return 0, errInProcess
		}
		if e.ErrCode == errCodeWrongLastSeq {
			var seq uint64
			if _, err := fmt.Sscanf(e.Description, "wrong last sequence: %d", &seq); err == nil {
				return 0, &wrongLastError{seq: seq}
			}
			return 0, &wrongLastError{seq: p.expect + 1}
		}
		apiErr := &jetstream.APIError{Code: e.Code, ErrorCode: jetstream.ErrorCode(e.ErrCode), Description: e.Description}
		if e.ErrCode == errCodeNotLeader || e.ErrCode == errCodeIncomplete || e.Code >= 500 {
			// Transient (a leader change, a lost message): the batch did
			// not commit; try again.
			return 0, &transientError{apiErr}
		}
		return 0, fmt.Errorf("%w: %w", errRejected, apiErr)
	}
	if ack.Count != 0 && ack.Count != n {
		return 0, fmt.Errorf("%w: stream stored %d messages of a batch of %d", errRejected, ack.Count, n)
	}
	return ack.Seq, nil
}

// unsent reports whether a request failed before its message left for the
// server.
func unsent(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionDraining) || errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrInvalidConnection)
}

// transientError is a refusal that did not commit the batch and that a
// later attempt may not meet.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// trim purges from the stream what the state has let go of: log entries
// below the retained log and forgotten tombstones, a bounded number per
// call.
func (c *coll) trim() {
	c.mu.Lock()
	st, f := c.st, c.fol
	if st == nil || f == nil || f.epoch != st.Epoch {
		c.mu.Unlock()
		return
	}
	st.sweepKeys(c.s.cfg.Now(), c.s.cfg.KeyTTL, c.s.cfg.MaxKeys, keySweep)
	keyFloor := st.keyFloor
	if keyFloor <= st.keysPurged {
		keyFloor = 0
	}
	var logBound, floor uint64
	if log := st.Log(); st.LogFloor() > st.diskFloor && len(log) > 0 {
		logBound, floor = log[0].Seq, st.LogFloor()
	}
	tombs := slices.Clone(st.purge[:min(len(st.purge), maxPurges)])
	prefix := f.prefix
	c.mu.Unlock()
	if logBound == 0 && len(tombs) == 0 && keyFloor == 0 {
		return
	}
	// The committer waits: a stream electing a leader is trimmed later.
	ctx, cancel := context.WithTimeout(c.ctx, c.s.attempt)
	defer cancel()
	stream, err := c.s.js.Stream(ctx, c.names.stream)
	if err != nil {
		c.s.log.Warn("natskv: trim", "collection", c.name, "err", err)
		return
	}
	if logBound > 0 {
		err := stream.Purge(ctx, jetstream.WithPurgeSubject(logFilter(prefix)), jetstream.WithPurgeSequence(logBound))
		if err != nil {
			c.s.log.Warn("natskv: trim log", "collection", c.name, "err", err)
		} else {
			c.mu.Lock()
			if c.st == st {
				st.diskFloor = max(st.diskFloor, floor)
			}
			c.mu.Unlock()
		}
	}
	if keyFloor > 0 {
		// Keys are forgotten oldest first, in stream order: every key
		// message up to the floor is forgotten.
		err := stream.Purge(ctx, jetstream.WithPurgeSubject(keyFilter(prefix)), jetstream.WithPurgeSequence(keyFloor+1))
		if err != nil {
			c.s.log.Warn("natskv: trim idempotency keys", "collection", c.name, "err", err)
		} else {
			c.mu.Lock()
			if c.st == st {
				st.keysPurged = max(st.keysPurged, keyFloor)
			}
			c.mu.Unlock()
		}
	}
	done := 0
	for _, t := range tombs {
		err := stream.Purge(ctx, jetstream.WithPurgeSubject(recordSubject(prefix, t.ID)), jetstream.WithPurgeSequence(t.Seq))
		if err != nil {
			c.s.log.Warn("natskv: trim tombstone", "collection", c.name, "id", t.ID, "err", err)
			break
		}
		done++
	}
	if done > 0 {
		c.mu.Lock()
		if c.st == st {
			clear(st.purge[:done])
			st.purge = st.purge[done:]
		}
		c.mu.Unlock()
	}
}

// maxPurges bounds the tombstones purged after one batch.
const maxPurges = 64

// keySweep bounds the idempotency keys forgotten for their age at each
// key message and each batch (all those past Config.MaxKeys go).
const keySweep = 16
