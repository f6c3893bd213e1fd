package boltstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Group commit.
//
// Apply and Drop queue a request and wait. One goroutine, the committer,
// takes everything queued (up to MaxBatch requests), runs them in arrival
// order inside one bbolt write transaction, takes in whatever arrived while
// it did, commits (one fsync) and then answers every request. While a
// transaction is being synced, new requests queue up and form the next
// batch, so the batch size follows the load: a lone writer is never delayed
// by a timer, and N concurrent writers share one fsync.
//
// Each request is checked before it writes anything, so one that fails its
// preconditions leaves no trace in the transaction and does not disturb the
// others. An error from bbolt itself (I/O, a full disk) aborts the
// transaction and fails every request of the batch that had not already
// failed its checks.

// The states of a request. A request is answered by whoever moves it out
// of stateQueued: the committer (to stateTaken, then it answers after the
// transaction), Apply giving up on its context (stateAbandoned, never
// answered) or Close (stateDone, answered with ErrClosed).
const (
	stateQueued int32 = iota
	stateTaken
	stateAbandoned
	stateDone
)

// request is one queued Apply or Drop.
type request struct {
	collection string
	// drop tells a Drop from an Apply.
	drop bool
	ops  []protocol.Op
	ifs  map[string]uint64
	// opsJSON is ops encoded by protocol.AppendOps, for the log.
	opsJSON []byte
	// vals holds the records values of the puts, from recordValues.
	vals []byte
	// pos, when not nil, is the source position ApplyAt and DropAt store
	// with the commit or drop (see store.Positions).
	pos []byte
	// key, when not nil, is the idempotency key ApplyKeyed records with
	// the commit (see store.Keys).
	key *store.NewKey

	state atomic.Int32
	// done is closed once applied, head and err are set.
	done chan struct{}

	applied store.Applied
	head    protocol.Head
	// err is the answer's error, nil on success.
	err error
	// checkFailed is set when err is the request's own check failure
	// rather than the batch's.
	checkFailed bool
	// after, when not nil, is the request this one must follow
	// (ApplyAllAt): queued before it, and applied only if that one was.
	after *request
}

// errAfterFailed fails a request of ApplyAllAt whose predecessor was not
// applied.
var errAfterFailed = errors.New("an earlier commit of the same batch was not made")

// followsFailed reports whether r follows a request that was not applied:
// withdrawn, failed (its own check or its batch), or answered by Close.
// Only the committer calls it: a predecessor it took has its err set by
// the committer itself, in this batch or an earlier one.
func (r *request) followsFailed() bool {
	p := r.after
	if p == nil {
		return false
	}
	switch p.state.Load() {
	case stateTaken:
		return p.err != nil
	case stateQueued:
		return false // cannot be: requests are taken in queue order
	}
	return true
}

// submit queues r and waits for its answer. While r is queued, a done ctx
// withdraws it; once the committer has taken it, submit waits for the
// transaction, which is bounded by one write and one fsync, so that the
// answer always tells whether the commit happened.
func (s *Store) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}

	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return ctx.Err()
		}
		<-r.done
		return r.err
	}
}

// submitAll queues reqs, chained by their after fields, in one step, so
// that they keep their order in the queue, and waits for them. It returns
// how many were applied — a prefix of reqs — and the first one's error
// that was not. Once one fails or is withdrawn (ctx done while it is
// queued), the rest are withdrawn or, already taken, failed by the
// committer; submitAll returns only when none is left in flight.
func (s *Store) submitAll(ctx context.Context, reqs []*request) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for _, r := range reqs {
		r.done = make(chan struct{})
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return 0, store.ErrClosed
	}
	s.queue = append(s.queue, reqs...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}

	settle := func(rest []*request) {
		for _, r := range rest {
			if !r.state.CompareAndSwap(stateQueued, stateAbandoned) {
				<-r.done
			}
		}
	}
	for i, r := range reqs {
		select {
		case <-r.done:
		case <-ctx.Done():
			if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
				settle(reqs[i+1:])
				return i, ctx.Err()
			}
			<-r.done
		}
		if r.err != nil {
			settle(reqs[i+1:])
			return i, r.err
		}
	}
	return len(reqs), nil
}

// run is the committer goroutine.
func (s *Store) run() {
	defer close(s.exited)
	var reqs []*request
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		for {
			reqs = s.take(reqs[:0])
			if len(reqs) == 0 {
				break
			}
			reqs = s.commit(reqs)
			clear(reqs)
		}
	}
}

// take moves live requests from the queue to the end of batch, until it
// holds maxBatch.
func (s *Store) take(batch []*request) []*request {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(s.queue) && len(batch) < s.maxBatch {
		r := s.queue[n]
		n++
		if r.state.CompareAndSwap(stateQueued, stateTaken) {
			batch = append(batch, r)
		}
	}
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch
}

// commit writes a batch in one transaction and answers its requests. It
// starts with reqs and, before committing, takes into the same transaction
// whatever arrived meanwhile (up to MaxBatch): those requests would
// otherwise wait for this transaction's fsync and then pay for their own,
// and the requests already in it wait only for the few microseconds of
// applying them. It returns the batch, reqs and what joined.
func (s *Store) commit(reqs []*request) []*request {
	err := s.update(func(tx *bolt.Tx) error {
		b := batch{s: s, tx: tx, colls: make(map[string]*batchColl)}
		for i := 0; i < len(reqs); i++ {
			r := reqs[i]
			if r.followsFailed() {
				r.err, r.checkFailed = errAfterFailed, true
			} else if r.drop {
				h, err := b.drop(r.collection, r.pos)
				if err != nil {
					return fmt.Errorf("drop %q: %w", r.collection, err)
				}
				r.head = h
			} else {
				a, checkErr, err := b.apply(r)
				if err != nil {
					return fmt.Errorf("apply %q: %w", r.collection, err)
				}
				if checkErr != nil {
					r.err, r.checkFailed = checkErr, true
				} else {
					r.applied = a
				}
			}
			if i == len(reqs)-1 {
				reqs = s.take(reqs)
			}
		}
		return b.finish()
	})
	s.wrote(err)
	if err == nil {
		n := 0
		for _, r := range reqs {
			if !r.checkFailed {
				n++
			}
		}
		s.commits.Add(uint64(n))
		s.batches.Add(1)
	} else {
		err = closedErr(err)
		if !errors.Is(err, store.ErrClosed) {
			s.log.Error("boltstore: batch failed", "commits", len(reqs), "path", s.db.Path(), "err", err)
		}
		if uerr := unwritable(err); uerr != nil {
			err = uerr
		}
		for _, r := range reqs {
			if !r.checkFailed {
				r.applied, r.head, r.err = store.Applied{}, protocol.Head{}, err
			}
		}
	}
	for _, r := range reqs {
		close(r.done)
	}
	return reqs
}
