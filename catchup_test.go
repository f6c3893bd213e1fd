package viewsync_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
)

// TestCatchUpAfterTrimmedLog is the catch-up promise end to end: a client
// holds a snapshot of 1,000 records while 100,000 commits go by, far more
// than the 1,000 the log retains, all of them touching a known few records.
// Asking over HTTP for the changes after its old cursor, it gets one
// compacted catch-up holding only what changed — not the 1,000 records,
// not the 100,000 commits — and applying it gives exactly the server's
// state. A cursor of another epoch, or ahead of the head, gets a reset.
func TestCatchUpAfterTrimmedLog(t *testing.T) {
	const (
		coll      = "catalog"
		initial   = 1000    // records r0000..r0999 before the client's snapshot
		commits   = 100_000 // commits after it
		nUpdated  = 50      // r0000..r0049, updated over and over
		nDeleted  = 20      // r0050..r0069, deleted
		nCreated  = 10      // n000..n009, created
		nRetained = 1000    // commits the log keeps
	)
	// NoSync: this test is about what the store keeps and what a lagging
	// client receives, not about durability (TestConcurrentWritersLongPollReaders
	// runs with fsync). Syncing each of 100,000 commits would make it take
	// minutes for nothing it checks.
	st := openStore(t, boltstore.Options{NoSync: true, Config: store.Config{RetainCommits: nRetained}})
	hub := newHub(t, st)
	srv := serve(t, hub, nil)
	c := collection(t, hub, coll)
	ctx := t.Context()

	rid := func(i int) string { return fmt.Sprintf("r%04d", i) }
	nid := func(i int) string { return fmt.Sprintf("n%03d", i) }
	for b := 0; b < initial; b += 100 {
		var ops []viewsync.Op
		for i := b; i < b+100; i++ {
			ops = append(ops, viewsync.Put(rid(i), fmt.Appendf(nil, `{"i":%d,"n":0}`, i)))
		}
		commit(t, c, ops...)
	}

	// The client's snapshot: its cursor is V0 in epoch E.
	var snap protocol.Snapshot
	srv.getJSON(t, "/v1/collections/"+coll, &snap)
	if len(snap.Records) != initial {
		t.Fatalf("snapshot has %d records, want %d", len(snap.Records), initial)
	}
	v0, epoch := snap.Version, snap.Epoch

	// 100,000 single-op commits, concurrently so that the store groups
	// them into few transactions: each updater owns one record, and one
	// more goroutine deletes and creates.
	updates := commits - nDeleted - nCreated
	var wg sync.WaitGroup
	for i := range nUpdated {
		n := updates / nUpdated
		if i < updates%nUpdated {
			n++
		}
		wg.Go(func() {
			for k := 1; k <= n; k++ {
				if _, err := c.Commit(ctx, []viewsync.Op{viewsync.Put(rid(i), fmt.Appendf(nil, `{"i":%d,"n":%d}`, i, k))}, nil); err != nil {
					t.Errorf("update %s: %v", rid(i), err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range nDeleted {
			if _, err := c.Delete(ctx, rid(nUpdated+i)); err != nil {
				t.Errorf("delete: %v", err)
				return
			}
			if i%2 == 0 {
				if _, err := c.Put(ctx, nid(i/2), fmt.Appendf(nil, `{"new":%d}`, i/2), viewsync.IfAbsent()); err != nil {
					t.Errorf("create: %v", err)
					return
				}
			}
		}
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var now protocol.Snapshot
	srv.getJSON(t, "/v1/collections/"+coll, &now)
	if now.Epoch != epoch || now.Version != v0+commits {
		t.Fatalf("server at %s:%d, want %s:%d", now.Epoch, now.Version, epoch, v0+commits)
	}
	if want := initial - nDeleted + nCreated; len(now.Records) != want {
		t.Fatalf("server has %d records, want %d", len(now.Records), want)
	}

	// The log no longer reaches back to V0.
	if _, err := st.Changes(ctx, coll, v0, store.Page{Commits: 1}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("store changes after %d: %v, want the log trimmed past it", v0, err)
	}

	wantChanged := map[string]bool{}
	for i := range nUpdated {
		wantChanged[rid(i)] = true
	}
	for i := range nCreated {
		wantChanged[nid(i)] = true
	}
	var wantDeleted []string
	for i := range nDeleted {
		wantDeleted = append(wantDeleted, rid(nUpdated+i))
	}

	for _, cur := range []protocol.Cursor{{Epoch: epoch, Version: v0}, {Version: v0}} {
		var cu changesBody
		r := srv.getJSON(t, changesPath(coll, cur, 0, 0), &cu)
		what := "changes after " + cur.String()
		if !cu.Compacted || cu.Reset || cu.Commits != nil {
			t.Fatalf("%s: compacted=%v reset=%v with %d commits; want a catch-up", what, cu.Compacted, cu.Reset, len(cu.Commits))
		}
		if cu.Epoch != epoch || cu.Version != now.Version {
			t.Errorf("%s: catch-up to %s:%d, want %s:%d", what, cu.Epoch, cu.Version, epoch, now.Version)
		}
		if len(cu.Records) > len(wantChanged) {
			t.Errorf("%s: %d records, more than the %d that changed", what, len(cu.Records), len(wantChanged))
		}
		got := map[string]bool{}
		for _, rec := range cu.Records {
			if got[rec.ID] {
				t.Errorf("%s: record %s twice", what, rec.ID)
			}
			got[rec.ID] = true
			if rec.Version <= v0 {
				t.Errorf("%s: record %s at version %d, not after the cursor", what, rec.ID, rec.Version)
			}
		}
		if !maps.Equal(got, wantChanged) {
			t.Errorf("%s: records %v, want exactly %v", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(wantChanged)))
		}
		if d := slices.Sorted(slices.Values(cu.Deleted)); !slices.Equal(d, wantDeleted) {
			t.Errorf("%s: deleted %v, want exactly %v", what, d, wantDeleted)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
		}

		// The client applies it to its snapshot and has the server's state.
		client := stateOf(snap.Records)
		client.applyCatchUp(&viewsync.CatchUp{Records: cu.Records, Deleted: cu.Deleted})
		if d := client.diff(stateOf(now.Records)); d != "" {
			t.Errorf("%s: snapshot + catch-up differs from the server: %s", what, d)
		}
	}

	// A client within the log still gets plain commits.
	var recent changesBody
	srv.getJSON(t, changesPath(coll, protocol.Cursor{Epoch: epoch, Version: now.Version - 5}, 0, 0), &recent)
	if recent.Compacted || recent.Reset || len(recent.Commits) != 5 || recent.Commits[4].Version != now.Version {
		t.Errorf("changes after head-5: compacted=%v reset=%v, %d commits; want the last 5 commits", recent.Compacted, recent.Reset, len(recent.Commits))
	}

	// Cursors that cannot be resumed get a reset: the whole snapshot.
	for _, cur := range []protocol.Cursor{
		{Epoch: "another-epoch", Version: v0},
		{Epoch: "another-epoch", Version: now.Version - 5},
		{Epoch: epoch, Version: now.Version + 1},
		{Version: now.Version + 1000},
	} {
		var rs changesBody
		srv.getJSON(t, changesPath(coll, cur, 0, 0), &rs)
		what := "changes after " + cur.String()
		if !rs.Reset || rs.Compacted || rs.Commits != nil {
			t.Errorf("%s: reset=%v compacted=%v with %d commits; want a reset", what, rs.Reset, rs.Compacted, len(rs.Commits))
			continue
		}
		if rs.Epoch != epoch || rs.Version != now.Version {
			t.Errorf("%s: reset to %s:%d, want %s:%d", what, rs.Epoch, rs.Version, epoch, now.Version)
		}
		if d := stateOf(rs.Records).diff(stateOf(now.Records)); d != "" {
			t.Errorf("%s: reset records differ from the snapshot: %s", what, d)
		}
	}
}
