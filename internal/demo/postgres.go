package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// The demo's table in PostgreSQL, which a source (package pgsource) feeds
// the collection Collection from.
const (
	TableSchema = "public"
	TableName   = "products"
)

// TableSQL creates the demo's table when missing: a product per row, its
// record's value the row — {"id", "name", "description", "price",
// "category", "rev"} — and rev bumped by a trigger on every update,
// whoever makes it, so that a write can require the row to be as a
// client saw it (see Postgres).
const TableSQL = `CREATE TABLE IF NOT EXISTS public.products (
	id text PRIMARY KEY,
	name text NOT NULL CHECK (name <> ''),
	description text NOT NULL DEFAULT '',
	price numeric(12,2) NOT NULL CHECK (price >= 0),
	category text NOT NULL DEFAULT '',
	rev bigint NOT NULL DEFAULT 1
);
CREATE OR REPLACE FUNCTION public.products_bump_rev() RETURNS trigger LANGUAGE plpgsql AS
	'BEGIN NEW.rev := OLD.rev + 1; RETURN NEW; END';
DROP TRIGGER IF EXISTS products_bump_rev ON public.products;
CREATE TRIGGER products_bump_rev BEFORE UPDATE ON public.products
	FOR EACH ROW EXECUTE PROCEDURE public.products_bump_rev();`

// tableColumns are the columns the demo writes and reads.
var tableColumns = []string{"id", "name", "description", "price", "category", "rev"}

// Postgres keeps the demo's products in the PostgreSQL table
// public.products, which a source feeds the collection from: clients
// cannot write a fed collection, so the page writes through calls that
// write to the table ("products.put", "products.delete", and "discount"
// in one UPDATE), each answered once the source has applied the write
// (viewsync.Call.Await on the LSN after its commit), with the version the
// page's view must reach to show it.
//
// A write with a precondition ("the product is at version V") is kept
// honestly: the record at version V in viewsync holds the row's rev, and
// the write is an UPDATE or DELETE … WHERE rev = that rev; a row written
// since, in viewsync or only yet in PostgreSQL, fails it with 412
// precondition_failed. A create requires that no row has the id
// (INSERT … ON CONFLICT DO NOTHING).
//
// Make one with OpenPostgres, pass it to Setup in Options.Postgres, and
// Close it when done. Its writes share one connection, one at a time.
type Postgres struct {
	url string
	// fresh: the collection had never been written when OpenPostgres
	// looked, so that Setup may seed an empty table.
	fresh bool

	mu   sync.Mutex
	conn *pgx.Conn // nil until needed, and after a failure
}

