package pgsource_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/internal/pgtest"
	"github.com/viewsync/viewsync/pgsource"
)

// TestTruncateAndSchema: TRUNCATE starts a new epoch (alone, or followed
// by inserts in its transaction); a column added or dropped loads the
// table again in a new epoch without a restart (existing rows got the
// default, lost the column); a table dropped and re-created is loaded
// again in a new epoch.
func TestTruncateAndSchema(t *testing.T) {
	_, url := newDB(t)
	db := connect(t, url)
	exec1(t, db,
		"CREATE TABLE items (id int PRIMARY KEY, v text)",
		"INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 20) g",
	)
	n := newNode(t)
	src := startSource(t, n, url, "vs_schema", "items")
	c, _ := n.hub.Collection("items")
	head := func() string {
		hd, err := c.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return hd.Epoch
	}
	epoch := head()

	exec1(t, db, "TRUNCATE items")
	until(t, "a new epoch, empty", func() error {
		if head() == epoch {
			return errors.New("same epoch")
		}
		return nil
	})
	waitEqual(t, n.hub, db, "items", "items")
	epoch = head()

	tx, err := db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"INSERT INTO items VALUES (1, 'a')", "TRUNCATE items", "INSERT INTO items VALUES (2, 'b'), (3, 'c')"} {
		if _, err := tx.Exec(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, n.hub, db, "items", "items")
	if head() == epoch {
		t.Fatal("a transaction truncating the table kept the epoch")
	}
	epoch = head()

	exec1(t, db, "ALTER TABLE items ADD COLUMN price numeric DEFAULT 5", "INSERT INTO items VALUES (4, 'd', 7.5)", "UPDATE items SET price = 1 WHERE id = 2")
	waitEqual(t, n.hub, db, "items", "items")
	exec1(t, db, "ALTER TABLE items DROP COLUMN v", "INSERT INTO items VALUES (5, 9)")
	waitEqual(t, n.hub, db, "items", "items")
	r, err := c.Get(context.Background(), "5")
	if err != nil || string(r.Value) != `{"id":5,"price":9}` {
		t.Fatalf("Get(5) = %s, %v; want the columns the table has now", r.Value, err)
	}
	if head() == epoch {
		t.Fatal("a column change kept the epoch: rows it changed without a change of their own (a default) would be missed")
	}
	if st := src.Stats(); st.Reconnects != 0 {
		t.Fatalf("a column change counted as %d failures", st.Reconnects)
	}
	epoch = head()

	exec1(t, db, "DROP TABLE items", "CREATE TABLE items (id int PRIMARY KEY, w text)", "INSERT INTO items VALUES (10, 'new')")
	until(t, "the re-created table loaded in a new epoch", func() error {
		if head() == epoch {
			return errors.New("same epoch")
		}
		got, _ := collState(t, n.hub, "items")
		if len(got) != 1 {
			return fmt.Errorf("%d records", len(got))
		}
		return nil
	})
	exec1(t, db, "INSERT INTO items VALUES (11, 'streamed')")
	waitEqual(t, n.hub, db, "items", "items")
}

// TestStartErrors: what cannot work is refused at start, saying what to
// fix.
func TestStartErrors(t *testing.T) {
	c, url := newDB(t)
	db := connect(t, url)
	exec1(t, db,
		"CREATE TABLE nokey (id int, v text)",
		"CREATE TABLE items (id int PRIMARY KEY)",
		"CREATE TABLE noident (id int PRIMARY KEY)",
		"ALTER TABLE noident REPLICA IDENTITY NOTHING",
		`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plain') THEN CREATE ROLE plain LOGIN PASSWORD 'plain'; END IF; END $$`,
	)
	n := newNode(t)
	start := func(url string, table string) error {
		tb, err := pgsource.ParseTable(table)
		if err != nil {
			t.Fatal(err)
		}
		src, err := pgsource.Start(context.Background(), n.hub, &pgsource.Options{URL: url, Slot: "vs_errors", Tables: []pgsource.Table{tb}})
		if err == nil {
			src.Close()
		}
		return err
	}
	db2 := strings.TrimPrefix(url[strings.LastIndex(url, "/"):], "/")
	db2 = strings.TrimSuffix(db2, "?sslmode=disable")
	for _, tc := range []struct {
		name, url, table string
		want             error
		says             string
	}{
		{"no primary key", url, "nokey", pgsource.ErrNoPrimaryKey, "public.nokey"},
		{"no such table", url, "missing", pgsource.ErrNoTable, "public.missing"},
		{"replica identity", url, "noident", pgsource.ErrReplicaIdentity, "REPLICA IDENTITY"},
		{"bad password", c.URL("postgres", "wrong", db2), "items", pgsource.ErrAuth, "password"},
		{"no REPLICATION", c.URL("plain", "plain", db2), "items", pgsource.ErrNoReplication, "ALTER ROLE plain REPLICATION"},
	} {
		err := start(tc.url, tc.table)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}

	// A server with wal_level = replica, apart: logical slots keep a
	// cluster from starting at that level.
	rc, err := pgtest.Start("wal_level=replica")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Stop()
	rdb := connect(t, rc.URL("postgres", password, "postgres"))
	exec1(t, rdb, "CREATE TABLE items (id int PRIMARY KEY)")
	if err := start(rc.URL("postgres", password, "postgres"), "items"); !errors.Is(err, pgsource.ErrWALLevel) || !strings.Contains(err.Error(), "wal_level = logical") {
		t.Errorf("wal_level replica: %v, want ErrWALLevel saying how to set it", err)
	}
}
