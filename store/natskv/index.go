package natskv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/internal/colstate"
)

// An open collection keeps the ids and versions of at most
// Options.RecordIndex records in memory, those written last
// (colstate.State.ShedRecords): the state's IndexFloor is the newest
// version it shed, and every record of a later version is in memory. For
// the others the stream is the index, where each record's subject holds
// its last message:
//   - Get of a record the state does not know reads its subject's last
//     message (probe), and so does the committer for the records its
//     commits check or replace (see plan);
//   - Snapshot, and a CatchUp from below IndexFloor, read every record
//     message of the collection up to the state's last sequence, in
//     stream order, with an ordered consumer (scanRecords), and lay over
//     them what the state holds of the commits made since (overlay).

// probed is what the stream holds of a record the state does not know,
// read at the state of history epoch at version asOf.
type probed struct {
	epoch   string
	asOf    uint64
	exists  bool
	version uint64
	value   []byte
}

// valid reports whether p still tells of its record at st, which does
// not know the record: a write of it since p was read would be known
// (its version above asOf and IndexFloor not).
func (p probed) valid(st *state) bool { return p.epoch == st.Epoch && st.IndexFloor() <= p.asOf }

// probe reads into into what the stream holds of records ids for the
// state of history epoch at version asOf, read at stream sequence upTo:
// each subject's last message, up to maxMultiLast of them a request. It
// returns errStaleValues (wrapped) when a record's last message is past
// upTo: the state is behind the stream.
func (c *coll) probe(ctx context.Context, epoch string, upTo, asOf uint64, ids []string, into map[string]probed) error {
	prefix := c.names.prefix(epoch)
	for start := 0; start < len(ids); start += maxMultiLast {
		batch := ids[start:min(len(ids), start+maxMultiLast)]
		left := make(map[string]bool, len(batch))
		for _, id := range batch {
			left[id] = true
		}
		for len(left) > 0 {
			subjects := make([]string, 0, len(left))
			for id := range left {
				subjects = append(subjects, recordSubject(prefix, id))
			}
			var bad error
			rctx, cancel := c.attemptCtx(ctx)
			_, pending, err := c.s.directGetPending(rctx, c.names.stream, directRequest{MultiLast: subjects}, func(m feedMsg) bool {
				var id string
				var p probed
				if id, p, bad = probeOf(prefix, m, upTo); bad == nil {
					p.epoch, p.asOf = epoch, asOf
					into[id] = p
					delete(left, id)
				}
				return bad == nil
			})
			cancel()
			switch {
			case bad != nil:
				return fmt.Errorf("read records from the stream: %w", bad)
			case err != nil:
				return fmt.Errorf("read records from the stream: %w", err)
			}
			if pending == 0 {
				break // the answer was whole: the others have no message
			}
		}
		for id := range left {
			into[id] = probed{epoch: epoch, asOf: asOf}
		}
	}
	c.s.valueReads.Add(uint64(len(ids)))
	return nil
}

// probeOf returns the record id and what m, its last message under
// prefix, tells of it as of stream sequence upTo.
func probeOf(prefix string, m feedMsg, upTo uint64) (string, probed, error) {
	id, version, deleted, err := recordMessage(prefix, m)
	switch {
	case err != nil:
		return "", probed{}, err
	case m.seq > upTo:
		return "", probed{}, fmt.Errorf("%w: %q at sequence %d, past %d", errStaleValues, id, m.seq, upTo)
	case deleted:
		return id, probed{}, nil
	}
	return id, probed{exists: true, version: version, value: m.data}, nil
}

// scanBuffer is how many record messages a scan asks the server for at
// a time.
const scanBuffer = 4096

// scanPatience is how many times Options.Timeout a read waits for scans
// to succeed again: long enough for the cluster to elect a meta leader,
// which makes their consumers.
const scanPatience = 3

// scanInactive is how long the server keeps a scan's consumer once its
// reader is gone without deleting it.
const scanInactive = 30 * time.Second