// OpenPostgres readies the demo's table in the PostgreSQL at url: it
// creates it (TableSQL) when missing, checks that it has the columns the
// demo writes, and notes whether hub's collection Collection was ever
// written (Setup seeds the table only if not, and if it is empty). Call it
// before the source that feeds the collection starts.
func OpenPostgres(ctx context.Context, url string, hub *viewsync.Hub) (*Postgres, error) {
	p := &Postgres{url: url}
	col, err := hub.Collection(Collection)
	if err != nil {
		return nil, err
	}
	hd, err := col.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	p.fresh = hd.Version == 0
	p.mu.Lock()
	defer p.mu.Unlock()
	conn, err := p.connLocked(ctx)
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.products') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("demo: table %s.%s: %w", TableSchema, TableName, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, TableSQL); err != nil {
			return nil, fmt.Errorf("demo: creating table %s.%s: %w", TableSchema, TableName, err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = 'public.products'::regclass AND attnum > 0 AND NOT attisdropped`)
	if err != nil {
		return nil, fmt.Errorf("demo: table %s.%s: %w", TableSchema, TableName, err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("demo: table %s.%s: %w", TableSchema, TableName, err)
	}
	var missing []string
	for _, c := range tableColumns {
		if !contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("demo: table %s.%s exists without the column(s) %s the demo needs (%s): drop it, or run the demo on another database",
			TableSchema, TableName, strings.Join(missing, ", "), strings.Join(tableColumns, ", "))
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Close closes the connection.
func (p *Postgres) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
}

// connLocked returns the connection, connecting when there is none. p.mu
// is held.
func (p *Postgres) connLocked(ctx context.Context) (*pgx.Conn, error) {
	if p.conn != nil && !p.conn.IsClosed() {
		return p.conn, nil
	}
	conn, err := pgx.Connect(ctx, p.url)
	if err != nil {
		return nil, fmt.Errorf("demo: connecting to PostgreSQL: %w", err)
	}
	p.conn = conn
	return conn, nil
}

// write runs one statement (its own transaction) and returns the rows it
// affected and the WAL position after its commit, which the source must
// apply for the write to show.
func (p *Postgres) write(ctx context.Context, sql string, args ...any) (rows int64, lsn string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conn, err := p.connLocked(ctx)
	if err != nil {
		return 0, "", err
	}
	defer func() {
		if err != nil && conn.IsClosed() {
			p.conn = nil // the next write connects again
		}
	}()
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		return 0, "", err
	}
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return 0, "", err
	}
	return tag.RowsAffected(), lsn, nil
}

// seed writes the sample products into the table, in one transaction,
// if the collection had never been written and the table is empty. It
// reports whether it did.
func (p *Postgres) seed(ctx context.Context) (bool, error) {
	if !p.fresh {
		return false, nil
	}
	var sql strings.Builder
	sql.WriteString("INSERT INTO public.products (id, name, description, price, category) SELECT * FROM (VALUES ")
	var args []any
	for i, s := range samples {
		if i > 0 {
			sql.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&sql, "($%d, $%d, $%d, $%d::text::numeric, $%d)", n+1, n+2, n+3, n+4, n+5)
		args = append(args, s.id, s.Name, s.Description, strconv.FormatFloat(s.Price, 'f', -1, 64), s.Category)
	}
	sql.WriteString(") AS v WHERE NOT EXISTS (SELECT 1 FROM public.products)")
	n, _, err := p.write(ctx, sql.String(), args...)
	if err != nil {
		return false, fmt.Errorf("demo: seed: %w", err)
	}
	return n > 0, nil
}

// register registers the demo's calls writing to the table.
func (p *Postgres) register(hub *viewsync.Hub) error {
	for name, fn := range map[string]viewsync.CallFunc{
		"products.put":    p.put,
		"products.delete": p.delete,
		"discount":        p.discount,
		"demo.config": func(context.Context, *viewsync.Call) (any, error) {
			return Config{Writes: "calls", Source: "PostgreSQL table " + TableSchema + "." + TableName}, nil
		},
	} {
		if err := hub.HandleCall(name, fn); err != nil {
			return err
		}
	}
	return nil
}

// Config is the result of the "demo.config" call: how the page writes.
type Config struct {
	// Writes is "direct" (the page writes the collection) or "calls" (it
	// writes through the calls "products.put" and "products.delete").
	Writes string `json:"writes"`
	// Source names where the products are kept, when not in viewsync.
	Source string `json:"source,omitempty"`
}

// PutArg is the argument of the "products.put" call.
type PutArg struct {
	// ID is the product's id.
	ID string `json:"id"`
	// Value is the product: {"name", "price", "description"?,
	// "category"?}; other fields (the row's "id" and "rev") are ignored.
	Value json.RawMessage `json:"value"`
	// IfVersion, when set, is the record's version the write requires;
	// 0: no product has the id.
	IfVersion *uint64 `json:"ifVersion"`
}

// DeleteArg is the argument of the "products.delete" call.
type DeleteArg struct {
	// ID is the product's id.
	ID string `json:"id"`
	// IfVersion, when set, is the record's version the delete requires.
	IfVersion *uint64 `json:"ifVersion"`
}

// WriteResult is the result of "products.put" and "products.delete": the
// collection's version once it includes the write.
type WriteResult struct {
	// Version is the collection's version once the write is in it.
	Version uint64 `json:"version"`
}

// badArg is a call's refusal of its argument.
func badArg(call, msg string) error {
	return &viewsync.CallError{Code: protocol.CodeBadRequest, Message: call + ": " + msg}
}

// product is a product's fields as the table keeps them; price is the
// decimal text of a number.
type product struct {
	name, description, price, category string
}

// parseProduct checks a product's value as the page's add form does: a
// name, a price of 0 or more, a description and a category that are text
// if given.
func parseProduct(b json.RawMessage) (product, error) {
	var v struct {
		Name        *string         `json:"name"`
		Description *string         `json:"description"`
		Price       json.RawMessage `json:"price"`
		Category    *string         `json:"category"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return product{}, errors.New(`value must be {"name": text, "price": number, "description"?: text, "category"?: text}`)
	}
	if v.Name == nil || strings.TrimSpace(*v.Name) == "" {
		return product{}, errors.New("a product needs a name")
	}
	if v.Price == nil || string(v.Price) == "null" {
		return product{}, errors.New("a product needs a price")
	}
	// A JSON number, not a string of one (json.Number would take both).
	f, err := strconv.ParseFloat(string(v.Price), 64)
	if err != nil || f < 0 || v.Price[0] == '"' {
		return product{}, errors.New("a price must be a number of 0 or more")
	}
	p := product{name: *v.Name, price: string(v.Price)}
	if v.Description != nil {
		p.description = *v.Description
	}
	if v.Category != nil {
		p.category = *v.Category
	}
	return p, nil
}

