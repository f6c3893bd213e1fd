package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/viewsync/viewsync/store"
)

// tombstoneConfig is a short log and a one-hour tombstone horizon, for
// tests on the fixture's clock.
var tombstoneConfig = store.Config{RetainCommits: 2, RetainTombstones: time.Hour}

// requireHistoryGone checks that CatchUp from after fails with
// ErrHistoryGone.
func (f *fixture) requireHistoryGone(coll string, after uint64) {
	f.t.Helper()
	cu, err := f.s.CatchUp(f.ctx(), coll, after)
	if !errors.Is(err, store.ErrHistoryGone) {
		f.t.Fatalf("CatchUp(%s, after %d) = %+v, %v; want ErrHistoryGone: deletions after %d have been forgotten",
			coll, after, cu, err, after)
	}
}

func testHistoryGone(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1", "c", "1", "d", "1") // 1
	tr.del("a")                                    // 2
	tr.del("b")                                    // 3
	f.clk.Advance(30 * time.Minute)
	tr.put("e", "4") // 4: the tombstones are half an hour old
	tr.checkCatchUps(0)

	f.clk.Advance(2 * time.Hour)
	tr.put("f", "5") // 5: a and b were deleted two and a half hours ago
	tr.del("c")      // 6: a fresh tombstone
	for after := range uint64(3) {
		f.requireHistoryGone("c", after)
	}
	tr.checkCatchUps(3)

	f.clk.Advance(30 * time.Minute)
	tr.put("g", "7") // 7: c's tombstone is half an hour old
	for after := range uint64(3) {
		f.requireHistoryGone("c", after)
	}
	tr.checkCatchUps(3)
	if cu := f.catchUp("c", 5); !slices.Contains(cu.Deleted, "c") {
		t.Fatalf("CatchUp(c, after 5).Deleted = %q, want c, deleted at 6 half an hour ago", cu.Deleted)
	}

	// Another collection's history is its own.
	other := f.track("o")
	other.put("x", "1")
	other.del("x")
	other.put("y", "3")
	other.checkCatchUps(0)
}

// testTombstonesKept: up to the horizon, however many commits follow, a
// catch-up from before a deletion reports it.
func testTombstonesKept(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.del("a") // 2
	for i := range 11 {
		f.clk.Advance(5 * time.Minute) // up to 55 minutes after the deletion
		tr.put("b", fmt.Sprint(i))
		tr.checkCatchUp(0)
		tr.checkCatchUp(1)
		if cu := f.catchUp("c", 1); !slices.Contains(cu.Deleted, "a") {
			t.Fatalf("%v after the deletion of a at 2: CatchUp(c, after 1).Deleted = %q, want a",
				time.Duration(i+1)*5*time.Minute, cu.Deleted)
		}
	}
}

// testDropForgetsHorizon: a dropped collection's new history has no
// forgotten deletions.
func testDropForgetsHorizon(t *testing.T, f *fixture) {
	f.apply("c", nil, put("a", "1"))
	f.apply("c", nil, del("a"))
	f.clk.Advance(2 * time.Hour)
	f.apply("c", nil, put("b", "1"))
	f.requireHistoryGone("c", 0)

	f.drop("c")
	tr := f.track("c")
	tr.checkCatchUp(0)
	tr.put("a", "1")
	tr.del("a")
	tr.checkCatchUp(0)
	tr.checkCatchUp(1)
}