// scanRecords passes take every record message of the collection's
// history epoch up to stream sequence upTo, tombstones included, in
// stream order, read with an ordered consumer; upTo is where the state of
// version asOf was read, the end of commit asOf's batch. take gets the
// message's data to keep.
//
// The consumer's server may hold less of the stream than the state was
// read from (a replica catching up after a restart): the scan ends only
// once it has seen the message at upTo, the last of commit asOf's log
// entry, which its filter takes too, not when the server has nothing
// more for it.
func (c *coll) scanRecords(ctx context.Context, epoch string, upTo, asOf uint64, take func(m feedMsg) error) error {
	prefix := c.names.prefix(epoch)
	// Making a consumer needs the cluster's meta leader: an attempt's
	// time, so that the caller tries again meanwhile (see readScanned).
	actx, cancel := c.attemptCtx(ctx)
	cons, err := c.s.js.OrderedConsumer(actx, c.names.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{prefix + "r.>", fmt.Sprintf("%sc.%d.>", prefix, asOf)},
		InactiveThreshold: scanInactive,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("read the records from the stream: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(scanBuffer))
	if err != nil {
		return fmt.Errorf("read the records from the stream: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer func() {
		stop()
		it.Stop()
		c.deleteScan(cons)
	}()
	records := prefix + "r."
	for {
		m, err := it.Next(jetstream.NextMaxWait(c.s.timeout))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read the records from the stream up to sequence %d: %w", upTo, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read the records from the stream: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > upTo {
			return nil
		}
		if strings.HasPrefix(m.Subject(), records) {
			c.s.scanReads.Add(1)
			if err := take(feedMsg{subj: m.Subject(), hdr: m.Headers(), data: m.Data(), seq: seq}); err != nil {
				return err
			}
		}
		if seq == upTo {
			return nil
		}
	}
}

// deleteScan deletes a scan's consumer, in the background: the server
// would after scanInactive anyway.
func (c *coll) deleteScan(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	c.s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.attempt)
		defer cancel()
		_ = c.s.js.DeleteConsumer(ctx, c.names.stream, info.Name)
	})
}

// errRescan: the state shed records written since a scan's state, which
// the scan cannot do without: it is to be made again.
var errRescan = errors.New("records written since the scan were shed")

// scanned is what a scan read of a record: its version and, unless a
// tombstone, its value.
type scanned struct {
	version uint64
	value   []byte
	deleted bool
}

// scanState scans the records of the state of history epoch at version
// asOf, read at stream sequence upTo, keeping those of versions above after:
// tombstones too with keepTombs.
func (c *coll) scanState(ctx context.Context, epoch string, upTo, asOf, after uint64, keepTombs bool) (map[string]scanned, error) {
	prefix := c.names.prefix(epoch)
	recs := make(map[string]scanned)
	err := c.scanRecords(ctx, epoch, upTo, asOf, func(m feedMsg) error {
		id, version, deleted, err := recordMessage(prefix, m)
		switch {
		case err != nil:
			return err
		case version <= after || deleted && !keepTombs:
			delete(recs, id) // an older message of it read before
		default:
			recs[id] = scanned{version: version, value: m.data, deleted: deleted}
		}
		return nil
	})
	return recs, err
}

// overlay returns the records of recs, a scan of the state at version
// asOf, as they are in st, later in the same history: those written
// since (in memory, st's IndexFloor being at most asOf) replace them,
// and those deleted since are left out, listed in deleted unless
// tombstones is false. It returns errRescan when st shed records of
// versions above asOf.
func overlay(st *state, asOf uint64, recs map[string]scanned, tombstones bool) (records []protocol.Record, deleted []string, err error) {
	if st.IndexFloor() > asOf {
		return nil, nil, errRescan
	}
	since, err := st.CatchUp(asOf)
	if err != nil {
		// Deletions since the scan were forgotten (their tombstones
		// purged): the scan may hold records no longer there.
		return nil, nil, errRescan
	}
	over := make(map[string]bool, len(since.Records)+len(since.Deleted))
	for _, r := range since.Records {
		over[r.ID] = true
	}
	for _, id := range since.Deleted {
		over[id] = true
	}
	records = make([]protocol.Record, 0, len(recs)+len(since.Records))
	deleted = []string{}
	for id, r := range recs {
		switch {
		case over[id]:
		case r.deleted:
			if tombstones {
				deleted = append(deleted, id)
			}
		default:
			records = append(records, protocol.Record{ID: id, Version: r.version, Value: r.value})
		}
	}
	records = append(records, since.Records...)
	if tombstones {
		deleted = append(deleted, since.Deleted...)
	}
	return records, deleted, nil
}

