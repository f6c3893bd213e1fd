package pgsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/viewsync/viewsync"
)

// errReload ends a session whose table changed shape (columns added,
// dropped or retyped) or was re-created: the next session loads it again,
// in a new epoch.
var errReload = errors.New("a table changed")

// txn is a PostgreSQL transaction being received: the changes of each
// mapped table it touched, in the order first touched.
type txn struct {
	// final is the LSN of its commit record.
	final   pglogrepl.LSN
	at      time.Time
	order   []*table
	changes map[*table]*changes
}

// changes are one table's part of a transaction: its ops, and whether it
// was truncated (the ops then follow the last TRUNCATE).
type changes struct {
	ops       []viewsync.Op
	truncated bool
	// after holds each id's value after the ops so far (nil: deleted),
	// for unchanged TOAST columns and deletes.
	after map[string][]byte
}

// stream follows the slot until ctx ends or the session fails; its
// applier applies what it receives (see applier.go).
func (ss *session) stream(ctx context.Context) error {
	s := ss.s
	interval := s.opts.StatusInterval
	nextStatus := time.Now().Add(interval)
	var tx *txn
	defer func() {
		if !s.noFinalConfirm.Load() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if ss.confirm(cctx) == nil {
				ss.awaitConfirmed(cctx)
			}
			cancel()
		}
	}()
	// The applier's failure ends the stream; the stream's end stops the
	// applier, once the group it applies is durable, before the final
	// confirmation.
	actx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	ss.ap = startApplier(ctx, s, fail)
	defer ss.ap.stop()
	ctx = actx
	recv := &recvContext{parent: ctx}
	defer recv.stop()
	for {
		if time.Now().After(nextStatus) {
			if err := ss.confirm(ctx); err != nil {
				return err
			}
			if err := ss.checkTables(ctx); err != nil {
				return err
			}
			nextStatus = time.Now().Add(interval)
		}
		raw, err := ss.repl.ReceiveMessage(recv.until(nextStatus))
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("pgsource: receive: %w", err)
		}
		switch m := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("pgsource: stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("pgsource: keepalive: %w", err)
				}
				s.serverEnd.Store(uint64(k.ServerWALEnd))
				if tx == nil && uint64(k.ServerWALEnd) > s.applied.Load() && ss.ap.idle() {
					// Between transactions, with nothing queued,
					// everything before the server's end has been
					// received and applied.
					s.advance(k.ServerWALEnd)
					s.lagNanos.Store(0)
				}
				if k.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("pgsource: xlog data: %w", err)
				}
				if uint64(x.ServerWALEnd) > s.serverEnd.Load() {
					s.serverEnd.Store(uint64(x.ServerWALEnd))
				}
				if tx, err = ss.handle(ctx, tx, x.WALData); err != nil {
					return err
				}
			}
		}
	}
}

// recvContext bounds receives by the next status update: its context is
// made again only when that moves or it expired, not for every message.
type recvContext struct {
	parent   context.Context
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// until returns a context done at deadline.
func (r *recvContext) until(deadline time.Time) context.Context {
	if r.ctx == nil || r.ctx.Err() != nil || !r.deadline.Equal(deadline) {
		r.stop()
		r.ctx, r.cancel = context.WithDeadline(r.parent, deadline)
		r.deadline = deadline
	}
	return r.ctx
}

func (r *recvContext) stop() {
	if r.cancel != nil {
		r.cancel()
	}
}

// confirm tells the server what is durable: every transaction up to the
// applied position. The slot may then free the WAL before it.
func (ss *session) confirm(ctx context.Context) error {
	p := lsn(ss.s.applied.Load())
	if p == 0 {
		return nil
	}
	if err := pglogrepl.SendStandbyStatusUpdate(ctx, ss.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: p}); err != nil {
		return fmt.Errorf("pgsource: confirm %s: %w", p, err)
	}
	return nil
}

