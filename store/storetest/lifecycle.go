package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// requireNewEpoch checks that hd starts a new history: version 0 and a
// valid epoch different from every old one.
func requireNewEpoch(t *testing.T, what string, hd protocol.Head, old ...string) {
	t.Helper()
	if hd.Version != 0 || hd.Epoch == "" {
		t.Fatalf("%s = %+v, want a new epoch at version 0", what, hd)
	}
	if err := protocol.ValidateEpoch(hd.Epoch); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, o := range old {
		if hd.Epoch == o {
			t.Fatalf("%s kept epoch %q; a new history needs a new epoch", what, o)
		}
	}
}

// requireEmpty checks every read of a collection at version 0 of epoch.
func (f *fixture) requireEmpty(coll, epoch string, ids ...string) {
	f.t.Helper()
	if hd := f.head(coll); hd.Epoch != epoch || hd.Version != 0 {
		f.t.Fatalf("Head(%s) = %+v, want %s:0", coll, hd, epoch)
	}
	if s := f.snapshot(coll); s.Epoch != epoch || s.Version != 0 || len(s.Records) != 0 {
		f.t.Fatalf("Snapshot(%s) = %+v, want %s:0 with no records", coll, s, epoch)
	}
	for _, after := range []uint64{0, 3} {
		if ch := f.changes(coll, after, store.Page{}); ch.Epoch != epoch || ch.Version != 0 || len(ch.Commits) != 0 {
			f.t.Fatalf("Changes(%s, after %d) = %+v, want %s:0 with no commits", coll, after, ch, epoch)
		}
	}
	if cu := f.catchUp(coll, 0); cu.Epoch != epoch || cu.Version != 0 || len(cu.Records) != 0 || len(cu.Deleted) != 0 {
		f.t.Fatalf("CatchUp(%s, after 0) = %+v, want %s:0 with nothing", coll, cu, epoch)
	}
	for _, id := range ids {
		f.requireMissing(coll, id)
	}
}

func testDrop(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.del("a")
	tr.put("b", "3")
	other := f.track("o")
	other.put("b", "1")
	old := f.head("c")

	nh := f.drop("c")
	requireNewEpoch(t, "Drop(c)", nh, old.Epoch)
	f.requireEmpty("c", nh.Epoch, "a", "b")

	// The new history starts at 1 in the new epoch.
	tr = f.track("c")
	tr.put("b", `"new"`)
	tr.apply(ifs("b", 1), del("b"))
	tr.put("z", "3")
	tr.checkAll()
	tr.checkCatchUps(0)

	// Other collections keep theirs.
	other.checkAll()

	again := f.drop("c")
	requireNewEpoch(t, "second Drop(c)", again, old.Epoch, nh.Epoch)
	f.requireEmpty("c", again.Epoch, "z")
}

func testDropUnwritten(t *testing.T, f *fixture) {
	old := f.head("c")
	nh := f.drop("c")
	requireNewEpoch(t, "Drop(c) of a collection never written", nh, old.Epoch)
	f.requireEmpty("c", nh.Epoch)
	tr := f.track("c")
	tr.put("a", "1")
	tr.checkLog(0)
}

