package storetest

import (
	"errors"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

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

// preconditionTests cover Apply's ifs (see groups), one case each: its
// steps are applied in order to collection c, then the snapshot and the
// log are checked.
func preconditionTests() []test {
	cases := []struct {
		name  string
		steps []step
	}{
		{"Match", []step{
			commit(ifs("a", 0), put("a", "1")),
			commit(ifs("a", 1), put("a", "2")),
			commit(ifs("a", 2, "b", 0), put("b", "3"), put("a", "3")),
			commit(ifs("a", 3, "b", 3), del("a")),
			commit(ifs("a", 0, "b", 3), put("a", "5")),
		}},
		{"Mismatch", []step{
			commit(nil, put("a", "1")),
			commit(nil, put("a", "2")),
			refused(ifs("a", 1), put("a", `"x"`), failed("a", 1, 2)),
			refused(ifs("a", 3), del("a"), failed("a", 3, 2)),
			commit(ifs("a", 2), put("a", "3")),
		}},
		{"MustNotExist", []step{
			commit(nil, put("a", "1")),
			refused(ifs("a", 0), put("a", "2"), failed("a", 0, 1)),
			commit(ifs("b", 0), put("b", "2")),
			refused(ifs("b", 0), put("b", "3"), failed("b", 0, 2)),
		}},
		// The first step is the first call to a collection never written.
		{"MissingRecord", []step{
			refused(ifs("z", 5), put("z", "1"), failed("z", 5, 0)),
			commit(nil, put("a", "1")),
			refused(ifs("z", 1), put("a", "1"), failed("z", 1, 0)),
		}},
		// A deleted record has no version; it can be created again under
		// "must not exist".
		{"AfterDelete", []step{
			commit(nil, put("a", "1")),
			commit(nil, del("a")),
			refused(ifs("a", 1), put("a", "2"), failed("a", 1, 0)),
			commit(ifs("a", 0), put("a", "3")),
			refused(ifs("a", 1), put("a", "4"), failed("a", 1, 3)),
		}},
		// A precondition may guard a record the commit does not touch.
		{"OnAnotherRecord", []step{
			commit(nil, put("b", "1")),
			commit(ifs("b", 1), put("a", "2")),
			refused(ifs("b", 2), put("a", "3"), failed("b", 2, 1)),
			commit(ifs("gone", 0), put("a", "4")),
		}},
		// Of several failed preconditions, the error names one.
		{"SeveralOneFails", []step{
			commit(nil, put("a", "1"), put("b", "1")),
			commit(nil, put("b", "2")),
			refused(ifs("a", 1, "b", 7, "c", 0), put("a", `"x"`), failed("b", 7, 2)),
			refused(ifs("a", 1, "b", 1, "c", 3), put("a", `"x"`), failed("b", 1, 2), failed("c", 3, 0)),
			commit(ifs("a", 1, "b", 2, "c", 0), put("c", "3")),
		}},
	}
	tests := make([]test, 0, len(cases))
	for _, c := range cases {
		tests = append(tests, test{name: c.name, run: func(t *testing.T, f *fixture) { runSteps(f, c.steps) }})
	}
	return tests
}

// step is one commit of a precondition case: it must succeed when fails is
// empty, else fail as one of fails says and change nothing.
type step struct {
	ifs   map[string]uint64
	ops   []protocol.Op
	fails []store.PreconditionError
}

// commit is a step that must succeed.
func commit(ifs map[string]uint64, ops ...protocol.Op) step { return step{ifs: ifs, ops: ops} }

// refused is a step that must fail as one of fails says.
func refused(ifs map[string]uint64, op protocol.Op, fails ...store.PreconditionError) step {
	return step{ifs: ifs, ops: []protocol.Op{op}, fails: fails}
}

// failed is the failure of the precondition on record id: version want
// required, have found.
func failed(id string, want, have uint64) store.PreconditionError {
	return store.PreconditionError{ID: id, Want: want, Have: have}
}

// runSteps applies steps to collection c, tracking it from the first
// commit that must succeed, then checks its snapshot and log.
func runSteps(f *fixture, steps []step) {
	var tr *tracker
	for _, s := range steps {
		if len(s.fails) > 0 {
			f.applyFailing("c", s.ifs, s.ops, s.fails...)
			continue
		}
		if tr == nil {
			tr = f.track("c")
		}
		tr.apply(s.ifs, s.ops...)
	}
	tr.checkSnapshot()
	tr.checkLog(0)
}
