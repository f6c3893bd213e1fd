package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/demo"
	"github.com/viewsync/viewsync/internal/pgtest"
	"github.com/viewsync/viewsync/pgsource"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
)

// pgWait bounds the waits of the PostgreSQL tests: a hang guard, never a
// measure.
const pgWait = 60 * time.Second

// pgDemo is the demo on a PostgreSQL table: a hub on a bbolt file, the
// table fed into the collection, the demo's calls.
type pgDemo struct {
	hub  *viewsync.Hub
	src  *pgsource.Source
	pg   *demo.Postgres
	db   *pgx.Conn
	logs string
	// stop stops it all and closes the store; the test's end does too.
	stop func()
}

// startPGDemo runs what 'viewsync serve --demo --pg-url' does on the
// database at url with the bbolt file at path: OpenPostgres, the source,
// Setup; it waits until the source streams.
func startPGDemo(t *testing.T, url, path string, opts demo.Options) *pgDemo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgWait)
	defer cancel()
	st, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	d := &pgDemo{hub: hub, db: pgtest.Connect(t, url)}
	d.pg, err = demo.OpenPostgres(ctx, url, hub)
	if err != nil {
		t.Fatal(err)
	}
	d.src, err = pgsource.Start(ctx, hub, &pgsource.Options{
		URL: url, Slot: "vs_demo", Publication: "vs_demo", StatusInterval: 200 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Tables: []pgsource.Table{{Schema: demo.TableSchema, Name: demo.TableName, Collection: demo.Collection}},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	d.stop = func() {
		if !stopped {
			stopped = true
			d.src.Close()
			d.pg.Close()
			hub.Close()
			st.Close()
		}
	}
	t.Cleanup(d.stop)
	opts.Postgres = d.pg
	var logs strings.Builder
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if err := demo.Setup(ctx, hub, opts); err != nil {
		t.Fatal(err)
	}
	d.logs = logs.String()
	for d.src.Ready() != nil {
		if ctx.Err() != nil {
			t.Fatalf("the source never streamed: %v", d.src.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// call runs a call; an error is returned, not failed on.
func (d *pgDemo) call(t *testing.T, name string, arg any) (viewsync.CallResult, error) {
	t.Helper()
	b, err := json.Marshal(arg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgWait)
	defer cancel()
	return d.hub.Call(ctx, name, b)
}

// mustCall runs a call that must succeed and returns the version its
// result carries.
func (d *pgDemo) mustCall(t *testing.T, name string, arg any) uint64 {
	t.Helper()
	res, err := d.call(t, name, arg)
	if err != nil {
		t.Fatalf("%s %v: %v", name, arg, err)
	}
	var r demo.WriteResult
	json.Unmarshal(res.Result, &r)
	if r.Version != res.Versions[demo.Collection] {
		t.Fatalf("%s: result version %d, but the answer's versions say %v", name, r.Version, res.Versions)
	}
	return r.Version
}

// get reads a record of the collection now: its value and version, or
// ok false when absent.
func (d *pgDemo) get(t *testing.T, id string) (value map[string]any, version uint64, ok bool) {
	t.Helper()
	col, _ := d.hub.Collection(demo.Collection)
	rec, err := col.Get(context.Background(), id)
	if errors.Is(err, viewsync.ErrNotFound) {
		return nil, 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Value, &value); err != nil {
		t.Fatal(err)
	}
	return value, rec.Version, true
}

// wantCode fails unless err maps to code.
func wantCode(t *testing.T, what string, err error, code protocol.Code) {
	t.Helper()
	if err == nil || viewsync.ErrorCode(err) != code {
		t.Errorf("%s: %v (%s), want %s", what, err, viewsync.ErrorCode(err), code)
	}
}

// TestPostgresDemo: the demo on PostgreSQL creates its table, seeds it
// once, and its calls write to the table, each answered once the
// collection holds the write (read-your-writes), with version
// preconditions kept through the row's rev: a create only if no row has
// the id, an update or delete only of the version shown, whether the
// newer write is already in the collection or only in the table.
func TestPostgresDemo(t *testing.T) {
	_, _, url := pgtest.NewDB(t)
	path := filepath.Join(t.TempDir(), "viewsync.db")
	d := startPGDemo(t, url, path, demo.Options{})
	if !strings.Contains(d.logs, "seeded the empty table") {
		t.Errorf("Setup logged %q, want the seeding", d.logs)
	}
	col, _ := d.hub.Collection(demo.Collection)
	for {
		snap, err := col.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Records) == 8 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := d.call(t, "demo.config", nil)
	if err != nil || string(res.Result) != `{"writes":"calls","source":"PostgreSQL table public.products"}` {
		t.Errorf("demo.config: %s, %v", res.Result, err)
	}

	// Create: answered with the record in the collection.
	lamp := map[string]any{"name": "Floor lamp", "description": "Tall", "price": 75.5, "category": "lighting"}
	v := d.mustCall(t, "products.put", map[string]any{"id": "p-lamp", "value": lamp, "ifVersion": 0})
	got, rv, ok := d.get(t, "p-lamp")
	if !ok || rv > v || got["name"] != "Floor lamp" || got["price"] != 75.5 || got["rev"] != 1.0 {
		t.Fatalf("after the create answered version %d: record %v at %d (%v)", v, got, rv, ok)
	}
	_, err = d.call(t, "products.put", map[string]any{"id": "p-lamp", "value": lamp, "ifVersion": 0})
	wantCode(t, "a second create", err, protocol.CodePreconditionFailed)

	// Update at the version shown; the row's id and rev in the value are
	// ignored.
	lamp["price"], lamp["rev"], lamp["id"] = 70, 99, "other"
	v2 := d.mustCall(t, "products.put", map[string]any{"id": "p-lamp", "value": lamp, "ifVersion": rv})
	got, rv2, _ := d.get(t, "p-lamp")
	if v2 <= v || rv2 > v2 || got["price"] != 70.0 || got["rev"] != 2.0 || got["id"] != "p-lamp" {
		t.Fatalf("after the update answered %d: record %v at %d", v2, got, rv2)
	}
	_, err = d.call(t, "products.put", map[string]any{"id": "p-lamp", "value": lamp, "ifVersion": rv})
	wantCode(t, "an update of an older version", err, protocol.CodePreconditionFailed)

	// A write straight to the table: at the version shown before it, the
	// update is refused whether or not the collection has it yet.
	pgtest.Exec(t, d.db, "UPDATE products SET description = 'by psql' WHERE id = 'p-lamp'")
	_, err = d.call(t, "products.put", map[string]any{"id": "p-lamp", "value": lamp, "ifVersion": rv2})
	wantCode(t, "an update racing a write to the table", err, protocol.CodePreconditionFailed)
	var desc string
	if err := d.db.QueryRow(context.Background(), "SELECT description FROM products WHERE id = 'p-lamp'").Scan(&desc); err != nil || desc != "by psql" {
		t.Errorf("the table's row has description %q (%v): the refused update overwrote it", desc, err)
	}

	// Delete.
	for {
		if got, _, _ := d.get(t, "p-lamp"); got["description"] == "by psql" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = d.call(t, "products.delete", map[string]any{"id": "p-lamp", "ifVersion": rv2})
	wantCode(t, "a delete of an older version", err, protocol.CodePreconditionFailed)
	_, rv3, _ := d.get(t, "p-lamp")
	d.mustCall(t, "products.delete", map[string]any{"id": "p-lamp", "ifVersion": rv3})
	if _, _, ok := d.get(t, "p-lamp"); ok {
		t.Errorf("the delete answered, the record is still there")
	}
	_, err = d.call(t, "products.delete", map[string]any{"id": "p-lamp"})
	wantCode(t, "a delete of no product", err, protocol.CodeNotFound)

	// Discount: one UPDATE, every price in the collection at the answer.
	res, err = d.call(t, "discount", map[string]any{"percent": 10})
	if err != nil || string(res.Result) != `{"updated":8}` {
		t.Fatalf("discount: %s, %v", res.Result, err)
	}
	if got, _, _ := d.get(t, "p-01-desk-lamp"); got["price"] != 44.1 {
		t.Errorf("after the discount answered, the desk lamp costs %v, want 44.1", got["price"])
	}

	for _, tc := range []struct {
		name string
		arg  any
	}{
		{"products.put", map[string]any{"id": "x", "value": map[string]any{"price": 1}}},
		{"products.put", map[string]any{"id": "x", "value": map[string]any{"name": "X", "price": -1}}},
		{"products.put", map[string]any{"id": "x", "value": map[string]any{"name": "X", "price": "1"}}},
		{"products.put", map[string]any{"id": "x", "value": map[string]any{"name": "X", "price": 1e12}}},
		{"products.put", map[string]any{"id": "", "value": map[string]any{"name": "X", "price": 1}}},
		{"products.put", "nonsense"},
		{"products.delete", map[string]any{"id": "x", "ifVersion": 0}},
		{"discount", map[string]any{"percent": 0}},
	} {
		_, err := d.call(t, tc.name, tc.arg)
		wantCode(t, fmt.Sprintf("%s %v", tc.name, tc.arg), err, protocol.CodeBadRequest)
	}
}

// TestPostgresDemoTable: an existing table without the demo's columns
// stops OpenPostgres saying so; NoSeed (--demo-seed=false) leaves a new
// table empty, and a restart then does not seed it: the collection was
// written meanwhile.
func TestPostgresDemoTable(t *testing.T) {
	_, _, url := pgtest.NewDB(t)
	db := pgtest.Connect(t, url)
	pgtest.Exec(t, db, "CREATE TABLE products (id int PRIMARY KEY, name text)")
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	_, err = demo.OpenPostgres(context.Background(), url, hub)
	if err == nil || !strings.Contains(err.Error(), "without the column(s) description, price, category, rev the demo needs") {
		t.Errorf("OpenPostgres on another products table: %v", err)
	}

	_, _, url = pgtest.NewDB(t)
	path := filepath.Join(t.TempDir(), "viewsync.db")
	d := startPGDemo(t, url, path, demo.Options{NoSeed: true})
	var n int
	if err := d.db.QueryRow(context.Background(), "SELECT count(*) FROM products").Scan(&n); err != nil || n != 0 {
		t.Fatalf("NoSeed: the table has %d rows (%v)", n, err)
	}
	d.mustCall(t, "products.put", map[string]any{"id": "a", "value": map[string]any{"name": "A", "price": 1}, "ifVersion": 0})
	d.mustCall(t, "products.delete", map[string]any{"id": "a"})
	d.stop()

	// The same store again, seeding on: the collection was written, so
	// the empty table stays empty.
	d = startPGDemo(t, url, path, demo.Options{})
	if strings.Contains(d.logs, "seeded") {
		t.Errorf("a restart logged %q", d.logs)
	}
	if err := d.db.QueryRow(context.Background(), "SELECT count(*) FROM products").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after a restart: the table has %d rows (%v), want none", n, err)
	}
}
