package viewsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestFeed: a fed collection's commits and drops carry their position and
// reach subscribers like any; every other write is refused with the
// source named, until the feed is closed.
func TestFeed(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(nil)
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	feed, err := hub.Feed("products", "PostgreSQL table public.products", "write to the table")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Feed("products", "elsewhere", ""); !errors.Is(err, viewsync.ErrFed) {
		t.Fatalf("a second Feed: %v, want ErrFed", err)
	}
	col, _ := hub.Collection("products")
	sub, err := col.Subscribe(&viewsync.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	cm, err := feed.Commit(ctx, []viewsync.Op{viewsync.Put("1", []byte(`{"name": "Lamp"}`))}, []byte("p1"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Version != 1 || string(cm.Ops[0].Value) != `{"name":"Lamp"}` {
		t.Fatalf("Commit = %+v, want version 1 with a compact value", cm)
	}
	if pos, err := feed.Position(ctx); err != nil || string(pos) != "p1" {
		t.Fatalf("Position = %q, %v; want p1", pos, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ev, err := sub.Next(wctx)
	if err != nil || ev.Kind != fanout.EventCommits || len(ev.Frames) != 1 || ev.Frames[0].Version() != 1 {
		t.Fatalf("subscriber got %+v, %v; want commit 1", ev, err)
	}

	want := "collection products is fed from PostgreSQL table public.products; write to the table"
	refused := func(what string, err error) {
		t.Helper()
		var ro *viewsync.ReadOnlyError
		if !errors.As(err, &ro) || !errors.Is(err, viewsync.ErrReadOnly) || !errors.Is(err, viewsync.ErrForbidden) {
			t.Errorf("%s: %v, want a ReadOnlyError", what, err)
			return
		}
		if err.Error() != want {
			t.Errorf("%s: message %q, want %q", what, err.Error(), want)
		}
		if code := viewsync.ErrorCode(err); code != protocol.CodeForbidden {
			t.Errorf("%s: code %q, want forbidden", what, code)
		}
	}
	_, err = col.Put(ctx, "2", []byte(`1`))
	refused("Put", err)
	_, err = col.Patch(ctx, "1", []byte(`{"name":"Desk"}`))
	refused("Patch", err)
	_, err = col.Delete(ctx, "1")
	refused("Delete", err)
	_, err = col.Commit(ctx, []viewsync.Op{viewsync.Delete("1")}, nil)
	refused("Commit", err)
	_, err = col.Drop(ctx)
	refused("Drop", err)
	_, err = col.Where(nil).Put(ctx, "3", []byte(`1`))
	refused("Put through a view", err)
	if err := hub.HandleCall("write", func(ctx context.Context, call *viewsync.Call) (any, error) {
		c, err := call.Collection("products")
		if err != nil {
			return nil, err
		}
		_, err = c.Put(ctx, "4", []byte(`1`))
		return nil, err
	}); err != nil {
		t.Fatal(err)
	}
	_, err = hub.Call(ctx, "write", json.RawMessage(`null`))
	refused("a call's write", err)
	// Another collection is written as usual.
	other, _ := hub.Collection("orders")
	if _, err := other.Put(ctx, "1", []byte(`1`)); err != nil {
		t.Fatalf("Put to another collection: %v", err)
	}

	hd, err := feed.Drop(ctx, []byte("p2"))
	if err != nil || hd.Version != 0 {
		t.Fatalf("Drop = %+v, %v", hd, err)
	}
	if pos, _ := feed.Position(ctx); string(pos) != "p2" {
		t.Fatalf("Position after Drop = %q, want p2", pos)
	}
	ev, err = sub.Next(wctx)
	if err != nil || ev.Kind != fanout.EventReset || ev.Reset.Epoch != hd.Epoch {
		t.Fatalf("subscriber got %+v, %v; want a reset to %s", ev, err, hd.Epoch)
	}

	feed.Close()
	if _, err := col.Put(ctx, "2", []byte(`1`)); err != nil {
		t.Fatalf("Put after the feed closed: %v", err)
	}
	if f2, err := hub.Feed("products", "again", ""); err != nil {
		t.Fatalf("Feed after Close: %v", err)
	} else {
		f2.Close()
	}
}

// TestFeedNeedsPositions: a store without source positions cannot be fed.
func TestFeedNeedsPositions(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	hub, err := viewsync.New(noPositions{st})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	if _, err := hub.Feed("products", "x", ""); err == nil {
		t.Fatal("Feed on a store without positions succeeded")
	}
}

// noPositions hides a store's store.Positions.
type noPositions struct{ store.Store }
