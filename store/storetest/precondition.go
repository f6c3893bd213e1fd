package storetest

import (
	"errors"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// preconditionTests cover Apply's ifs: record id → required version, 0
// meaning the record must not exist, checked against the state before the
// commit.
func preconditionTests() []test {
	return []test{
		{"Match", testPreconditionMatch},
		{"Mismatch", testPreconditionMismatch},
		{"MustNotExist", testPreconditionMustNotExist},
		{"MissingRecord", testPreconditionMissing},
		{"AfterDelete", testPreconditionAfterDelete},
		{"OnAnotherRecord", testPreconditionOtherRecord},
		{"SeveralOneFails", testPreconditionSeveral},
	}
}

// requirePreconditionError checks that err is a failed precondition, both
// by errors.Is and errors.As, naming one of the allowed failures.
func requirePreconditionError(t *testing.T, err error, allowed ...store.PreconditionError) {
	t.Helper()
	if !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("Apply = %v, want an error that is ErrPrecondition", err)
	}
	var pe *store.PreconditionError
	if !errors.As(err, &pe) {
		t.Fatalf("Apply = %v (%T), want an error that is a *store.PreconditionError", err, err)
	}
	for _, a := range allowed {
		if *pe == a {
			return
		}
	}
	t.Fatalf("Apply failed precondition %+v, want one of %+v", *pe, allowed)
}

// applyFailing applies ops under ifs to coll, which must fail as a
// precondition named in allowed, and checks that nothing changed.
func (f *fixture) applyFailing(coll string, ifs map[string]uint64, ops []protocol.Op, allowed ...store.PreconditionError) {
	f.t.Helper()
	before := f.observe(coll)
	_, err := f.s.Apply(f.ctx(), coll, ops, ifs)
	requirePreconditionError(f.t, err, allowed...)
	f.requireUnchanged(coll, before, "a failed precondition")
}

func testPreconditionMatch(t *testing.T, h Harness) {
	f := open(t, h, store.Config{})
	tr := f.track("c")
	tr.apply(ifs("a", 0), put("a", "1"))
	tr.apply(ifs("a", 1), put("a", "2"))
	tr.apply(ifs("a", 2, "b", 0), put("b", "3"), put("a", "3"))
	tr.apply(ifs("a", 3, "b", 3), del("a"))
	tr.apply(ifs("a", 0, "b", 3), put("a", "5"))
	tr.checkSnapshot()
	tr.checkLog(0)
}

func testPreconditionMismatch(t *testing.T, h Harness) {
	f := open(t, h, store.Config{})
	tr := f.track("c")
	tr.put("a", "1")
	tr.put("a", "2")
	f.applyFailing("c", ifs("a", 1), []protocol.Op{put("a", `"x"`)}, store.PreconditionError{ID: "a", Want: 1, Have: 2})
	f.applyFailing("c", ifs("a", 3), []protocol.Op{del("a")}, store.PreconditionError{ID: "a", Want: 3, Have: 2})
	tr.apply(ifs("a", 2), put("a", "3"))
	tr.checkSnapshot()
}

func testPreconditionMustNotExist(t *testing.T, h Harness) {
	f := open(t, h, store.Config{})
	tr := f.track("c")
	tr.put("a", "1")
	f.applyFailing("c", ifs("a", 0), []protocol.Op{put("a", "2")}, store.PreconditionError{ID: "a", Want: 0, Have: 1})
	tr.apply(ifs("b", 0), put("b", "2"))
	f.applyFailing("c", ifs("b", 0), []protocol.Op{put("b", "3")}, store.PreconditionError{ID: "b", Want: 0, Have: 2})
	tr.checkSnapshot()
}

func testPreconditionMissing(t *testing.T, h Harness) {
	f := open(t, h, store.Config{})
	f.applyFailing("c", ifs("z", 5), []protocol.Op{put("z", "1")}, store.PreconditionError{ID: "z", Want: 5, Have: 0})
	tr := f.track("c")
	tr.put("a", "1")
	f.applyFailing("c", ifs("z", 1), []protocol.Op{put("a", "1")}, store.PreconditionError{ID: "z", Want: 1, Have: 0})
}

// testPreconditionAfterDelete: a deleted record has no version; it can be
// created again under "must not exist".
func testPreconditionAfterDelete(t *testing.T, h Harness) {
	f := open(t, h, store.Config{})
	tr := f.track("c")
	tr.put("a", "1")
	tr.del("a")
	f.applyFailing("c", ifs("a", 1), []protocol.Op{put("a", "2")}, store.PreconditionError{ID: "a", Want: 1, Have: 0})
	tr.apply(ifs("a", 0), put("a", "3"))
	f.applyFailing("c", ifs("a", 1), []protocol.Op{put("a", "4")}, store.PreconditionError{ID: "a", Want: 1, Have: 3})
	tr.checkSnapshot()
}

// testPreconditionOtherRecord: a precondition may guard a record the commit
// does not touch.
func testPreconditionOtherRecord(t *testing.T, h Harness) {
	f := open(t, h, store.Config{})
	tr := f.track("c")
	tr.put("b", "1")
	tr.apply(ifs("b", 1), put("a", "2"))
	f.applyFailing("c", ifs("b", 2), []protocol.Op{put("a", "3")}, store.PreconditionError{ID: "b", Want: 2, Have: 1})
	tr.apply(ifs("gone", 0), put("a", "4"))
	tr.checkSnapshot()
	tr.checkLog(0)
}

func testPreconditionSeveral(t *testing.T, h Harness) {
	f := open(t, h, store.Config{})
	tr := f.track("c")
	tr.put("a", "1", "b", "1")
	tr.put("b", "2")
	f.applyFailing("c", ifs("a", 1, "b", 7, "c", 0), []protocol.Op{put("a", `"x"`)},
		store.PreconditionError{ID: "b", Want: 7, Have: 2})
	f.applyFailing("c", ifs("a", 1, "b", 1, "c", 3), []protocol.Op{put("a", `"x"`)},
		store.PreconditionError{ID: "b", Want: 1, Have: 2}, store.PreconditionError{ID: "c", Want: 3, Have: 0})
	tr.apply(ifs("a", 1, "b", 2, "c", 0), put("c", "3"))
	tr.checkSnapshot()
}
