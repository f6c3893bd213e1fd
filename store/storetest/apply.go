package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

func testVersionsContiguous(t *testing.T, f *fixture) {
	tr := f.track("c")
	for i := 1; i <= 5; i++ {
		before := time.Now()
		a := tr.put(fmt.Sprintf("r%d", i), fmt.Sprint(i))
		after := time.Now()
		if a.Commit.At.Before(before.Add(-time.Second)) || a.Commit.At.After(after.Add(time.Second)) {
			t.Fatalf("commit %d at %v, want the time of the Apply (between %v and %v)", i, a.Commit.At, before, after)
		}
		tr.checkHead()
	}
	tr.checkSnapshot()
	tr.checkLog(0)
}

// testCommitTime: commit times come from Config.Now, in UTC.
func testCommitTime(t *testing.T, f *fixture) {
	tr := f.track("c")
	for i := range 3 {
		tr.put("a", fmt.Sprint(i)) // tracker checks At against the clock
		f.clk.Advance(90 * time.Minute)
	}
	tr.checkLog(0)
}

// testCollectionsIndependent uses names that are prefixes of one another,
// which catches stores that key collections by a bare prefix.
func testCollectionsIndependent(t *testing.T, f *fixture) {
	names := []string{"a", "ab", "a.b", "a-b", "a_b", "a0", "b", strings.Repeat("a", protocol.MaxCollectionLen)}
	trs := make([]*tracker, len(names))
	for i, n := range names {
		trs[i] = f.track(n)
	}
	for round := 1; round <= 3; round++ {
		for i, tr := range trs {
			ops := []protocol.Op{put("x", fmt.Sprintf(`{"coll":%q,"round":%d}`, tr.coll, round))}
			// Ids that look like other collections' keys.
			ops = append(ops, put(names[(i+round)%len(names)]+"/x", fmt.Sprint(round)))
			if round == 3 && i%2 == 0 {
				ops = append(ops, del("x"))
			}
			tr.apply(nil, ops...)
		}
	}
	for _, tr := range trs {
		tr.checkAll(0, 2)
	}
}

func testRecordVersion(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.put("a", "2")
	tr.put("c", "3")
	tr.del("b")
	want := map[string]uint64{"a": 2, "c": 3}
	for id, v := range want {
		if r := f.get("c", id); r.Version != v || r.ID != id {
			t.Errorf("Get(c, %q) = %s, want version %d", id, recordString(r), v)
		}
	}
	f.requireMissing("c", "b")
	tr.checkSnapshot()
}

// testValuesRoundTrip: every kind of JSON value and unusual (valid) ids come
// back byte for byte.
func testValuesRoundTrip(t *testing.T, f *fixture) {
	values := []string{
		`null`, `true`, `false`, `0`, `-12.5e-3`, `18446744073709551616`,
		`""`, `"text"`, `"\u00fcn\u00efc\u00f8d\u00e9 \"q\" \\ \u2028"`, `"ünïcødé 日本語 🎉"`,
		`[]`, `{}`, `[1,{"a":[null,{"b":"c"}]}]`, `{"b":1,"a":2}`,
		`"` + strings.Repeat("v", 64<<10) + `"`,
	}
	ids := []string{
		"a", "A", "0", "-", "_", "a/b", "a:b", "a.b", "a b", "ü", "日本語", "🎉", `"quoted"`, `back\slash`,
		strings.Repeat("x", protocol.MaxIDLen), strings.Repeat("é", protocol.MaxIDLen/2),
	}
	for _, id := range ids {
		if err := protocol.ValidateID(id, 0); err != nil {
			t.Fatalf("test id %q: %v", id, err)
		}
	}
	tr := f.track("c")
	var ops []protocol.Op
	for i, id := range ids {
		ops = append(ops, put(id, values[i%len(values)]))
	}
	tr.apply(nil, ops...)
	for i, v := range values {
		tr.put(ids[i%len(ids)], v)
	}
	tr.checkSnapshot()
	tr.checkLog(0)
	tr.checkCatchUp(0)
	tr.checkCatchUp(3)
}

