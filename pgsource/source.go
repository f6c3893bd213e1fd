package pgsource

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/viewsync/viewsync"
)

// Source feeds collections of a hub from PostgreSQL tables. Make one with
// Start; Close stops it.
type Source struct {
	opts   Options
	hub    *viewsync.Hub
	tables []*table

	cancel context.CancelFunc
	done   chan struct{}

	// mu guards state.
	mu    sync.Mutex
	state error // nil while streaming; why not otherwise

	connected    atomic.Bool
	applied      atomic.Uint64 // pglogrepl.LSN of the last transaction handled; set by advance
	loading      atomic.Bool   // a table is being loaded (again)
	serverEnd    atomic.Uint64 // the server's WAL end, as last reported
	lagNanos     atomic.Int64
	transactions atomic.Uint64
	skipped      atomic.Uint64
	reconnects   atomic.Uint64
	snapshotRows atomic.Uint64

	// waitCh is closed, and replaced, when applied or loading changes:
	// Await waits on it. waitMu guards it (and nothing else).
	waitMu sync.Mutex
	waitCh chan struct{}

	// noFinalConfirm makes the source stop without confirming its last
	// position, as a crash would (tests).
	noFinalConfirm atomic.Bool
}

// table is a mapped table, its feed and what the source knows of it.
type table struct {
	Table
	feed *viewsync.Feed
	coll *viewsync.Collection
	info tableInfo
	// pos is the collection's position: what it holds.
	pos position
	// reload asks the next session to load the table again: its columns
	// changed.
	reload bool
}

// errNotYet is the readiness of a source before its first session streams.
var errNotYet = errors.New("PostgreSQL source: connecting")

// Start checks what streaming needs — the credentials, the REPLICATION
// attribute, wal_level = logical, each table, its primary key and replica
// identity — failing at once with an error that says what to fix (ErrAuth,
// ErrNoReplication, ErrWALLevel, ErrNoTable, ErrNoPrimaryKey,
// ErrReplicaIdentity), makes each table's collection fed (Hub.Feed: the
// hub's store must implement store.Positions), then loads and streams in
// the background until Close, reconnecting with backoff after any
// failure. Ready tells when it streams.
func Start(ctx context.Context, hub *viewsync.Hub, opts *Options) (*Source, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	conn, err := connectSQL(ctx, o.URL)
	if err != nil {
		return nil, err
	}
	_, err = check(ctx, conn, o.Tables)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	repl, err := connectReplication(ctx, o.URL)
	if err != nil {
		return nil, err
	}
	repl.Close(context.WithoutCancel(ctx))

	s := &Source{opts: o, hub: hub, state: errNotYet, done: make(chan struct{}), waitCh: make(chan struct{})}
	for _, t := range o.Tables {
		feed, err := hub.Feed(t.Collection, "PostgreSQL table "+t.String(), "write to the table")
		if err == nil {
			var coll *viewsync.Collection
			if coll, err = hub.Collection(t.Collection); err == nil {
				s.tables = append(s.tables, &table{Table: t, feed: feed, coll: coll})
				continue
			}
			feed.Close()
		}
		s.closeFeeds()
		return nil, fmt.Errorf("pgsource: collection %s: %w", t.Collection, err)
	}
	if err := hub.AddSource(o.Name, s, &viewsync.SourceOptions{AwaitTimeout: o.AwaitTimeout}); err != nil {
		s.closeFeeds()
		return nil, fmt.Errorf("pgsource: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(runCtx)
	return s, nil
}

// Ready returns nil while the source streams (its tables loaded), else
// why not: connecting, loading, or the last failure while it reconnects.
func (s *Source) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// setState records the source's readiness.
func (s *Source) setState(err error) {
	s.mu.Lock()
	s.state = err
	s.mu.Unlock()
}

// Close stops the source: it confirms its last durable position to
// PostgreSQL, closes its connections, ends the feeds (the collections
// may be written by others again) and leaves the hub's sources (Await
// returns). The slot stays, and keeps WAL for the
// source's next start; see docs/postgres.md to remove it.
func (s *Source) Close() error {
	s.cancel()
	<-s.done
	s.closeFeeds()
	s.hub.RemoveSource(s.opts.Name, s)
	return nil
}

func (s *Source) closeFeeds() {
	for _, t := range s.tables {
		t.feed.Close()
	}
}

// Stats are a source's figures, for metrics.
type Stats struct {
	// Slot is the replication slot's name.
	Slot string
	// Connected tells whether the source streams now.
	Connected bool
	// LagBytes is how far the server's WAL is ahead of what the source
	// made durable (and confirms), in bytes: WAL the slot keeps.
	LagBytes uint64
	// LagSeconds is the time from the latest applied transaction's commit
	// in PostgreSQL to its being durable in viewsync; 0 while caught up.
	LagSeconds float64
	// Transactions counts the transactions applied (one commit per
	// collection each); Skipped those already held (replayed after a
	// restart).
	Transactions, Skipped uint64
	// Reconnects counts the sessions that failed and were retried.
	Reconnects uint64
	// SnapshotRows counts the rows of initial loads.
	SnapshotRows uint64
}

// Stats returns the source's figures now.
func (s *Source) Stats() Stats {
	applied, end := s.applied.Load(), s.serverEnd.Load()
	var lag uint64
	if end > applied && applied > 0 {
		lag = end - applied
	}
	return Stats{
		Slot:         s.opts.Slot,
		Connected:    s.connected.Load(),
		LagBytes:     lag,
		LagSeconds:   time.Duration(s.lagNanos.Load()).Seconds(),
		Transactions: s.transactions.Load(),
		Skipped:      s.skipped.Load(),
		Reconnects:   s.reconnects.Load(),
		SnapshotRows: s.snapshotRows.Load(),
	}
}

// run runs sessions until ctx ends, waiting between failures.
func (s *Source) run(ctx context.Context) {
	defer close(s.done)
	log := s.opts.Logger
	backoff := s.opts.MinBackoff
	for {
		streamed, err := s.session(ctx)
		s.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errReload) {
			// A table changed shape or was re-created: the next
			// session loads it again, at once.
			log.Info("PostgreSQL source: loading a table again", "why", err)
			s.setState(fmt.Errorf("PostgreSQL source: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.opts.MinBackoff):
			}
			continue
		}
		if streamed {
			backoff = s.opts.MinBackoff
		}
		s.reconnects.Add(1)
		s.setState(fmt.Errorf("PostgreSQL source: %w (reconnecting)", err))
		log.Warn("PostgreSQL source: session ended; reconnecting", "err", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = time.Duration(math.Min(float64(2*backoff), float64(s.opts.MaxBackoff)))
	}
}

// lsn converts an LSN for the atomics.
func lsn(v uint64) pglogrepl.LSN { return pglogrepl.LSN(v) }