// scanAt is a scan of the records of the state of history epoch at
// version asOf, read at stream sequence upTo; end is the collection's
// last sequence once it was read, which a state must have reached to lay
// itself over the scan: a record rewritten during the scan may be
// missing from it, written since.
type scanAt struct {
	epoch           string
	upTo, asOf, end uint64
	recs            map[string]scanned
}

// errBehindScan: the state has not reached the end of the scan it would
// lay itself over.
var errBehindScan = errors.New("the state is behind the scan")

// readScanned is readValues for a read that needs records the state may
// have shed the index entries of: read returns errRescan to have them
// scanned (those above after, tombstones too with tombs), at the state
// it was given, and is then given the scan with a later state of the
// same history.
func readScanned[T any](ctx context.Context, c *coll, after uint64, tombs bool, read func(st *state, sc *scanAt) (T, error), each func(*T, func(*protocol.Record))) (T, error) {
	var zero T
	var sc *scanAt
	var want scanAt
	// The state keeps the index entries of what is written during a scan
	// until it is laid over it.
	unpin := func() {}
	defer func() { unpin() }()
	var failing time.Time // since when the scans fail
	for round := 0; ; round++ {
		v, err := readValues(ctx, c, func(st *state) (T, error) {
			if sc != nil && sc.epoch != st.Epoch {
				sc = nil
			}
			if sc != nil && st.lastSeq < sc.end {
				return zero, errBehindScan
			}
			v, err := read(st, sc)
			if errors.Is(err, errRescan) {
				sc, want = nil, scanAt{epoch: st.Epoch, upTo: st.lastSeq, asOf: st.Version}
				unpin()
				unpin = c.pin(st.Version)
			}
			return v, err
		}, each)
		switch {
		case errors.Is(err, errBehindScan):
			if err := c.waitMoved(ctx, sc.epoch, sc.end-1); err != nil {
				return zero, err
			}
			continue
		case !errors.Is(err, errRescan):
			return v, err
		case round == maxValueRounds:
			return zero, fmt.Errorf("%w: %d scans in a row", err, round+1)
		}
		recs, err := c.scanState(ctx, want.epoch, want.upTo, want.asOf, after, tombs)
		if err == nil {
			var si streamInfo
			ictx, cancel := c.attemptCtx(ctx)
			si, err = c.find(ictx)
			cancel()
			if err == nil && si.epoch != want.epoch {
				sc = nil
				continue // replaced: scan the new history
			}
			want.end = si.lastSeq
		}
		if err != nil {
			// NATS did not answer, or made no consumer (its meta
			// leader is being elected, say): try again for as long as
			// a request may take.
			if failing.IsZero() {
				failing = time.Now()
			}
			if ctx.Err() != nil || time.Since(failing) > scanPatience*c.s.timeout {
				return zero, err
			}
			c.s.log.Debug("natskv: scan records", "collection", c.name, "err", err)
			sleep(ctx, jitter(retryDelay))
			continue
		}
		done := want
		done.recs = recs
		sc = &done
	}
}

// readSnapshot returns the collection's snapshot, reading from the stream
// what the state shed: values, or every record when the state shed index
// entries.
func (c *coll) readSnapshot(ctx context.Context) (protocol.Snapshot, error) {
	return readScanned(ctx, c, 0, false, func(st *state, sc *scanAt) (protocol.Snapshot, error) {
		if st.IndexFloor() == 0 {
			return st.Snapshot(), nil
		}
		if sc == nil {
			return protocol.Snapshot{}, errRescan
		}
		records, _, err := overlay(st, sc.asOf, sc.recs, false)
		if err != nil {
			return protocol.Snapshot{}, err
		}
		slices.SortFunc(records, func(a, b protocol.Record) int { return strings.Compare(a.ID, b.ID) })
		return protocol.Snapshot{Epoch: st.Epoch, Version: st.Version, Records: records}, nil
	}, func(sn *protocol.Snapshot, f func(*protocol.Record)) { eachRecord(sn.Records, f) })
}

