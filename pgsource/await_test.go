package pgsource_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/pgsource"
	"github.com/viewsync/viewsync/protocol"
)

// lockedConn is a connection the calls of a test share, one at a time.
type lockedConn struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// write runs sql in a transaction and returns pg_current_wal_lsn() after
// its commit: the position a call handler that wrote awaits.
func (c *lockedConn) write(ctx context.Context, sql string, args ...any) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.conn.Exec(ctx, sql, args...); err != nil {
		return "", err
	}
	var lsn string
	err := c.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	return lsn, err
}

// TestAwaitCall: a call handler inserts a row into a followed table and
// awaits the LSN after its commit; when its answer comes the record is
// in the collection, and the answer's version covers the record's — for
// calls one after another and concurrent ones, with other writers busy
// on the table and on a table nobody follows (so that the LSN is often
// past the handler's own transaction). A handler that wrote only to a
// table nobody follows is answered too, as soon as the source has read
// that far.
func TestAwaitCall(t *testing.T) {
	_, url := newDB(t)
	db := connect(t, url)
	exec1(t, db,
		"CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)",
		"CREATE TABLE other (id serial PRIMARY KEY, note text)",
	)
	n := newNode(t)
	src := startSource(t, n, url, "vs_await", "public.items")
	if got := src.Collections(); !slices.Equal(got, []string{"items"}) || src.Name() != "postgres" {
		t.Fatalf("Collections %v, Name %q; want [items], postgres", got, src.Name())
	}
	items, _ := n.hub.Collection("items")
	calls := &lockedConn{conn: connect(t, url)}
	if err := n.hub.HandleCall("add", func(ctx context.Context, call *viewsync.Call) (any, error) {
		var arg struct {
			ID    int  `json:"id"`
			Other bool `json:"other"`
		}
		if err := json.Unmarshal(call.Arg, &arg); err != nil {
			return nil, err
		}
		sql := "INSERT INTO items VALUES ($1, 'call')"
		if arg.Other {
			sql = "INSERT INTO other (note) VALUES ($1::int::text)"
		}
		lsn, err := calls.write(ctx, sql, arg.ID)
		if err != nil {
			return nil, err
		}
		if err := call.Await(ctx, "postgres", lsn); err != nil {
			return nil, err
		}
		return lsn, nil
	}); err != nil {
		t.Fatal(err)
	}

	// Other writers, on both tables, all along, a few hundred
	// transactions a second each.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w, sql := range []string{"INSERT INTO items VALUES (100000 + $1, 'busy')", "INSERT INTO other (note) VALUES ($1::int::text)"} {
		conn := connect(t, url)
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := conn.Exec(ctx, sql, i); err != nil && ctx.Err() == nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				time.Sleep(3 * time.Millisecond)
			}
		})
	}
	defer func() { stop(); wg.Wait() }()

	check := func(id int) time.Duration {
		start := time.Now()
		res, err := n.hub.Call(context.Background(), "add", json.RawMessage(fmt.Sprintf(`{"id":%d}`, id)))
		took := time.Since(start)
		if err != nil {
			t.Errorf("call %d: %v", id, err)
			return took
		}
		rec, err := items.Get(context.Background(), fmt.Sprint(id))
		if err != nil {
			t.Errorf("call %d answered %s, but its row is not in the collection: %v", id, res.Result, err)
			return took
		}
		if v := res.Versions["items"]; v < rec.Version {
			t.Errorf("call %d answered version %d, before its record's %d", id, v, rec.Version)
		}
		return took
	}
	var took []time.Duration
	for id := range 20 {
		took = append(took, check(id))
	}
	var mu sync.Mutex
	var cwg sync.WaitGroup
	for id := 20; id < 40; id++ {
		cwg.Go(func() {
			d := check(id)
			mu.Lock()
			took = append(took, d)
			mu.Unlock()
		})
	}
	cwg.Wait()
	slices.Sort(took)
	t.Logf("write → answer with the write applied, with other writers busy: p50 %s, max %s", took[len(took)/2].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond))

	res, err := n.hub.Call(context.Background(), "add", json.RawMessage(`{"id":1,"other":true}`))
	if err != nil || res.Versions["items"] == 0 {
		t.Errorf("a write to a table nobody follows: %+v, %v; want an answer with items' version", res, err)
	}
}

// TestAwaitErrors: an LSN the source never reaches fails the call at the
// source's AwaitTimeout with 504 timeout naming the source and the LSN; a
// position that is not an LSN is ErrBadPosition; a source closing ends
// the waits with ErrClosed and leaves the hub's sources.
func TestAwaitErrors(t *testing.T) {
	_, url := newDB(t)
	db := connect(t, url)
	exec1(t, db, "CREATE TABLE items (id int PRIMARY KEY)")
	n := newNode(t)
	src := startSourceOpts(t, n, &pgsource.Options{URL: url, Slot: "vs_await_err", Publication: "vs_await_err", Name: "shop", AwaitTimeout: 200 * time.Millisecond}, "items")
	waitReady(t, src)
	n.hub.HandleCall("await", func(ctx context.Context, call *viewsync.Call) (any, error) {
		var pos string
		json.Unmarshal(call.Arg, &pos)
		return nil, call.Await(ctx, "shop", pos)
	})
	call := func(pos string) error {
		_, err := n.hub.Call(context.Background(), "await", json.RawMessage(fmt.Sprintf("%q", pos)))
		return err
	}

	err := call("FFFFFFFF/0")
	var ce *viewsync.CallError
	if !errors.Is(err, viewsync.ErrAwaitTimeout) || !errors.As(err, &ce) || viewsync.ErrorCode(err) != protocol.CodeTimeout {
		t.Fatalf("an LSN that never comes: %v, want ErrAwaitTimeout, 504 timeout", err)
	}
	if want := "source shop did not reach position FFFFFFFF/0 within 200ms; the write is done, and views show it once the source gets there"; ce.Message != want {
		t.Errorf("message %q, want %q", ce.Message, want)
	}
	for _, pos := range []string{"", "16/B374D848 ", "x/1", "1/2/3", "100000000/0"} {
		if err := call(pos); !errors.Is(err, viewsync.ErrBadPosition) {
			t.Errorf("position %q: %v, want ErrBadPosition", pos, err)
		}
	}
	if err := call("0/0"); err != nil {
		t.Errorf("LSN 0/0: %v", err)
	}

	waiting := make(chan error, 1)
	go func() { waiting <- src.Await(context.Background(), "FFFFFFFF/0") }()
	src.Close()
	if err := <-waiting; !errors.Is(err, viewsync.ErrClosed) {
		t.Errorf("Await across Close: %v, want ErrClosed", err)
	}
	if err := call("0/0"); !errors.Is(err, viewsync.ErrUnknownSource) {
		t.Errorf("after Close: %v, want ErrUnknownSource", err)
	}
}
