package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// prevTests check Applied.Prev, and Event.Prev for a store.Watcher: the
// value each op's record had just before it. (Every commit the suite's
// tracker makes checks Prev against its model as well.)
func prevTests() []test {
	return []test{
		{name: "PutNew", run: testPrevPutNew},
		{name: "PutOver", run: testPrevPutOver},
		{name: "Delete", run: testPrevDelete},
		{name: "OneIDTwice", run: testPrevChained},
		{name: "ManyRecords", run: testPrevManyRecords},
		{name: "NotAliased", run: testPrevNotAliased},
		{name: "AfterReopen", run: testPrevAfterReopen},
		{name: "Watched", run: testPrevWatched},
	}
}

// none stands, in a list of expected previous values, for a record that
// did not exist (a nil Prev value); it is not JSON, so no value is it.
const none = ""

// prevOf returns the previous values vals stand for, none meaning nil.
func prevOf(vals ...string) []json.RawMessage {
	prev := make([]json.RawMessage, len(vals))
	for i, v := range vals {
		if v != none {
			prev[i] = json.RawMessage(v)
		}
	}
	return prev
}

// requirePrev fails the test unless a's Prev is what vals stand for.
func requirePrev(t *testing.T, what string, a store.Applied, vals ...string) {
	t.Helper()
	if d := diffPrev(a.Prev, prevOf(vals...)); d != "" {
		t.Fatalf("%s: Applied.Prev: %s", what, d)
	}
}

func testPrevPutNew(t *testing.T, f *fixture) {
	tr := f.track("c")
	requirePrev(t, "put of a new record", tr.put("a", `{"n":1}`), none)
	// A deleted record is no record either.
	tr.del("a")
	requirePrev(t, "put of a deleted record", tr.put("a", `{"n":2}`), none)
}

func testPrevPutOver(t *testing.T, f *fixture) {
	tr := f.track("c")
	// Values a re-encoding would change: key order, escapes, number
	// forms, non-ASCII text.
	v1 := `{"z":1,"a":[1.50,-0,1e3],"s":"\u00e9\"\\\u2028 é 日本語 🎉"}`
	v2 := `"second"`
	tr.put("a", v1)
	requirePrev(t, "put over a record", tr.put("a", v2), v1)
	requirePrev(t, "put over a record again", tr.put("a", `null`), v2)
	requirePrev(t, "put over a null", tr.put("a", `{}`), `null`)
}

func testPrevDelete(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", `[1,{"b":"c"}]`)
	requirePrev(t, "delete", tr.del("a"), `[1,{"b":"c"}]`)
}

func testPrevChained(t *testing.T, f *fixture) {
	tr := f.track("c")
	a := tr.apply(nil, put("a", `1`), put("a", `2`))
	requirePrev(t, "two puts of a new record", a, none, `1`)
	a = tr.apply(nil, put("a", `3`), del("a"), put("a", `4`), put("a", `5`))
	requirePrev(t, "put, delete, put, put of one record", a, `2`, `3`, none, `4`)
	a = tr.apply(nil, del("a"), put("a", `6`))
	requirePrev(t, "delete and put of one record", a, `5`, none)
}

func testPrevManyRecords(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", `"a1"`, "b", `"b1"`, "c", `"c1"`)
	a := tr.apply(nil,
		put("d", `"d1"`), put("b", `"b2"`), del("a"), put("c", `"c2"`),
		put("e", `"e1"`), put("b", `"b3"`), del("d"))
	requirePrev(t, "a commit over several records", a, none, `"b1"`, `"a1"`, `"c1"`, none, `"b2"`, `"d1"`)
	// Other collections are not involved.
	tr2 := f.track("other")
	requirePrev(t, "put in another collection", tr2.put("a", `"x"`), none)
}