// readCatchUp returns the collection's catch-up from version after,
// reading from the stream what the state shed: values, or the records
// from after on when the state shed index entries of those.
func (c *coll) readCatchUp(ctx context.Context, after uint64) (protocol.CatchUp, error) {
	return readScanned(ctx, c, after, true, func(st *state, sc *scanAt) (protocol.CatchUp, error) {
		cu, err := st.CatchUp(after)
		switch {
		case !errors.Is(err, colstate.ErrIndexShed):
			return cu, err
		case sc == nil:
			return protocol.CatchUp{}, errRescan
		}
		records, deleted, err := overlay(st, sc.asOf, sc.recs, true)
		if err != nil {
			return protocol.CatchUp{}, err
		}
		slices.SortFunc(records, func(a, b protocol.Record) int {
			return cmp.Or(cmp.Compare(a.Version, b.Version), strings.Compare(a.ID, b.ID))
		})
		return protocol.CatchUp{Epoch: st.Epoch, Version: st.Version, Compacted: true, Records: records, Deleted: deleted}, nil
	}, func(cu *protocol.CatchUp, f func(*protocol.Record)) { eachRecord(cu.Records, f) })
}

// errNotIndexed: the state does not know the record read.
var errNotIndexed = errors.New("the record's index entry was shed")

// get returns record id, reading from the stream what the state shed:
// its value, or the record when the state does not know it.
func (c *coll) get(ctx context.Context, id string) (protocol.Record, error) {
	start := time.Now()
	for round := 0; ; round++ {
		var epoch string
		var upTo, asOf uint64
		r, err := readValues(ctx, c, func(st *state) (protocol.Record, error) {
			if r, ok := st.Get(id); ok {
				return r, nil
			}
			if _, _, known := st.Lookup(id); known {
				return protocol.Record{}, store.ErrNotFound
			}
			epoch, upTo, asOf = st.Epoch, st.lastSeq, st.Version
			return protocol.Record{}, errNotIndexed
		}, func(r *protocol.Record, f func(*protocol.Record)) { f(r) })
		if !errors.Is(err, errNotIndexed) {
			return r, err
		}
		got := make(map[string]probed, 1)
		err = c.probe(ctx, epoch, upTo, asOf, []string{id}, got)
		if err == nil {
			p := got[id]
			if !p.exists {
				return protocol.Record{}, store.ErrNotFound
			}
			return protocol.Record{ID: id, Version: p.version, Value: p.value}, nil
		}
		if err := c.readAgain(ctx, err, round, start, epoch, upTo); err != nil {
			return protocol.Record{}, err
		}
	}
}

// readAgain decides what a read that failed with err in round does: it
// returns nil, once it is worth reading again, or the error to fail
// with. After a read that found the state of epoch read at stream
// sequence upTo behind the stream, it waits for the state to move on
// (waitMoved); after one NATS did not answer, it waits a moment, for as
// long as a request may take since start.
func (c *coll) readAgain(ctx context.Context, err error, round int, start time.Time, epoch string, upTo uint64) error {
	switch {
	case round == maxValueRounds:
		return fmt.Errorf("%w: %d reads in a row", err, round+1)
	case !errors.Is(err, errStaleValues):
		if ctx.Err() != nil || time.Since(start) > c.s.timeout {
			return err
		}
		c.s.log.Debug("natskv: read records", "collection", c.name, "err", err)
		sleep(ctx, jitter(retryDelay))
		return nil
	}
	return c.waitMoved(ctx, epoch, upTo)
}

// pin keeps the collection's state from shedding the index entries of
// records written after version v, until the returned function is
// called: a read made at the state of version v (a scan, the committer's
// probes) stays good for as long as it is needed, however many records
// are written meanwhile. It is called with c.mu held, for reading at
// least, at the state of version v or later.
func (c *coll) pin(v uint64) (unpin func()) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.pins == nil {
		c.pins = make(map[uint64]int)
	}
	c.pins[v]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.pmu.Lock()
			defer c.pmu.Unlock()
			if c.pins[v]--; c.pins[v] == 0 {
				delete(c.pins, v)
			}
		})
	}
}

// pinFloor returns the oldest version pinned, math.MaxUint64 when none is.
func (c *coll) pinFloor() uint64 {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	low := uint64(math.MaxUint64)
	for v := range c.pins {
		low = min(low, v)
	}
	return low
}

// RecordsScanned returns how many record messages Snapshot and CatchUp
// have read from the stream since Open, by sequence, for collections
// whose record index was shed (Options.RecordIndex).
func (s *Store) RecordsScanned() uint64 { return s.scanReads.Load() }