// notAt is the refusal of a write whose product is not at the version it
// requires.
func notAt(id string, version uint64) error {
	if version == 0 {
		return fmt.Errorf("%w: a product with id %q exists", viewsync.ErrPrecondition, id)
	}
	return fmt.Errorf("%w: product %q is not at version %d: changed meanwhile", viewsync.ErrPrecondition, id, version)
}

// rev returns the rev of the row the collection holds at version, or a
// precondition failure when the record is not at it.
func rev(ctx context.Context, col *viewsync.Collection, id string, version uint64) (int64, error) {
	rec, err := col.Get(ctx, id)
	if errors.Is(err, viewsync.ErrNotFound) {
		return 0, notAt(id, version)
	}
	if err != nil {
		return 0, err
	}
	if rec.Version != version {
		return 0, notAt(id, version)
	}
	var row struct {
		Rev *int64 `json:"rev"`
	}
	if err := json.Unmarshal(rec.Value, &row); err != nil || row.Rev == nil {
		return 0, fmt.Errorf("demo: record %q has no rev: %s", id, rec.Value)
	}
	return *row.Rev, nil
}

func (p *Postgres) put(ctx context.Context, call *viewsync.Call) (any, error) {
	var arg PutArg
	if err := json.Unmarshal(call.Arg, &arg); err != nil {
		return nil, badArg(call.Name, `arg must be {"id": text, "value": product, "ifVersion"?: number}`)
	}
	if err := protocol.ValidateID(arg.ID, protocol.MaxIDLen); err != nil {
		return nil, badArg(call.Name, err.Error())
	}
	pr, err := parseProduct(arg.Value)
	if err != nil {
		return nil, badArg(call.Name, err.Error())
	}
	col, err := call.Collection(Collection)
	if err != nil {
		return nil, err
	}
	args := []any{arg.ID, pr.name, pr.description, pr.price, pr.category}
	const insert = `INSERT INTO public.products (id, name, description, price, category) VALUES ($1, $2, $3, $4::text::numeric, $5)`
	var sql string
	switch {
	case arg.IfVersion == nil:
		sql = insert + ` ON CONFLICT (id) DO UPDATE SET name = $2, description = $3, price = $4::text::numeric, category = $5`
	case *arg.IfVersion == 0:
		sql = insert + ` ON CONFLICT (id) DO NOTHING`
	default:
		r, err := rev(ctx, col, arg.ID, *arg.IfVersion)
		if err != nil {
			return nil, err
		}
		sql = `UPDATE public.products SET name = $2, description = $3, price = $4::text::numeric, category = $5 WHERE id = $1 AND rev = $6`
		args = append(args, r)
	}
	return p.apply(ctx, call, sql, args, func(n int64) error {
		if n == 0 && arg.IfVersion != nil {
			return notAt(arg.ID, *arg.IfVersion)
		}
		return nil
	})
}

