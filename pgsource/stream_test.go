package pgsource_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
)

// follower records every commit a subscriber of a collection receives.
type follower struct {
	sub     *fanout.Subscription
	done    chan struct{}
	mu      sync.Mutex
	commits []viewsync.Commit
	err     error
}

// follow subscribes to coll from its current head.
func follow(t *testing.T, hub *viewsync.Hub, coll string) *follower {
	t.Helper()
	c, _ := hub.Collection(coll)
	hd, err := c.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(&viewsync.Cursor{Epoch: hd.Epoch, Version: hd.Version})
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{sub: sub, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			ev, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			f.mu.Lock()
			if ev.Kind != fanout.EventCommits {
				f.err = fmt.Errorf("subscriber got event kind %d, not commits", ev.Kind)
			}
			for _, fr := range ev.Frames {
				f.commits = append(f.commits, fr.Commit)
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close(); <-f.done })
	return f
}

// received returns the commits so far.
func (f *follower) received() ([]viewsync.Commit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]viewsync.Commit(nil), f.commits...), f.err
}

// checkContiguous fails unless the commits' versions run from first on by
// one.
func checkContiguous(t *testing.T, what string, commits []viewsync.Commit, first uint64) {
	t.Helper()
	for i, c := range commits {
		if c.Version != first+uint64(i) {
			t.Fatalf("%s: commit %d has version %d, want %d (a gap or a duplicate)", what, i, c.Version, first+uint64(i))
		}
	}
}

// TestSnapshotAndStream: a table loaded from the snapshot, then written by
// concurrent writers (single-row statements and multi-row, multi-table
// transactions) while streaming: the subscriber's commits are contiguous,
// one per PostgreSQL transaction per collection, each transaction whole,
// and the collections end equal to the tables.
func TestSnapshotAndStream(t *testing.T) {
	_, url := newDB(t)
	db := connect(t, url)
	exec1(t, db,
		"CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), qty int)",
		"CREATE TABLE orders (id int PRIMARY KEY, product int, tag text)",
		"INSERT INTO products SELECT g, 'p' || g, g * 1.25, g % 7 FROM generate_series(1, 5000) g",
	)
	n := newNode(t)
	started := time.Now()
	src := startSource(t, n, url, "vs_stream", "public.products", "orders")
	loaded := time.Since(started)
	t.Logf("loaded 5000 rows in %s (%.0f rows/s)", loaded.Round(time.Millisecond), 5000/loaded.Seconds())
	waitEqual(t, n.hub, db, "products", "products")
	if st := src.Stats(); st.SnapshotRows != 5000 {
		t.Fatalf("Stats().SnapshotRows = %d, want 5000", st.SnapshotRows)
	}

	products, orders := follow(t, n.hub, "products"), follow(t, n.hub, "orders")
	pc, _ := n.hub.Collection("products")
	start, _ := pc.Head(context.Background())
	initial, _ := collState(t, n.hub, "products")

	const writers, statements, multis = 4, 120, 30
	var changed atomic.Int64 // products transactions that changed a row
	var wg sync.WaitGroup
	streamStart := time.Now()
	for w := range writers {
		conn := connect(t, url)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range statements {
				id := 1 + r.IntN(5200)
				var sql string
				switch r.IntN(3) {
				case 0:
					sql = fmt.Sprintf("INSERT INTO products VALUES (%d, 'w%d', %d.5, 1) ON CONFLICT (id) DO UPDATE SET qty = products.qty + 1", id, w, id)
				case 1:
					sql = fmt.Sprintf("UPDATE products SET name = 'u%d', price = price + 1 WHERE id = %d", w, id)
				default:
					sql = fmt.Sprintf("DELETE FROM products WHERE id = %d", id)
				}
				tag, err := conn.Exec(context.Background(), sql)
				if err != nil {
					t.Errorf("%s: %v", sql, err)
					return
				}
				if tag.RowsAffected() > 0 {
					changed.Add(1)
				}
			}
		})
	}
	conn := connect(t, url)
	wg.Go(func() {
		for i := range multis {
			tx, err := conn.Begin(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			base := 10000 + 3*i
			for k := range 3 {
				if _, err := tx.Exec(context.Background(), "INSERT INTO products VALUES ($1, $2, 1, 1)", base+k, fmt.Sprintf("tx-%d", i)); err != nil {
					t.Error(err)
					return
				}
			}
			if _, err := tx.Exec(context.Background(), "INSERT INTO orders VALUES ($1, $2, $3)", i, base, fmt.Sprintf("tx-%d", i)); err != nil {
				t.Error(err)
				return
			}
			if err := tx.Commit(context.Background()); err != nil {
				t.Error(err)
				return
			}
			changed.Add(1)
		}
	})
	wg.Wait()
	waitEqual(t, n.hub, db, "products", "products")
	waitEqual(t, n.hub, db, "orders", "orders")
	took := time.Since(streamStart)
	total := changed.Load()
	t.Logf("streamed %d transactions in %s (%.0f transactions/s)", total, took.Round(time.Millisecond), float64(total)/took.Seconds())

	until(t, "the subscribers to catch up", func() error {
		pcs, _ := products.received()
		ocs, _ := orders.received()
		if int64(len(pcs)) < total || len(ocs) < multis {
			return fmt.Errorf("products %d of %d commits, orders %d of %d", len(pcs), total, len(ocs), multis)
		}
		return nil
	})
	pcs, err := products.received()
	if err != nil {
		t.Fatal(err)
	}
	ocs, err := orders.received()
	if err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, "products", pcs, start.Version+1)
	// The subscriber's view, its commits applied to the state it
	// started from, is the table.
	view := initial
	for _, c := range pcs {
		for _, op := range c.Ops {
			if op.Op == "delete" {
				delete(view, op.ID)
			} else {
				view[op.ID] = decode(t, op.Value)
			}
		}
	}
	if want := tableState(t, db, "products"); !reflect.DeepEqual(normal(view), normal(want)) {
		t.Fatalf("the subscriber's view (%d records) differs from the table (%d rows)", len(view), len(want))
	}
	checkContiguous(t, "orders", ocs, 1+ocs[0].Version-1)
	if int64(len(pcs)) != total || len(ocs) != multis {
		t.Fatalf("products got %d commits for %d transactions, orders %d for %d", len(pcs), total, len(ocs), multis)
	}
	// Each multi-row transaction is one commit of its three rows.
	whole := 0
	for _, c := range pcs {
		tags := map[string]int{}
		for _, op := range c.Ops {
			if i := strings.Index(string(op.Value), `"tx-`); i >= 0 {
				tags[string(op.Value[i:i+8])]++
			}
		}
		for tag, k := range tags {
			if k != 3 || len(c.Ops) != 3 {
				t.Fatalf("commit %d holds %d of transaction %s's 3 rows in %d ops", c.Version, k, tag, len(c.Ops))
			}
			whole++
		}
	}
	if whole != multis {
		t.Fatalf("%d multi-row transactions found whole, want %d", whole, multis)
	}
	if st := src.Stats(); st.Transactions < uint64(total) || !st.Connected {
		t.Fatalf("Stats = %+v, want at least %d transactions, connected", st, total)
	}
}