func testSnapshotSorted(t *testing.T, f *fixture) {
	tr := f.track("c")
	// Written out of order, in several commits; byte order puts "B" before
	// "a", "a" before "a0" and "a0" before "ab".
	tr.put("m", "1", "B", "2", "ab", "3")
	tr.put("a0", "4", "a", "5", "z", "6", "é", "7", "10", "8", "9", "9")
	var ops []protocol.Op
	for i := 99; i >= 0; i-- {
		ops = append(ops, put(fmt.Sprintf("n%03d", i*7%100), fmt.Sprint(i)))
	}
	tr.apply(nil, ops...)
	tr.del("m", "n050")
	s := f.snapshot("c")
	for i := 1; i < len(s.Records); i++ {
		if s.Records[i-1].ID >= s.Records[i].ID {
			t.Fatalf("Snapshot records not sorted by id: %q before %q", s.Records[i-1].ID, s.Records[i].ID)
		}
	}
	tr.checkSnapshot()
}

func testChangesAfterAndLimit(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.put("c", "2")
	tr.apply(nil, put("a", "3"), del("b"), put("d", "3"))
	tr.del("c")
	tr.put("b", "5", "c", "5")
	tr.apply(ifs("a", 3), del("a"))
	for after := uint64(0); after <= tr.head()+2; after++ {
		for _, limit := range []int{-1, 0, 1, 2, 3, 6, 100} {
			tr.checkChanges(after, store.Page{Commits: limit})
		}
	}
	tr.checkLog(0)
}

// testChangesByteBound: a page stops before the commit that would take it
// over its byte bound, never before the first commit, and the count bound
// still applies.
func testChangesByteBound(t *testing.T, f *fixture) {
	tr := f.track("c")
	for i, n := range []int{10, 300, 40, 2000, 5, 700, 700, 1, 64, 900} {
		tr.put(fmt.Sprintf("r%d", i%4), fmt.Sprintf("%q", strings.Repeat("x", n)))
	}
	tr.apply(nil, put("a", "1"), put("b", strings.Repeat("[", 50)+strings.Repeat("]", 50)), del("r0"))
	sizes := []int{1, 100, 400, 1000, 2200, 3000, 100000}
	for after := uint64(0); after <= tr.head()+1; after++ {
		for _, bytes := range sizes {
			for _, commits := range []int{0, 1, 2, 5} {
				tr.checkChanges(after, store.Page{Commits: commits, Bytes: bytes})
			}
		}
	}
	// The first commit comes whatever its size.
	if ch := f.changes("c", 3, store.Page{Bytes: 1}); len(ch.Commits) != 1 || ch.Commits[0].Version != 4 {
		t.Fatalf("Changes(after 3, Bytes 1) = %d commits, want commit 4 alone", len(ch.Commits))
	}
}

func testMultiOpAtomic(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1", "c", "1")
	var ops []protocol.Op
	for i := range 200 {
		ops = append(ops, put(fmt.Sprintf("bulk%03d", i), fmt.Sprint(i)))
	}
	ops = append(ops, del("a"), put("b", "2"))
	a := tr.apply(nil, ops...)
	for i := range 200 {
		if r := f.get("c", fmt.Sprintf("bulk%03d", i)); r.Version != a.Commit.Version {
			t.Fatalf("record %q of commit %d has version %d", r.ID, a.Commit.Version, r.Version)
		}
	}
	tr.checkAll(0, 1)
}

// testFailedCommitChangesNothing: a commit that fails, however late in its
// ops, leaves no trace: not in records, versions, the log or tombstones,
// and the next commit gets the next version.
func testFailedCommitChangesNothing(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.put("c", "2")
	tr.del("c")
	before := f.observe("c")
	cases := []struct {
		name string
		ops  []protocol.Op
		ifs  map[string]uint64
		want error
	}{
		{"put then delete missing", []protocol.Op{put("x", "1"), del("nope")}, nil, store.ErrNotFound},
		{"puts around a delete of a missing record",
			[]protocol.Op{put("a", "9"), put("x", "1"), del("nope"), put("y", "1")}, nil, store.ErrNotFound},
		{"delete of a deleted record", []protocol.Op{put("x", "1"), del("c")}, nil, store.ErrNotFound},
		{"delete twice", []protocol.Op{del("a"), del("a")}, nil, store.ErrNotFound},
		{"put, delete, delete", []protocol.Op{put("x", "1"), del("x"), del("x")}, nil, store.ErrNotFound},
		{"stale precondition", []protocol.Op{put("x", "1"), del("a")}, ifs("a", 2), store.ErrPrecondition},
		{"one stale of several", []protocol.Op{del("a"), put("z", "1")}, ifs("b", 1, "a", 1, "c", 2), store.ErrPrecondition},
		{"must not exist", []protocol.Op{put("b", "2")}, ifs("b", 0), store.ErrPrecondition},
	}
	for _, c := range cases {
		_, err := f.s.Apply(f.ctx(), "c", c.ops, c.ifs)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: Apply(%s, if %v) = %v, want %v", c.name, opsString(c.ops), c.ifs, err, c.want)
		}
		f.requireUnchanged("c", before, c.name)
		for _, id := range []string{"x", "y", "z", "nope"} {
			f.requireMissing("c", id)
		}
	}
	tr.put("x", "1")
	tr.checkAll(0, 2)
}

