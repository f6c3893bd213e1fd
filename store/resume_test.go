package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestResume: each cursor gets the cheapest answer that brings it to the
// head without a gap — commits while the log holds them, else a catch-up,
// else a reset — and a cursor of another epoch or ahead of the head gets
// a reset.
func TestResume(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	st := memstore.New(&memstore.Options{Config: store.Config{RetainCommits: 2, RetainTombstones: time.Hour, Now: clock}})
	defer st.Close()
	ctx := t.Context()
	const coll = "board"
	apply := func(op protocol.Op) uint64 {
		t.Helper()
		ap, err := st.Apply(ctx, coll, []protocol.Op{op}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ap.Commit.Version
	}
	put := func(id string) protocol.Op { return protocol.Op{Op: protocol.OpPut, ID: id, Value: []byte(`1`)} }

	apply(put("gone"))
	deleted := apply(protocol.Op{Op: protocol.OpDelete, ID: "gone"})
	for i := range 20 {
		apply(put(fmt.Sprint("r", i%3)))
	}
	hd, err := st.Head(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		cur  protocol.Cursor
		page store.Page
		want store.ResumeKind
		// n is the commits expected for KindCommits.
		n int
	}{
		{"one behind", protocol.Cursor{Epoch: hd.Epoch, Version: hd.Version - 1}, store.Page{}, store.KindCommits, 1},
		{"current epoch", protocol.Cursor{Version: hd.Version - 1}, store.Page{}, store.KindCommits, 1},
		{"a page", protocol.Cursor{Epoch: hd.Epoch, Version: hd.Version - 2}, store.Page{Commits: 1}, store.KindCommits, 1},
		{"at the head", hd.Cursor(), store.Page{}, store.KindCommits, 0},
		{"behind the log", protocol.Cursor{Epoch: hd.Epoch, Version: deleted - 1}, store.Page{}, store.KindCatchUp, 0},
		{"another epoch", protocol.Cursor{Epoch: "other", Version: hd.Version - 1}, store.Page{}, store.KindReset, 0},
		{"ahead of the head", protocol.Cursor{Epoch: hd.Epoch, Version: hd.Version + 1}, store.Page{}, store.KindReset, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := store.Resume(ctx, st, coll, tc.cur, tc.page)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tc.want {
				t.Fatalf("Resume(%v) is a %v, want a %v", tc.cur, r.Kind, tc.want)
			}
			switch r.Kind {
			case store.KindCommits:
				if len(r.Commits.Commits) != tc.n || r.Head().Version != tc.cur.Version+uint64(tc.n) {
					t.Fatalf("Resume(%v): %d commits to %v, want %d", tc.cur, len(r.Commits.Commits), r.Head(), tc.n)
				}
			case store.KindCatchUp:
				cu := r.CatchUp
				if cu.Collection != coll || !cu.Compacted || r.Head() != hd || len(cu.Deleted) != 1 || cu.Deleted[0] != "gone" {
					t.Fatalf("Resume(%v): catch-up %+v, want to %v deleting \"gone\"", tc.cur, cu, hd)
				}
			case store.KindReset:
				if s := r.Reset; s.Collection != coll || !s.Reset || r.Head() != hd || len(s.Records) != 3 {
					t.Fatalf("Resume(%v): reset %+v, want the 3 records at %v", tc.cur, s, hd)
				}
			}
		})
	}

	// A reader whose backlog was dropped gets a catch-up even where the
	// log would do.
	cur := protocol.Cursor{Epoch: hd.Epoch, Version: hd.Version - 1}
	if r, err := store.ResumeCompacted(ctx, st, coll, cur); err != nil || r.Kind != store.KindCatchUp || r.Head() != hd {
		t.Fatalf("ResumeCompacted(%v) = %v to %v, %v; want a catch-up to %v", cur, r.Kind, r.Head(), err, hd)
	}

	// Once the deletion is forgotten, a cursor before it can only reset.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	apply(put("late"))
	cur = protocol.Cursor{Epoch: hd.Epoch, Version: deleted - 1}
	if r, err := store.Resume(ctx, st, coll, cur, store.Page{}); err != nil || r.Kind != store.KindReset || len(r.Reset.Records) != 4 {
		t.Fatalf("Resume(%v) past the tombstone horizon = %v, %v; want a reset with 4 records", cur, r.Kind, err)
	}
}
