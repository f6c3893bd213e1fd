package pgsource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/pgsource"
	"github.com/viewsync/viewsync/store/boltstore"
)

// wait bounds the tests' waits: a hang guard, never a measure.
const wait = 90 * time.Second

// node is a hub on a bbolt file, as a viewsync process has.
type node struct {
	path string
	st   *boltstore.Store
	hub  *viewsync.Hub
}

// openNode opens (again) the hub on the bbolt file at path.
func openNode(t testing.TB, path string) *node {
	t.Helper()
	st, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{path: path, st: st, hub: hub}
	t.Cleanup(n.close)
	return n
}

// newNode opens a hub on a new bbolt file.
func newNode(t testing.TB) *node {
	return openNode(t, filepath.Join(t.TempDir(), "viewsync.db"))
}

func (n *node) close() {
	if n.hub != nil {
		n.hub.Close()
		n.st.Close()
		n.hub = nil
	}
}

// startSource starts a source on n, waits until it streams, and closes
// it when the test ends.
func startSource(t testing.TB, n *node, url, slot string, tables ...string) *pgsource.Source {
	t.Helper()
	src := startSourceOpts(t, n, &pgsource.Options{URL: url, Slot: slot, Publication: slot}, tables...)
	waitReady(t, src)
	return src
}

// startSourceOpts starts a source with opts and tables, quick to retry.
func startSourceOpts(t testing.TB, n *node, opts *pgsource.Options, tables ...string) *pgsource.Source {
	t.Helper()
	for _, s := range tables {
		tb, err := pgsource.ParseTable(s)
		if err != nil {
			t.Fatal(err)
		}
		opts.Tables = append(opts.Tables, tb)
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = 200 * time.Millisecond
	}
	opts.MinBackoff, opts.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	src, err := pgsource.Start(ctx, n.hub, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// waitReady waits until src streams.
func waitReady(t testing.TB, src *pgsource.Source) {
	t.Helper()
	until(t, "the source streams", func() error { return src.Ready() })
}

// until polls check until it returns nil, failing the test past wait.
func until(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tableState reads a table as records: primary key (one column, id) →
// the row as to_jsonb shows it.
func tableState(t testing.TB, conn *pgx.Conn, table string) map[string]any {
	t.Helper()
	rows, err := conn.Query(context.Background(), fmt.Sprintf("SELECT id::text, to_jsonb(x)::text FROM %s x", table))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for rows.Next() {
		var id, js string
		if err := rows.Scan(&id, &js); err != nil {
			t.Fatal(err)
		}
		out[id] = decode(t, []byte(js))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// collState reads a collection as records: id → value.
func collState(t testing.TB, hub *viewsync.Hub, name string) (map[string]any, viewsync.Snapshot) {
	t.Helper()
	c, _ := hub.Collection(name)
	s, err := c.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, r := range s.Records {
		out[r.ID] = decode(t, r.Value)
	}
	return out, s
}

// decode decodes JSON with numbers as json.Number.
func decode(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// waitEqual waits until the collection holds what the table does.
func waitEqual(t testing.TB, hub *viewsync.Hub, conn *pgx.Conn, table, coll string) {
	t.Helper()
	until(t, coll+" to equal "+table, func() error {
		want := tableState(t, conn, table)
		got, s := collState(t, hub, coll)
		if !reflect.DeepEqual(normal(want), normal(got)) {
			return fmt.Errorf("at %s:%d the collection has %d records, the table %d rows (or values differ)", s.Epoch, s.Version, len(got), len(want))
		}
		return nil
	})
}

// normal makes numbers comparable whatever their decimal form (12.50 and
// 12.5).
func normal(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normal(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = normal(e)
		}
		return a
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return v
}