func testOpsInOrder(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.apply(nil, put("a", "1"), del("a"))
	f.requireMissing("c", "a")
	tr.apply(nil, put("b", "1"), put("b", "2"))
	tr.apply(nil, put("k", "1"))
	tr.apply(nil, del("k"), put("k", "2"))
	tr.apply(nil, put("c", "1"), put("d", "1"), del("c"), put("c", "2"), del("d"))
	want := map[string]string{"b": "2", "k": "2", "c": "2"}
	for id, v := range want {
		if r := f.get("c", id); string(r.Value) != v || r.Version != tr.state().version(id) {
			t.Errorf("Get(c, %q) = %s, want value %s at version %d", id, recordString(r), v, tr.state().version(id))
		}
	}
	f.requireMissing("c", "d")
	tr.checkSnapshot()
	tr.checkLog(0)
	tr.checkCatchUps(0)
}

func testEmptyCommit(t *testing.T, f *fixture) {
	for _, coll := range []string{"never", "c"} {
		if coll == "c" {
			f.apply("c", nil, put("a", "1"))
		}
		before := f.observe(coll)
		for _, c := range []struct {
			ops []protocol.Op
			ifs map[string]uint64
		}{{nil, nil}, {[]protocol.Op{}, nil}, {nil, ifs("a", 0)}, {[]protocol.Op{}, ifs("a", 1)}} {
			_, err := f.s.Apply(f.ctx(), coll, c.ops, c.ifs)
			if !errors.Is(err, store.ErrEmptyCommit) {
				t.Fatalf("Apply(%s, %#v, if %v) = %v, want ErrEmptyCommit", coll, c.ops, c.ifs, err)
			}
			f.requireUnchanged(coll, before, "an empty commit")
		}
	}
}

func testDeleteMissing(t *testing.T, f *fixture) {
	for _, coll := range []string{"never", "c"} {
		if coll == "c" {
			f.apply("c", nil, put("a", "1"))
			f.apply("c", nil, put("gone", "1"))
			f.apply("c", nil, del("gone"))
		}
		before := f.observe(coll)
		for _, id := range []string{"nope", "gone"} {
			_, err := f.s.Apply(f.ctx(), coll, []protocol.Op{del(id)}, nil)
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Apply(%s, delete %q) = %v, want ErrNotFound", coll, id, err)
			}
			var pe *store.PreconditionError
			if errors.As(err, &pe) {
				t.Fatalf("Apply(%s, delete %q) = %v: a missing record is not a failed precondition", coll, id, err)
			}
			f.requireUnchanged(coll, before, "a delete of a missing record")
		}
	}
}

// testValuesCopied: callers own what they pass in and what they get back.
func testValuesCopied(t *testing.T, f *fixture) {
	tr := f.track("c")
	ops := []protocol.Op{put("a", `{"n":1}`), put("b", `[2]`)}
	ops[0].Value = append([]byte(nil), ops[0].Value...)
	ops[1].Value = append([]byte(nil), ops[1].Value...)
	a := tr.apply(nil, ops...)
	scribble := func(b []byte) {
		for i := range b {
			b[i] = 'X'
		}
	}
	scribble(ops[0].Value)
	scribble(ops[1].Value)
	ops[0] = put("evil", "0")
	tr.checkSnapshot()

	scribble(a.Commit.Ops[0].Value)
	a.Commit.Ops[1] = put("evil", "0")
	tr.checkSnapshot()
	tr.checkLog(0)

	r := f.get("c", "a")
	scribble(r.Value)
	s := f.snapshot("c")
	for _, r := range s.Records {
		scribble(r.Value)
	}
	s.Records[0].ID = "evil"
	ch := f.changes("c", 0, store.Page{})
	for _, c := range ch.Commits {
		for i := range c.Ops {
			scribble(c.Ops[i].Value)
		}
		c.Ops[0].ID = "evil"
	}
	cu := f.catchUp("c", 0)
	for _, r := range cu.Records {
		scribble(r.Value)
	}
	tr.checkSnapshot()
	tr.checkLog(0)
	tr.checkCatchUp(0)
}