func (p *Postgres) delete(ctx context.Context, call *viewsync.Call) (any, error) {
	var arg DeleteArg
	if err := json.Unmarshal(call.Arg, &arg); err != nil {
		return nil, badArg(call.Name, `arg must be {"id": text, "ifVersion"?: number}`)
	}
	if err := protocol.ValidateID(arg.ID, protocol.MaxIDLen); err != nil {
		return nil, badArg(call.Name, err.Error())
	}
	col, err := call.Collection(Collection)
	if err != nil {
		return nil, err
	}
	sql, args := `DELETE FROM public.products WHERE id = $1`, []any{arg.ID}
	if arg.IfVersion != nil {
		if *arg.IfVersion == 0 {
			return nil, badArg(call.Name, "ifVersion 0 would delete a product that does not exist")
		}
		r, err := rev(ctx, col, arg.ID, *arg.IfVersion)
		if err != nil {
			return nil, err
		}
		sql, args = sql+` AND rev = $2`, append(args, r)
	}
	return p.apply(ctx, call, sql, args, func(n int64) error {
		switch {
		case n > 0:
			return nil
		case arg.IfVersion != nil:
			return notAt(arg.ID, *arg.IfVersion)
		default:
			return fmt.Errorf("%w: no product %q", viewsync.ErrNotFound, arg.ID)
		}
	})
}

func (p *Postgres) discount(ctx context.Context, call *viewsync.Call) (any, error) {
	var arg DiscountArg
	if err := json.Unmarshal(call.Arg, &arg); err != nil {
		return nil, badArg(call.Name, `arg must be {"percent": number}`)
	}
	if !(arg.Percent > 0 && arg.Percent <= 100) {
		return nil, badArg(call.Name, "percent must be more than 0 and at most 100")
	}
	// Rounded to cents as the collection's discount does; rows whose price
	// stays are left alone (no commit for them).
	const sql = `UPDATE public.products SET price = round(price * (100 - $1::text::numeric) / 100, 2)
		WHERE price <> round(price * (100 - $1::text::numeric) / 100, 2)`
	var updated int64
	if _, err := p.apply(ctx, call, sql, []any{strconv.FormatFloat(arg.Percent, 'f', -1, 64)}, func(n int64) error {
		updated = n
		return nil
	}); err != nil {
		return nil, err
	}
	return DiscountResult{Updated: int(updated)}, nil
}

// apply runs a call's write, lets check judge the rows it affected, and
// awaits the write's LSN, answering the collection's version then. A
// refused write (check's error) awaits nothing.
func (p *Postgres) apply(ctx context.Context, call *viewsync.Call, sql string, args []any, check func(int64) error) (any, error) {
	n, lsn, err := p.write(ctx, sql, args...)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")) {
			// A data exception or a constraint: the value does not fit.
			return nil, badArg(call.Name, "the table refused the value: "+pe.Message)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("demo: %s: %w", call.Name, context.Cause(ctx))
		}
		return nil, fmt.Errorf("demo: %s: %w: writing the table: %w", call.Name, viewsync.ErrUnavailable, err)
	}
	if err := check(n); err != nil {
		return nil, err
	}
	if err := call.Await(ctx, "", lsn, Collection); err != nil {
		return nil, err
	}
	return WriteResult{Version: call.Versions()[Collection]}, nil
}
