package pgsource

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/viewsync/viewsync"
)

// session is one connection's life: checks, publication and slot, the
// loads the collections need, then the stream until it fails or the
// source stops.
type session struct {
	s      *Source
	conn   *pgx.Conn
	repl   *pgconn.PgConn
	system string
	// types caches the catalog's answers (typeOf).
	types map[uint32]*pgType
	// rels maps the stream's relation ids to the mapped tables' shapes;
	// a relation not mapped has none.
	rels map[uint32]*relation
	// ap applies the stream's transactions; pending holds, per table,
	// what those queued and not yet applied wrote (see applier.go).
	ap      *applier
	pending map[*table]*pending
}

// session runs one session. streamed tells whether it reached the stream.
func (s *Source) session(ctx context.Context) (streamed bool, err error) {
	o := &s.opts
	ss := &session{s: s, types: map[uint32]*pgType{}, rels: map[uint32]*relation{}, pending: map[*table]*pending{}}
	if ss.conn, err = connectSQL(ctx, o.URL); err != nil {
		return false, err
	}
	defer ss.conn.Close(context.WithoutCancel(ctx))
	infos, err := check(ctx, ss.conn, o.Tables)
	if err != nil {
		return false, err
	}
	if err := ensurePublication(ctx, ss.conn, o.Publication, o.Tables); err != nil {
		return false, err
	}
	if ss.repl, err = connectReplication(ctx, o.URL); err != nil {
		return false, err
	}
	defer ss.repl.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, ss.repl)
	if err != nil {
		return false, fmt.Errorf("pgsource: identify system: %w", err)
	}
	ss.system = sys.SystemID
	created, err := ensureSlot(ctx, ss.conn, ss.repl, o.Slot)
	if err != nil {
		return false, err
	}
	if created {
		o.Logger.Info("PostgreSQL source: created replication slot", "slot", o.Slot)
	}

	// A collection loads (again) when it holds no complete load of this
	// table in this cluster through this slot.
	var load []*table
	for i, t := range s.tables {
		t.info = infos[i]
		raw, err := t.feed.Position(ctx)
		if err != nil {
			return false, err
		}
		p, ok, err := decodePosition(raw)
		if err != nil {
			o.Logger.Warn("PostgreSQL source: unreadable position; loading again", "collection", t.Collection, "err", err)
		}
		if created || t.reload || !ok || !p.Loaded || p.OID != t.info.oid || p.System != ss.system {
			load = append(load, t)
			continue
		}
		t.pos = p
	}
	if len(load) > 0 {
		s.setState(fmt.Errorf("PostgreSQL source: loading %d table(s)", len(load)))
		s.setLoading(true)
		err := ss.snapshot(ctx, load)
		s.setLoading(false)
		if err != nil {
			return false, err
		}
	}

	err = pglogrepl.StartReplication(ctx, ss.repl, o.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '" + o.Publication + "'"},
	})
	if err != nil {
		return false, fmt.Errorf("pgsource: start replication on slot %s: %w", o.Slot, err)
	}
	s.connected.Store(true)
	s.setState(nil)
	o.Logger.Info("PostgreSQL source: streaming", "slot", o.Slot, "publication", o.Publication, "tables", len(s.tables))
	return true, ss.stream(ctx)
}

// snapshot loads tables from a snapshot consistent with the stream: a
// temporary slot's exported snapshot, made after the persistent slot, so
// that the stream holds every transaction after it; each collection's
// position becomes the snapshot's consistent point, and the stream's
// transactions before it are skipped for those collections.
func (ss *session) snapshot(ctx context.Context, tables []*table) error {
	o := &ss.s.opts
	repl, err := connectReplication(ctx, o.URL)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, o.Slot+"_snapshot", "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication,
	})
	if err != nil {
		return fmt.Errorf("pgsource: create the snapshot's temporary slot: %w", err)
	}
	cp, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("pgsource: snapshot's consistent point: %w", err)
	}
	tx, err := ss.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("pgsource: begin the snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(res.SnapshotName, "'", "''")+"'"); err != nil {
		return fmt.Errorf("pgsource: use the exported snapshot: %w", err)
	}
	for _, t := range tables {
		n, err := ss.load(ctx, tx, t, position{System: ss.system, OID: t.info.oid, LSN: cp})
		if err != nil {
			return fmt.Errorf("pgsource: load %s: %w", t, err)
		}
		o.Logger.Info("PostgreSQL source: loaded table", "table", t.String(), "collection", t.Collection, "rows", n, "lsn", cp.String())
	}
	return nil
}

// load replaces t's collection with the table as the snapshot shows it:
// a drop (a new epoch) whose position says loading, then commits of
// SnapshotBatch rows, the last one's position loaded at pos.LSN.
func (ss *session) load(ctx context.Context, tx pgx.Tx, t *table, pos position) (int, error) {
	rows, err := tx.Query(ctx, `SELECT attname, atttypid FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, t.info.oid)
	if err != nil {
		return 0, err
	}
	var names []string
	var oids []uint32
	for rows.Next() {
		var n string
		var oid uint32
		if err := rows.Scan(&n, &oid); err != nil {
			rows.Close()
			return 0, err
		}
		names, oids = append(names, n), append(oids, oid)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	rel, err := ss.newRelation(ctx, t, names, oids)
	if err != nil {
		return 0, err
	}
	pos.Columns = columnsOf(names, oids)
	list := make([]string, len(names))
	for i, n := range names {
		list[i] = pgx.Identifier{n}.Sanitize()
	}
	rr := tx.Conn().PgConn().ExecParams(ctx, "SELECT "+strings.Join(list, ", ")+" FROM "+quoteTable(t.Table), nil, nil, nil, nil)
	batch := ss.s.opts.SnapshotBatch
	next := func() ([]viewsync.Op, error) {
		var ops []viewsync.Op
		cells := make([]cell, len(names))
		for len(ops) < batch && rr.NextRow() {
			for i, v := range rr.Values() {
				cells[i] = cell{text: string(v), null: v == nil}
			}
			id, err := rel.id(cells)
			if err != nil {
				return nil, err
			}
			ops = append(ops, viewsync.Put(id, rel.value(cells, nil)))
		}
		return ops, nil
	}
	total := 0
	cur, err := next()
	if err == nil && len(cur) == 0 {
		pos.Loaded = true
		_, err = t.feed.Drop(ctx, pos.encode())
	} else if err == nil {
		_, err = t.feed.Drop(ctx, pos.encode()) // loading
	}
	for err == nil && len(cur) > 0 {
		var nxt []viewsync.Op
		if nxt, err = next(); err != nil {
			break
		}
		p := pos
		p.Loaded = len(nxt) == 0
		if _, err = t.feed.Commit(ctx, cur, p.encode()); err != nil {
			break
		}
		total += len(cur)
		ss.s.snapshotRows.Add(uint64(len(cur)))
		cur = nxt
	}
	if _, cerr := rr.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return total, err
	}
	pos.Loaded = true
	t.pos = pos
	t.reload = false
	ss.rels = map[uint32]*relation{} // the stream describes every relation again
	return total, nil
}
