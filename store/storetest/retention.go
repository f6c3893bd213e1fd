package storetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// testLogRetention: with RetainCommits 10, the log keeps at least the last
// 10 commits, as a contiguous suffix, and has let go of the first after 50;
// a catch-up works from every cursor.
func testLogRetention(t *testing.T, f *fixture) {
	retain := f.cfg.RetainCommits
	tr := f.track("c")
	for i := 1; i <= 5*retain; i++ {
		ops := []protocol.Op{put(fmt.Sprintf("r%d", i%7), fmt.Sprintf(`{"i":%d}`, i))}
		if gone := fmt.Sprintf("r%d", (i+3)%7); i%4 == 0 && tr.state().version(gone) != 0 {
			ops = append(ops, del(gone))
		}
		tr.apply(nil, ops...)
	}
	if _, err := f.s.Changes(f.ctx(), "c", 0, store.Page{}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(c, after 0) after %d commits with RetainCommits %d = %v, want ErrCompacted",
			tr.head(), retain, err)
	}
	tr.checkLog(retain)
	tr.checkCatchUps(0)
	tr.checkSnapshot()

	// The log keeps rolling.
	for i := range 3 {
		tr.put("late", fmt.Sprint(i))
		tr.checkLog(retain)
	}
}

// testCatchUpScenario spells one catch-up out: records rewritten, deleted,
// re-created, and created then deleted after the cursor.
func testCatchUpScenario(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1", "c", "1", "d", "1") // 1
	tr.del("a")                                    // 2: deleted, re-created at 5
	tr.put("b", "3")                               // 3
	tr.del("c")                                    // 4: deleted for good
	tr.put("a", "5")                               // 5
	tr.put("e", "6")                               // 6: created after the cursor...
	tr.del("e")                                    // 7: ...and deleted
	tr.put("f", "8")                               // 8
	tr.checkCatchUp(1)

	cu := f.catchUp("c", 1)
	var ids []string
	for _, r := range cu.Records {
		ids = append(ids, r.ID)
	}
	if want := []string{"b", "a", "f"}; !slices.Equal(ids, want) {
		t.Fatalf("CatchUp(c, after 1) records %q, want %q in version order", ids, want)
	}
	if !slices.Contains(cu.Deleted, "c") {
		t.Fatalf("CatchUp(c, after 1) deleted %q, want it to name c", cu.Deleted)
	}
	for _, id := range []string{"a", "b", "d", "f"} {
		if slices.Contains(cu.Deleted, id) {
			t.Fatalf("CatchUp(c, after 1) deleted %q names %q, which exists", cu.Deleted, id)
		}
	}
	tr.checkCatchUps(0)
}

// testCatchUpRandomised: random puts, deletes and re-creations on a small
// id space with a short log; from every cursor, the state at the cursor
// (from the suite's model) plus the catch-up is the snapshot.
func testCatchUpRandomised(t *testing.T, f *fixture) {
	const (
		commits = 150
		idSpace = 6
	)
	retain := f.cfg.RetainCommits
	rng := rand.New(rand.NewPCG(randomSeed(t), 0))
	tr := f.track("c")
	for i := 1; i <= commits; i++ {
		pending := maps.Clone(tr.state())
		var ops []protocol.Op
		for j := range 1 + rng.IntN(3) {
			id := fmt.Sprintf("k%d", rng.IntN(idSpace))
			if _, ok := pending[id]; ok && rng.IntN(3) == 0 {
				ops = append(ops, del(id))
				delete(pending, id)
			} else {
				ops = append(ops, put(id, fmt.Sprintf(`{"i":%d,"j":%d}`, i, j)))
				pending[id] = protocol.Record{}
			}
		}
		tr.apply(nil, ops...)
		f.clk.Advance(time.Second)
		if i%50 == 0 {
			tr.checkCatchUps(0)
		}
	}
	if _, err := f.s.Changes(f.ctx(), "c", 0, store.Page{}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(c, after 0) after %d commits with RetainCommits %d = %v, want ErrCompacted", commits, retain, err)
	}
	tr.checkLog(retain)
	tr.checkSnapshot()
}