// awaitConfirmed waits, until ctx ends, for the slot to hold the
// position the last confirm sent: the server takes a standby status
// update when its sender gets to it, and a session that closed at once
// could leave the next one to replay (and skip) what was confirmed.
func (ss *session) awaitConfirmed(ctx context.Context) {
	want := lsn(ss.s.applied.Load())
	for {
		var got pglogrepl.LSN
		err := ss.conn.QueryRow(ctx, `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1`, ss.s.opts.Slot).Scan(&got)
		if err != nil || got >= want {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// checkTables ends the session when a mapped table was dropped or
// re-created (its OID changed): the next session loads it again.
func (ss *session) checkTables(ctx context.Context) error {
	for _, t := range ss.s.tables {
		var oid uint32
		err := ss.conn.QueryRow(ctx, `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).Scan(&oid)
		if err != nil || oid != t.info.oid {
			return fmt.Errorf("pgsource: table %s was dropped or re-created: %w", t, errReload)
		}
	}
	return nil
}

// handle takes one pgoutput message; tx is the transaction under way.
func (ss *session) handle(ctx context.Context, tx *txn, data []byte) (*txn, error) {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return tx, fmt.Errorf("pgsource: decode: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		return tx, ss.relation(ctx, tx, m)
	case *pglogrepl.BeginMessage:
		return &txn{final: m.FinalLSN, at: m.CommitTime, changes: map[*table]*changes{}}, nil
	case *pglogrepl.InsertMessage:
		return tx, ss.change(ctx, tx, m.RelationID, nil, m.Tuple, false)
	case *pglogrepl.UpdateMessage:
		return tx, ss.change(ctx, tx, m.RelationID, m.OldTuple, m.NewTuple, false)
	case *pglogrepl.DeleteMessage:
		return tx, ss.change(ctx, tx, m.RelationID, m.OldTuple, nil, true)
	case *pglogrepl.TruncateMessage:
		if tx == nil {
			return tx, errors.New("pgsource: TRUNCATE outside a transaction")
		}
		for _, id := range m.RelationIDs {
			if r := ss.rels[id]; r != nil {
				ch := tx.of(r.t)
				ch.ops, ch.truncated, ch.after = nil, true, map[string][]byte{}
			}
		}
		return tx, nil
	case *pglogrepl.CommitMessage:
		if tx == nil {
			return nil, errors.New("pgsource: COMMIT outside a transaction")
		}
		return nil, ss.apply(tx, m)
	}
	return tx, nil
}

// relation takes a Relation message: a table's columns as the following
// changes carry them, sent before its first change in a session and after
// its columns change. tx is the transaction it comes in.
func (ss *session) relation(ctx context.Context, tx *txn, m *pglogrepl.RelationMessage) error {
	for _, t := range ss.s.tables {
		if t.Schema != m.Namespace || t.Name != m.RelationName {
			continue
		}
		if m.RelationID != t.info.oid {
			// Another incarnation of the table: an older one's changes
			// are in the load that followed it; a newer one is found by
			// checkTables, and loaded.
			delete(ss.rels, m.RelationID)
			return nil
		}
		names := make([]string, len(m.Columns))
		oids := make([]uint32, len(m.Columns))
		for i, c := range m.Columns {
			names[i], oids[i] = c.Name, c.DataType
		}
		// A transaction the collection already holds (replayed from
		// before its load) may show older columns.
		held := tx != nil && tx.final < t.pos.LSN
		if cols := columnsOf(names, oids); !held && !slices.Equal(cols, t.pos.Columns) {
			// Rows the change did not touch changed too (a default, a
			// dropped column): only a new load has them right.
			t.reload = true
			return fmt.Errorf("pgsource: table %s's columns changed (%s → %s): %w", t,
				strings.Join(t.pos.Columns, ", "), strings.Join(cols, ", "), errReload)
		}
		r, err := ss.newRelation(ctx, t, names, oids)
		if err != nil {
			return fmt.Errorf("pgsource: %w", err)
		}
		ss.rels[m.RelationID] = r
		return nil
	}
	delete(ss.rels, m.RelationID)
	return nil
}

// of returns t's changes in the transaction.
func (tx *txn) of(t *table) *changes {
	ch := tx.changes[t]
	if ch == nil {
		ch = &changes{after: map[string][]byte{}}
		tx.changes[t] = ch
		tx.order = append(tx.order, t)
	}
	return ch
}

// cells converts a tuple.
func cells(td *pglogrepl.TupleData) []cell {
	if td == nil {
		return nil
	}
	cs := make([]cell, len(td.Columns))
	for i, c := range td.Columns {
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			cs[i].null = true
		case pglogrepl.TupleDataTypeToast:
			cs[i].unchanged = true
		default:
			cs[i].text = string(c.Data)
		}
	}
	return cs
}

// change adds an insert, update or delete to the transaction.
func (ss *session) change(ctx context.Context, tx *txn, relID uint32, oldTuple, newTuple *pglogrepl.TupleData, del bool) error {
	r := ss.rels[relID]
	if r == nil {
		return nil // a table of the publication viewsync does not follow
	}
	if tx == nil {
		return errors.New("pgsource: a change outside a transaction")
	}
	ch := tx.of(r.t)
	oldCells, newCells := cells(oldTuple), cells(newTuple)
	var oldID string
	if oldCells != nil {
		id, err := r.id(oldCells)
		if err != nil {
			return fmt.Errorf("pgsource: %w", err)
		}
		oldID = id
	}
	if del {
		if oldCells == nil {
			return fmt.Errorf("pgsource: table %s: a delete without its key", r.t)
		}
		return ss.remove(ctx, r.t, ch, oldID)
	}
	id, err := r.id(newCells)
	if err != nil {
		return fmt.Errorf("pgsource: %w", err)
	}
	var old map[string][]byte
	for _, c := range newCells {
		if c.unchanged {
			prev := oldID
			if prev == "" {
				prev = id
			}
			if old, err = ss.current(ctx, r.t, ch, prev); err != nil {
				return err
			}
			break
		}
	}
	if oldID != "" && oldID != id { // the key changed: the old record goes
		if err := ss.remove(ctx, r.t, ch, oldID); err != nil {
			return err
		}
	}
	v := r.value(newCells, old)
	ch.ops = append(ch.ops, viewsync.Put(id, v))
	ch.after[id] = v
	return nil
}

// remove deletes id, when the collection has it.
func (ss *session) remove(ctx context.Context, t *table, ch *changes, id string) error {
	v, touched := ch.after[id]
	if !touched {
		if ch.truncated {
			return nil
		}
		var err error
		if v, err = ss.lookup(ctx, t, id); err != nil {
			return err
		}
	}
	if v == nil {
		return nil
	}
	ch.ops = append(ch.ops, viewsync.Delete(id))
	ch.after[id] = nil
	return nil
}

// current returns the columns of the record id as the transaction left
// it so far, or as the collection has it.
func (ss *session) current(ctx context.Context, t *table, ch *changes, id string) (map[string][]byte, error) {
	v, touched := ch.after[id]
	if !touched && !ch.truncated {
		var err error
		if v, err = ss.lookup(ctx, t, id); err != nil {
			return nil, err
		}
	}
	if v == nil {
		ss.s.opts.Logger.Warn("PostgreSQL source: an unchanged TOAST column of a record viewsync lacks; it is null", "collection", t.Collection, "id", id)
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(v, &fields); err != nil {
		return nil, fmt.Errorf("pgsource: %s/%s: %w", t.Collection, id, err)
	}
	old := make(map[string][]byte, len(fields))
	for k, f := range fields {
		old[k] = f
	}
	return old, nil
}

// apply queues a received transaction for the applier: one commit per
// collection it touched (after a drop for a TRUNCATE), each with the
// transaction's end as its position; collections that already hold it
// (their position is past its commit record) skip it.
func (ss *session) apply(tx *txn, m *pglogrepl.CommitMessage) error {
	u := &unit{end: m.TransactionEndLSN, at: tx.at}
	var touched []*table
	for _, t := range tx.order {
		ch := tx.changes[t]
		if m.CommitLSN < t.pos.LSN {
			ss.s.skipped.Add(1)
			continue
		}
		p := position{System: ss.system, OID: t.info.oid, LSN: m.TransactionEndLSN, Loaded: true, Columns: t.pos.Columns}
		if ch.truncated {
			// With ops after it, the drop keeps the old position: a
			// replay after a crash between the two redoes both.
			dp := p
			if len(ch.ops) > 0 {
				dp = t.pos
			}
			u.steps = append(u.steps, step{t: t, drop: true, pos: dp.encode()})
		}
		if len(ch.ops) > 0 {
			u.steps = append(u.steps, step{t: t, ops: ch.ops, pos: p.encode()})
		}
		t.pos = p
		touched = append(touched, t)
	}
	if err := ss.ap.enqueue(u); err != nil {
		return err
	}
	for _, t := range touched {
		ss.note(t, tx.changes[t], u.seq)
	}
	return nil
}