// testPrevNotAliased: the values of Prev are the caller's. Commits after
// them, however much they rewrite, do not change them; and they share no
// memory with the store (scribbling on them changes no read) nor with the
// ops passed to Apply.
func testPrevNotAliased(t *testing.T, f *fixture) {
	tr := f.track("c")
	tr.put("a", `{"n":1}`, "b", `[1,2]`)
	ops := []protocol.Op{put("a", `{"n":2}`), put("a", `{"n":3}`), del("b")}
	for i := range ops {
		ops[i].Value = slices.Clone(ops[i].Value)
	}
	a := tr.apply(nil, ops...)
	want := prevOf(`{"n":1}`, `{"n":2}`, `[1,2]`)
	requirePrev(t, "put, put, delete", a, `{"n":1}`, `{"n":2}`, `[1,2]`)
	for i := range ops {
		scribble(ops[i].Value)
	}
	if d := diffPrev(a.Prev, want); d != "" {
		t.Fatalf("after changing the ops passed to Apply: Prev: %s", d)
	}

	// Rewrite the records, and enough others to reorganise a B+tree's
	// pages, many times over.
	long := `"` + strings.Repeat("x", 3000) + `"`
	for i := range 60 {
		tr.put("a", fmt.Sprintf(`{"n":%d}`, 10+i), "b", long, fmt.Sprintf("k%d", i), long)
		if i%3 == 0 {
			tr.del("b")
		}
	}
	tr.del("a")
	if d := diffPrev(a.Prev, want); d != "" {
		t.Fatalf("after later commits: Prev: %s", d)
	}

	// Scribbling on Prev changes nothing the store holds.
	b := tr.put("k0", `"new"`)
	for _, v := range slices.Concat(a.Prev, b.Prev) {
		scribble(v)
	}
	tr.checkSnapshot()
	tr.checkLog(0)
	tr.checkCatchUp(0)
}

// scribble overwrites b.
func scribble(b []byte) {
	for i := range b {
		b[i] = 'X'
	}
}

// testPrevAfterReopen: a persistent store knows the values it holds after
// reopening (an ephemeral one starts empty: nothing to check).
func testPrevAfterReopen(t *testing.T, f *fixture) {
	if !f.h.Persistent {
		t.Skip("the store is not persistent")
	}
	tr := f.track("c")
	tr.put("a", `{"n":1}`, "b", `"b"`)
	tr.del("b")
	f.reopen()
	a := tr.apply(nil, put("a", `{"n":2}`), put("b", `"b2"`), del("a"))
	requirePrev(t, "a commit after reopening", a, `{"n":1}`, none, `{"n":2}`)
}

