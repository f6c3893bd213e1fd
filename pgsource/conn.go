package pgsource

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors of Start, for the conditions a deployment must fix.
var (
	// ErrAuth: PostgreSQL refused the credentials (or pg_hba.conf the
	// connection).
	ErrAuth = errors.New("PostgreSQL refused the login")
	// ErrNoReplication: the role lacks the REPLICATION attribute (or
	// pg_hba.conf lacks a replication line for it).
	ErrNoReplication = errors.New("the role may not stream replication")
	// ErrWALLevel: the server's wal_level is not logical.
	ErrWALLevel = errors.New("wal_level is not logical")
	// ErrNoTable: a mapped table does not exist.
	ErrNoTable = errors.New("no such table")
	// ErrNoPrimaryKey: a mapped table has no primary key, which record ids
	// are made of.
	ErrNoPrimaryKey = errors.New("table has no primary key")
	// ErrReplicaIdentity: a mapped table's REPLICA IDENTITY is neither
	// DEFAULT nor FULL, so its deletes would not carry the primary key.
	ErrReplicaIdentity = errors.New("table's replica identity does not carry its primary key")
)

// sessionParams are the settings both connections run with, so that
// every value's text form is the one decode expects, in the snapshot and
// the stream alike.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "iso_8601",
	"bytea_output":       "hex",
	"extra_float_digits": "1",
	"application_name":   "viewsync",
}

// connectSQL opens an ordinary connection.
func connectSQL(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgsource: connection URL: %w", err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(cfg.User, cfg.Host, cfg.Database, err)
	}
	return conn, nil
}

// connectReplication opens a replication connection (replication=database).
func connectReplication(ctx context.Context, url string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgsource: connection URL: %w", err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(cfg.User, cfg.Host, cfg.Database, err)
	}
	return conn, nil
}

// connectError says what a failed connection means.
func connectError(user, host, db string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return fmt.Errorf("pgsource: connect to PostgreSQL at %s as %s: %w: %s (check the user and password of the URL, and pg_hba.conf)", host, user, ErrAuth, pe.Message)
		case "42501":
			return fmt.Errorf("pgsource: connect to PostgreSQL at %s as %s: %w: %s (ALTER ROLE %s REPLICATION)", host, user, ErrNoReplication, pe.Message, user)
		}
	}
	return fmt.Errorf("pgsource: connect to PostgreSQL at %s (database %s) as %s: %w", host, db, user, err)
}

// tableInfo is what the catalog says of a mapped table.
type tableInfo struct {
	oid uint32
	// key holds the primary key's column names, in the key's order.
	key []string
}

// check verifies what streaming needs of the server and the role, and
// returns what the catalog says of each table.
func check(ctx context.Context, conn *pgx.Conn, tables []Table) ([]tableInfo, error) {
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return nil, fmt.Errorf("pgsource: read wal_level: %w", err)
	}
	if level != "logical" {
		return nil, fmt.Errorf("pgsource: %w: it is %s; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL", ErrWALLevel, level)
	}
	var user string
	var repl bool
	if err := conn.QueryRow(ctx, "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&user, &repl); err != nil {
		return nil, fmt.Errorf("pgsource: read the role's attributes: %w", err)
	}
	if !repl {
		return nil, fmt.Errorf("pgsource: %w: role %s has no REPLICATION attribute (ALTER ROLE %s REPLICATION)", ErrNoReplication, user, user)
	}
	infos := make([]tableInfo, len(tables))
	for i, t := range tables {
		info, err := describe(ctx, conn, t)
		if err != nil {
			return nil, err
		}
		infos[i] = info
	}
	return infos, nil
}

// describe reads a table's OID and primary key, and checks its replica
// identity.
func describe(ctx context.Context, conn *pgx.Conn, t Table) (tableInfo, error) {
	var info tableInfo
	var ident string
	err := conn.QueryRow(ctx, `SELECT c.oid, c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&info.oid, &ident)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, fmt.Errorf("pgsource: table %s: %w", t, ErrNoTable)
	}
	if err != nil {
		return info, fmt.Errorf("pgsource: table %s: %w", t, err)
	}
	rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord`, info.oid)
	if err != nil {
		return info, fmt.Errorf("pgsource: table %s: primary key: %w", t, err)
	}
	info.key, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return info, fmt.Errorf("pgsource: table %s: primary key: %w", t, err)
	}
	if len(info.key) == 0 {
		return info, fmt.Errorf("pgsource: table %s: %w: its rows' primary key is the records' ids (ALTER TABLE %s ADD PRIMARY KEY (…))", t, ErrNoPrimaryKey, t)
	}
	if ident != "d" && ident != "f" {
		return info, fmt.Errorf("pgsource: table %s: %w (ALTER TABLE %s REPLICA IDENTITY DEFAULT)", t, ErrReplicaIdentity, t)
	}
	return info, nil
}

// quoteTable returns the table's name quoted for SQL.
func quoteTable(t Table) string {
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

// ensurePublication creates the publication with the tables, or adds to
// it the tables it lacks.
func ensurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []Table) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgsource: publication %s: %w", name, err)
	}
	if !exists {
		list := make([]string, len(tables))
		for i, t := range tables {
			list[i] = quoteTable(t)
		}
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+name+" FOR TABLE "+strings.Join(list, ", ")); err != nil {
			return fmt.Errorf("pgsource: create publication %s: %w", name, err)
		}
		return nil
	}
	for _, t := range tables {
		var in bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
			name, t.Schema, t.Name).Scan(&in); err != nil {
			return fmt.Errorf("pgsource: publication %s: %w", name, err)
		}
		if !in {
			if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+name+" ADD TABLE "+quoteTable(t)); err != nil {
				return fmt.Errorf("pgsource: add %s to publication %s: %w", t, name, err)
			}
		}
	}
	return nil
}

// ensureSlot creates the persistent slot unless it exists; created tells
// which.
func ensureSlot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, name string) (created bool, err error) {
	var plugin string
	err = conn.QueryRow(ctx, "SELECT coalesce(plugin, '') FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()", name).Scan(&plugin)
	switch {
	case err == nil:
		if plugin != "pgoutput" {
			return false, fmt.Errorf("pgsource: replication slot %s exists with plugin %q, not pgoutput: drop it or name another (--pg-slot)", name, plugin)
		}
		return false, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return false, fmt.Errorf("pgsource: replication slot %s: %w", name, err)
	}
	if _, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"}); err != nil {
		return false, fmt.Errorf("pgsource: create replication slot %s: %w", name, err)
	}
	return true, nil
}
