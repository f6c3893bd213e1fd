package natskv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// An open collection keeps its records' ids and versions in memory (up to
// Options.RecordIndex of them, see index.go), and the values of only the
// records written last, up to Options.RecordCache
// bytes (colstate.State.ShedValues): a node serving a large collection
// would otherwise hold all of it. Get, Snapshot and CatchUp read the
// values the state shed from the stream, where each record's last message
// holds its value, with direct gets of the records' subjects as of the
// state's last sequence (multi_last up to it, which any replica answers
// from its subject index). A record written again since then has no
// message there any more: the state is behind the stream, so the read
// catches up and is made again, from the newer state, keeping the values
// it has read. Snapshots asked for while one is read at the same state
// share its read (see snapshot). The committer reads the values its
// commits replace the same way (see plan). The values each commit
// replaced travel in its log entry (protocol.AppendLogEntry), so that no
// process needs the records to tell its watchers.

// maxValueRounds bounds how often a read catches up with a stream that
// keeps rewriting the records it reads.
const maxValueRounds = 100

// errStaleValues: a record's message as of the state's last sequence is
// gone, written again since: the state is behind the stream.
var errStaleValues = errors.New("records were written again since the state was read")

// heldValue is a record's value read from the stream, at its version in
// history epoch (versions start again in a new one).
type heldValue struct {
	epoch   string
	version uint64
	value   []byte
}

// readValues reads, under c.mu, what read takes from the state (records
// whose shed values are nil, which each visits), and fills those in from
// the stream. When the stream has moved past the state, it catches up and
// reads again.
func readValues[T any](ctx context.Context, c *coll, read func(st *state) (T, error), each func(*T, func(*protocol.Record))) (T, error) {
	var zero T
	var held map[string]heldValue // the values read in earlier rounds
	start := time.Now()
	for round := 0; ; round++ {
		var epoch string
		var upTo uint64
		v, err := locked(c, func(st *state) (T, error) {
			epoch, upTo = st.Epoch, st.lastSeq
			return read(st)
		})
		if err != nil {
			return zero, err
		}
		var need []*protocol.Record
		each(&v, func(r *protocol.Record) {
			if r.Value != nil {
				return
			}
			if h, ok := held[r.ID]; ok && h.epoch == epoch && h.version == r.Version {
				r.Value = h.value
				return
			}
			need = append(need, r)
		})
		if len(need) == 0 {
			return v, nil
		}
		if held == nil {
			held = make(map[string]heldValue, len(need))
		}
		err = c.fetchValues(ctx, epoch, upTo, need, held)
		if err == nil {
			return v, nil
		}
		if err := c.readAgain(ctx, err, round, start, epoch, upTo); err != nil {
			return zero, err
		}
	}
}

// waitMoved waits until the collection's state is past stream sequence
// upTo of epoch, the stream being known to be: for the follower to read
// on or, if it does not within an attempt's time, for it to catch up
// (reloading if it cannot). It returns an error only once ctx is done or
// the store closed; the caller reads the state again either way.
func (c *coll) waitMoved(ctx context.Context, epoch string, upTo uint64) error {
	moved := func() bool {
		return c.st != nil && !c.broken && (c.st.Epoch != epoch || c.st.lastSeq > upTo)
	}
	wait := func(d time.Duration) (bool, error) {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		err := c.waitFor(wctx, moved)
		if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
			return false, err
		}
		return err == nil, nil
	}
	if ok, err := wait(c.s.attempt); ok || err != nil {
		return err
	}
	if err := c.catchUp(ctx, epoch); err != nil && ctx.Err() != nil {
		return err
	}
	_, err := wait(c.s.timeout)
	return err
}