// testReopen: a persistent store comes back as it was, log, tombstones and
// horizon included, and continues; an ephemeral one starts new histories.
func testReopen(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.del("a")
	tr.put("b", "3", "c", "3")
	f.apply("d", nil, put("x", "1"))
	dropped := f.drop("d")
	f.apply("d", nil, put("y", "1"))
	untouched := f.head("u")
	before := f.observe("c")

	f.reopen()
	if !f.h.Persistent {
		hd := f.head("c")
		requireNewEpoch(t, "Head(c) after reopening an ephemeral store", hd, before.head.Epoch)
		f.requireEmpty("c", hd.Epoch, "b", "c")
		requireNewEpoch(t, "Head(d) after reopening an ephemeral store", f.head("d"), dropped.Epoch)
		tr = f.track("c")
		tr.put("a", "1")
		tr.checkLog(0)
		return
	}

	f.requireUnchanged("c", before, "reopening")
	tr.checkAll()
	tr.checkCatchUps(0)
	if hd := f.head("d"); hd.Epoch != dropped.Epoch || hd.Version != 1 {
		t.Fatalf("Head(d) after reopening = %+v, want %s:1 (the epoch Drop started)", hd, dropped.Epoch)
	}
	if hd := f.head("u"); hd != untouched {
		t.Fatalf("Head(u) of a collection never written = %+v after reopening, was %+v", hd, untouched)
	}

	// The log continues where it was.
	tr.put("d", "4")
	tr.checkLog(0)
	f.reopen()
	tr.checkHead()
	tr.checkLog(0)

	// The tombstone horizon survives too.
	f.clk.Advance(2 * time.Hour)
	tr.put("e", "5")
	f.requireHistoryGone("c", 1)
	f.reopen()
	f.requireHistoryGone("c", 1)
	tr.checkCatchUps(2)
	tr.checkSnapshot()
}

func testClosed(t *testing.T, f *fixture) {
	f.apply("c", nil, put("a", "1"))
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := f.ctx()
	for _, coll := range []string{"c", "never"} {
		_, headErr := f.s.Head(ctx, coll)
		_, applyErr := f.s.Apply(ctx, coll, []protocol.Op{put("b", "1")}, nil)
		_, getErr := f.s.Get(ctx, coll, "a")
		_, snapErr := f.s.Snapshot(ctx, coll)
		_, chErr := f.s.Changes(ctx, coll, 0, store.Page{})
		_, cuErr := f.s.CatchUp(ctx, coll, 0)
		_, dropErr := f.s.Drop(ctx, coll)
		for _, c := range []struct {
			call string
			err  error
		}{
			{"Head", headErr}, {"Apply", applyErr}, {"Get", getErr}, {"Snapshot", snapErr},
			{"Changes", chErr}, {"CatchUp", cuErr}, {"Drop", dropErr},
		} {
			if !errors.Is(c.err, store.ErrClosed) {
				t.Errorf("%s(%s) after Close = %v, want ErrClosed", c.call, coll, c.err)
			}
		}
	}
	if err := f.s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close = %v, want nil or ErrClosed", err)
	}
}

// testDoneContext: a call whose context is already cancelled or past its
// deadline fails with that context's error and changes nothing.
func testDoneContext(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.del("a")
	before := f.observe("c")
	neverBefore := f.observe("n")

	cancelled, cancel := context.WithCancel(f.ctx())
	cancel()
	expired, cancelExpired := context.WithDeadline(f.ctx(), time.Now().Add(-time.Second))
	defer cancelExpired()
	for _, dc := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		ctx := dc.ctx
		_, applyErr := f.s.Apply(ctx, "c", []protocol.Op{put("x", "1"), del("b")}, nil)
		_, applyNewErr := f.s.Apply(ctx, "n", []protocol.Op{put("x", "1")}, nil)
		_, dropErr := f.s.Drop(ctx, "c")
		_, headErr := f.s.Head(ctx, "c")
		_, getErr := f.s.Get(ctx, "c", "b")
		_, snapErr := f.s.Snapshot(ctx, "c")
		_, chErr := f.s.Changes(ctx, "c", 0, store.Page{})
		_, cuErr := f.s.CatchUp(ctx, "c", 0)
		for _, c := range []struct {
			call string
			err  error
		}{
			{"Apply", applyErr}, {"Apply to a new collection", applyNewErr}, {"Drop", dropErr}, {"Head", headErr},
			{"Get", getErr}, {"Snapshot", snapErr}, {"Changes", chErr}, {"CatchUp", cuErr},
		} {
			if !errors.Is(c.err, dc.want) {
				t.Errorf("%s with a context that is done = %v, want an error wrapping %v", c.call, c.err, dc.want)
			}
		}
		f.requireUnchanged("c", before, "calls with a done context")
		f.requireUnchanged("n", neverBefore, "calls with a done context")
	}
	tr.put("b", "4")
	tr.checkLog(0)
}
