package storetest

import (
	"strings"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

func testEmptyHead(t *testing.T, f *fixture) {
	for _, coll := range []string{"c", "0", "a.b-c_d", strings.Repeat("z", protocol.MaxCollectionLen)} {
		hd := f.head(coll)
		if hd.Version != 0 {
			t.Errorf("Head(%s).Version = %d, want 0", coll, hd.Version)
		}
		if hd.Epoch == "" {
			t.Errorf("Head(%s).Epoch is empty; an epoch must name the history", coll)
		}
		if err := protocol.ValidateEpoch(hd.Epoch); err != nil {
			t.Errorf("Head(%s).Epoch: %v", coll, err)
		}
	}
}

func testEmptyEpochStable(t *testing.T, f *fixture) {
	first := f.head("c")
	if again := f.head("c"); again != first {
		t.Fatalf("Head(c) = %+v, then %+v", first, again)
	}
	// Reads and writes of other collections leave it alone.
	f.head("d")
	f.snapshot("d")
	f.requireMissing("d", "x")
	f.changes("d", 0, store.Page{})
	f.catchUp("d", 0)
	f.apply("e", nil, put("x", "1"))
	f.apply("e", nil, del("x"))
	f.drop("g")
	if again := f.head("c"); again != first {
		t.Fatalf("Head(c) = %+v, then %+v after other collections were used", first, again)
	}
	if s := f.snapshot("c"); s.Epoch != first.Epoch || s.Version != 0 {
		t.Errorf("Snapshot(c) at %s:%d, want %s:0", s.Epoch, s.Version, first.Epoch)
	}
	if ch := f.changes("c", 0, store.Page{}); ch.Epoch != first.Epoch || ch.Version != 0 {
		t.Errorf("Changes(c, 0) at %s:%d, want %s:0", ch.Epoch, ch.Version, first.Epoch)
	}
	if cu := f.catchUp("c", 0); cu.Epoch != first.Epoch || cu.Version != 0 {
		t.Errorf("CatchUp(c, 0) at %s:%d, want %s:0", cu.Epoch, cu.Version, first.Epoch)
	}
}

func testEmptyGet(t *testing.T, f *fixture) {
	f.requireMissing("c", "a")
	// A record of the same id in another collection is not this one.
	f.apply("other", nil, put("a", `"other"`))
	f.requireMissing("c", "a")
	f.requireMissing("c", "other")
}

func testEmptySnapshot(t *testing.T, f *fixture) {
	f.apply("other", nil, put("a", "1"))
	hd := f.head("c")
	s := f.snapshot("c")
	if s.Epoch != hd.Epoch || s.Version != 0 || len(s.Records) != 0 || s.Reset {
		t.Fatalf("Snapshot(c) = %+v, want epoch %q, version 0, no records", s, hd.Epoch)
	}
}

func testEmptyChanges(t *testing.T, f *fixture) {
	hd := f.head("c")
	for _, c := range []struct {
		after uint64
		limit int
	}{{0, 0}, {0, 5}, {0, -1}, {7, 0}} {
		ch := f.changes("c", c.after, store.Page{Commits: c.limit})
		if ch.Epoch != hd.Epoch || ch.Version != 0 || len(ch.Commits) != 0 {
			t.Errorf("Changes(c, after %d, limit %d) = %+v, want %s:0 without commits", c.after, c.limit, ch, hd.Epoch)
		}
	}
}

func testEmptyCatchUp(t *testing.T, f *fixture) {
	hd := f.head("c")
	cu := f.catchUp("c", 0)
	if cu.Epoch != hd.Epoch || cu.Version != 0 || len(cu.Records) != 0 || len(cu.Deleted) != 0 {
		t.Fatalf("CatchUp(c, 0) = %+v, want %s:0 with nothing", cu, hd.Epoch)
	}
}

// testFirstCommitKeepsEpoch: a client that read the empty collection and
// then sees its first commit must not be told the history was replaced.
func testFirstCommitKeepsEpoch(t *testing.T, f *fixture) {
	before := f.head("c")
	f.snapshot("c")
	a := f.apply("c", nil, put("a", "1"))
	if a.Epoch != before.Epoch {
		t.Fatalf("first Apply epoch %q, but Head said %q before it", a.Epoch, before.Epoch)
	}
	if after := f.head("c"); after.Epoch != before.Epoch || after.Version != 1 {
		t.Fatalf("Head(c) after the first commit = %+v, want %s:1", after, before.Epoch)
	}
}