// fetchValues reads the values of recs, records of the state in epoch
// read at stream sequence upTo, from the stream: the last message of each
// one's subject up to upTo, which must be the record's at its version. It
// asks for up to maxMultiLast records a request, valueReaders requests at
// a time. It fills in each value it finds, and adds it to held. It
// returns errStaleValues (wrapped) when a record has no message up to
// upTo any more.
func (c *coll) fetchValues(ctx context.Context, epoch string, upTo uint64, recs []*protocol.Record, held map[string]heldValue) error {
	prefix := c.names.prefix(epoch)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, valueReaders)
	)
	for start := 0; start < len(recs); start += maxMultiLast {
		batch := recs[start:min(len(recs), start+maxMultiLast)]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.fetchBatch(ctx, prefix, upTo, batch); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	c.s.valueReads.Add(uint64(len(recs)))
	for _, r := range recs {
		if r.Value != nil {
			held[r.ID] = heldValue{epoch: epoch, version: r.Version, value: r.Value}
		}
	}
	for _, err := range errs {
		if !errors.Is(err, errStaleValues) {
			return err
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// valueReaders bounds the requests for values one read has under way.
const valueReaders = 4

// fetchBatch reads the values of batch, at most maxMultiLast records, for
// fetchValues, with one request and, for any the answer left out (it may
// end early, at the server's byte bound), another, until an answer brings
// nothing.
func (c *coll) fetchBatch(ctx context.Context, prefix string, upTo uint64, batch []*protocol.Record) error {
	byID := make(map[string]*protocol.Record, len(batch))
	subjects := make([]string, len(batch))
	for i, r := range batch {
		subjects[i] = recordSubject(prefix, r.ID)
		byID[r.ID] = r
	}
	for len(subjects) > 0 {
		var bad error
		rctx, cancel := c.attemptCtx(ctx)
		n, err := c.s.directGet(rctx, c.names.stream, directRequest{MultiLast: subjects, UpToSeq: upTo}, func(m feedMsg) bool {
			var r *protocol.Record
			if r, bad = recordOf(prefix, m, byID); bad == nil {
				r.Value = m.data
				delete(byID, r.ID)
			}
			return bad == nil
		})
		cancel()
		switch {
		case bad != nil:
			return fmt.Errorf("read record values from the stream: %w", bad)
		case err != nil:
			return fmt.Errorf("read record values from the stream: %w", err)
		}
		subjects = subjects[:0]
		for id := range byID {
			subjects = append(subjects, recordSubject(prefix, id))
		}
		if n == 0 && len(subjects) > 0 {
			return fmt.Errorf("%w: %d of them, such as %q", errStaleValues, len(subjects), firstKey(byID))
		}
	}
	return nil
}

// readNeeded reads the records plan p does not know (p.probe) into
// probes and the values it needs (p.need) into vals, for the committer to
// plan again: after a read that found the state behind the stream it
// waits for the state to move on (waitMoved), after another failure it
// waits a moment. It returns an error only once ctx is done or the store
// closed.
func (c *coll) readNeeded(ctx context.Context, p *plan, vals map[string]heldValue, probes map[string]probed, wait *backoff) error {
	err := c.probe(ctx, p.epoch, p.expect, p.asOf, p.probe, probes)
	if err == nil {
		err = c.fetchValues(ctx, p.epoch, p.expect, p.need, vals)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return err
	case errors.Is(err, errStaleValues):
		return c.waitMoved(ctx, p.epoch, p.expect)
	default:
		c.s.log.Debug("natskv: read record values", "collection", c.name, "err", err)
		wait.sleep(ctx)
	}
	return nil
}

// recordOf returns the record of byID that m, a record's message read
// from the stream under prefix, holds the value of.
func recordOf(prefix string, m feedMsg, byID map[string]*protocol.Record) (*protocol.Record, error) {
	id, v, deleted, err := recordMessage(prefix, m)
	if err != nil {
		return nil, err
	}
	r := byID[id]
	switch {
	case r == nil:
		return nil, fmt.Errorf("message %d on %q: a record not asked for", m.seq, m.subj)
	case deleted || v != r.Version:
		// The state read at this sequence has the record at its
		// version: the stream and the state disagree.
		return nil, fmt.Errorf("record %q: the stream holds version %d (deleted: %t) where the state has %d", id, v, deleted, r.Version)
	}
	return r, nil
}

// sharedRead is a snapshot being read, at the state of history epoch read
// at stream sequence upTo or later: the callers who ask for a snapshot
// meanwhile, at that state, get a copy of it (a reconnecting crowd reads
// a large collection's values from the stream once, not once each).
type sharedRead struct {
	epoch  string
	upTo   uint64
	joined int // callers waiting for it (c.smu)
	done   chan struct{}
	snap   protocol.Snapshot
	err    error
}

// snapshot returns the collection's snapshot, its values read from the
// stream where the state shed them, joining a read under way at the
// state it would read.
func (c *coll) snapshot(ctx context.Context) (protocol.Snapshot, error) {
	var epoch string
	var upTo uint64
	for {
		if _, err := locked(c, func(st *state) (struct{}, error) {
			epoch, upTo = st.Epoch, st.lastSeq
			return struct{}{}, nil
		}); err != nil {
			return protocol.Snapshot{}, err
		}
		c.smu.Lock()
		sh := c.reading
		if sh == nil || sh.epoch != epoch || sh.upTo < upTo {
			break
		}
		sh.joined++
		c.smu.Unlock()
		select {
		case <-sh.done:
		case <-ctx.Done():
			return protocol.Snapshot{}, ctx.Err()
		}
		if sh.err == nil {
			return cloneSnapshot(sh.snap), nil
		}
		if !errors.Is(sh.err, context.Canceled) && !errors.Is(sh.err, context.DeadlineExceeded) {
			return protocol.Snapshot{}, sh.err
		}
		// The reader gave up, its context done: read anew.
	}
	// c.smu is held: this caller reads, at the state it saw or later.
	sh := &sharedRead{epoch: epoch, upTo: upTo, done: make(chan struct{})}
	c.reading = sh
	c.smu.Unlock()
	sh.snap, sh.err = c.readSnapshot(ctx)
	c.smu.Lock()
	if c.reading == sh {
		c.reading = nil
	}
	joined := sh.joined
	c.smu.Unlock()
	close(sh.done)
	if sh.err != nil || joined == 0 {
		return sh.snap, sh.err
	}
	return cloneSnapshot(sh.snap), nil
}

// cloneSnapshot returns a deep copy of sn.
func cloneSnapshot(sn protocol.Snapshot) protocol.Snapshot {
	recs := make([]protocol.Record, len(sn.Records))
	for i, r := range sn.Records {
		recs[i] = r.Clone()
	}
	sn.Records = recs
	return sn
}

// eachRecord calls f with each record of rs.
func eachRecord(rs []protocol.Record, f func(*protocol.Record)) {
	for i := range rs {
		f(&rs[i])
	}
}

// firstKey returns a key of m, for messages.
func firstKey[V any](m map[string]V) string {
	for k := range m {
		return k
	}
	return ""
}

// RecordReads returns how many record values Get, Snapshot, CatchUp and
// the committer have read from the stream since Open, being no longer in
// memory (Options.RecordCache).
func (s *Store) RecordReads() uint64 { return s.valueReads.Load() }