// testPrevWatched: a store.Watcher reports, with each commit it follows,
// the values its ops replaced, whichever handle on the data made it. For
// a shared store (Harness.Shared) two handles take turns making commits,
// as two processes would, and each watches both's.
func testPrevWatched(t *testing.T, f *fixture) {
	if _, ok := f.s.(store.Watcher); !ok {
		t.Skip("the store is not a store.Watcher")
	}
	const coll = "c"
	// A Watcher reports the collections it has open: a Holder keeps this
	// one open however long the test takes.
	hold(t, f.s, coll)
	epoch := f.head(coll).Epoch
	handles := []store.Store{f.s}
	if f.h.Shared {
		other := f.mustOpen()
		t.Cleanup(func() { _ = other.Close() })
		hold(t, other, coll)
		if h, err := other.Head(f.ctx(), coll); err != nil || h.Epoch != epoch {
			t.Fatalf("Head(%s) on another handle = %+v, %v; want epoch %s", coll, h, err, epoch)
		}
		handles = append(handles, other)
	}
	logs := make([]*eventLog, len(handles))
	for i, s := range handles {
		w, ok := s.(store.Watcher)
		if !ok {
			t.Fatalf("handle %d is not a store.Watcher", i)
		}
		logs[i] = &eventLog{changed: make(chan struct{}, 1)}
		stop := w.Watch(logs[i].add)
		defer stop()
	}

	commits := []struct {
		ops  []protocol.Op
		prev []string
	}{
		{[]protocol.Op{put("a", `{"v":1}`), put("b", `[1]`)}, []string{none, none}},
		{[]protocol.Op{put("a", `{"v":2}`), del("b"), put("c", `"x"`), put("c", `"y"`)}, []string{`{"v":1}`, `[1]`, none, `"x"`}},
		{[]protocol.Op{del("a"), put("a", `{"v":3}`)}, []string{`{"v":2}`, none}},
		{[]protocol.Op{del("c")}, []string{`"y"`}},
		{[]protocol.Op{put("b", `null`), put("c", `"z"`)}, []string{none, none}},
		{[]protocol.Op{put("b", `{}`)}, []string{`null`}},
	}
	applied := make([]store.Applied, len(commits))
	for i, c := range commits {
		k := i % len(handles)
		// A handle checks a commit's deletes against what it has seen:
		// it must have seen the commit before, made by another handle.
		logs[k].waitForCommit(t, coll, uint64(i))
		a, err := handles[k].Apply(f.ctx(), coll, c.ops, nil)
		if err != nil {
			t.Fatalf("commit %d: Apply(%s, %s) on handle %d: %v", i+1, coll, opsString(c.ops), k, err)
		}
		if a.Commit.Version != uint64(i+1) {
			t.Fatalf("commit %d: Apply(%s, %s) version %d, want %d", i+1, coll, opsString(c.ops), a.Commit.Version, i+1)
		}
		requirePrev(t, fmt.Sprintf("commit %d", i+1), a, c.prev...)
		applied[i] = a
	}

	last := uint64(len(commits))
	for k, l := range logs {
		seen := make(map[uint64]bool)
		for _, ev := range l.waitForCommit(t, coll, last) {
			if ev.Collection != coll {
				continue
			}
			if ev.Commit == nil {
				t.Fatalf("handle %d: event %+v: a replaced history, but nothing replaced it", k, ev)
			}
			v := ev.Commit.Version
			if v < 1 || v > last || ev.Epoch != epoch {
				t.Fatalf("handle %d: event for commit %d in epoch %s, want one of 1 … %d in %s", k, v, ev.Epoch, last, epoch)
			}
			seen[v] = true
			c := commits[v-1]
			if d := diffOps(ev.Commit.Ops, c.ops); d != "" {
				t.Fatalf("handle %d: event for commit %d: %s", k, v, d)
			}
			if ev.Prev == nil {
				t.Fatalf("handle %d: event for commit %d, which it followed as it was made, has a nil Prev", k, v)
			}
			if d := diffPrev(ev.Prev, prevOf(c.prev...)); d != "" {
				t.Fatalf("handle %d: event for commit %d (%s): Event.Prev: %s", k, v, opsString(c.ops), d)
			}
		}
		for v := uint64(1); v <= last; v++ {
			if !seen[v] {
				t.Fatalf("handle %d: no event for commit %d", k, v)
			}
		}
	}
	// What Apply returned is still intact after the events were made.
	for i, a := range applied {
		requirePrev(t, fmt.Sprintf("commit %d after the events", i+1), a, commits[i].prev...)
	}
}

// eventLog keeps the events a Watch reports.
type eventLog struct {
	mu     sync.Mutex
	events []store.Event
	// changed is signalled after each event.
	changed chan struct{}
}

// add is the Watch callback.
func (l *eventLog) add(ev store.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// waitForCommit returns the events so far once they include commit
// version of coll (at once for version 0), failing the test if its
// context ends first.
func (l *eventLog) waitForCommit(t *testing.T, coll string, version uint64) []store.Event {
	t.Helper()
	for {
		l.mu.Lock()
		evs := slices.Clone(l.events)
		l.mu.Unlock()
		if version == 0 || slices.ContainsFunc(evs, func(ev store.Event) bool {
			return ev.Collection == coll && ev.Commit != nil && ev.Commit.Version == version
		}) {
			return evs
		}
		select {
		case <-l.changed:
		case <-t.Context().Done():
			t.Fatalf("waiting for the event of commit %d (%d events so far): %v", version, len(evs), t.Context().Err())
		}
	}
}

// hold holds coll of s until the test ends, if s is a store.Holder.
func hold(t *testing.T, s store.Store, coll string) {
	if h, ok := s.(store.Holder); ok {
		t.Cleanup(h.Hold(coll))
	}
}
