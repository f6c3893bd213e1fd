package natskv_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// recorder keeps the events a Watch reports.
type recorder struct {
	mu     sync.Mutex
	events []store.Event
	// changed is signalled after each event.
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) add(ev store.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds for the events so far, or the test's
// context ends.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]store.Event) bool) []store.Event {
	t.Helper()
	for {
		r.mu.Lock()
		evs := append([]store.Event(nil), r.events...)
		r.mu.Unlock()
		if cond(evs) {
			return evs
		}
		select {
		case <-r.changed:
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		}
	}
}

// TestTwoStores: two stores on one server share their collections: commits
// of both interleave with contiguous versions, each store's watchers see
// every commit of both in order exactly once, and a Drop on one is seen by
// the other as a new epoch.
func TestTwoStores(t *testing.T) {
	srv := startServer(t, serverOptions(t.TempDir()))
	a := openStore(t, srv.ClientURL(), natskv.Options{})
	b := openStore(t, srv.ClientURL(), natskv.Options{})
	ctx := t.Context()
	const coll, perWriter, writersPerStore = "shared", 40, 4

	// Both open the collection first: it is watched from version 0.
	ha, err := a.Head(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	if hb, err := b.Head(ctx, coll); err != nil || hb != ha {
		t.Fatalf("Head on b = %+v, %v; a said %+v", hb, err, ha)
	}
	recA, recB := newRecorder(), newRecorder()
	stopA := a.Watch(recA.add)
	defer stopA()
	stopB := b.Watch(recB.add)
	defer stopB()

	var wg sync.WaitGroup
	versions := make(chan uint64, 2*writersPerStore*perWriter)
	for i, s := range []*natskv.Store{a, b} {
		for w := range writersPerStore {
			wg.Go(func() {
				for n := range perWriter {
					id := fmt.Sprintf("s%d-w%d-%d", i, w, n)
					// Guarded read-modify-write of a shared record too.
					ops := []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte(fmt.Sprint(n))}}
					ap, err := s.Apply(ctx, coll, ops, nil)
					if err != nil {
						t.Errorf("Apply(%s): %v", id, err)
						return
					}
					if ap.Epoch != ha.Epoch {
						t.Errorf("Apply(%s) epoch %s, want %s", id, ap.Epoch, ha.Epoch)
					}
					versions <- ap.Commit.Version
				}
			})
		}
	}
	wg.Wait()
	close(versions)
	if t.Failed() {
		return
	}
	const total = 2 * writersPerStore * perWriter
	seen := make(map[uint64]bool, total)
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d acknowledged twice", v)
		}
		seen[v] = true
	}
	for v := uint64(1); v <= total; v++ {
		if !seen[v] {
			t.Fatalf("no commit got version %d", v)
		}
	}

	// Each store's watchers get every commit, in order, exactly once, and
	// the commits are those of the log (read on a once a has seen them
	// all: a store follows the others' commits with a lag).
	recA.waitFor(t, "all commits on a", func(evs []store.Event) bool { return len(evs) >= total })
	log, err := a.Changes(ctx, coll, 0, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Commits) != total {
		t.Fatalf("Changes on a after all events: %d commits, want %d", len(log.Commits), total)
	}
	for name, rec := range map[string]*recorder{"a": recA, "b": recB} {
		evs := rec.waitFor(t, "all commits on "+name, func(evs []store.Event) bool { return len(evs) >= total })
		if len(evs) != total {
			t.Fatalf("store %s: %d events, want %d", name, len(evs), total)
		}
		for i, ev := range evs {
			if ev.Commit == nil || ev.Collection != coll || ev.Epoch != ha.Epoch || ev.Version != uint64(i+1) || ev.Commit.Version != uint64(i+1) {
				t.Fatalf("store %s: event %d = %+v, want commit %d of %s", name, i, ev, i+1, coll)
			}
			want := log.Commits[i]
			if !ev.Commit.At.Equal(want.At) || len(ev.Commit.Ops) != 1 || ev.Commit.Ops[0].ID != want.Ops[0].ID {
				t.Fatalf("store %s: event %d commit %+v, the log has %+v", name, i, *ev.Commit, want)
			}
		}
	}
	// Reads agree.
	recB.waitFor(t, "all commits on b", func(evs []store.Event) bool { return len(evs) >= total })
	sa, err := a.Snapshot(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Snapshot(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Version != total || sb.Version != total || len(sa.Records) != total || len(sb.Records) != total {
		t.Fatalf("snapshots at %d (%d records) and %d (%d records), want %d", sa.Version, len(sa.Records), sb.Version, len(sb.Records), total)
	}

	// A Drop on a is a new history for b.
	nh, err := a.Drop(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	if nh.Epoch == ha.Epoch || nh.Version != 0 {
		t.Fatalf("Drop = %+v, want a new epoch at version 0", nh)
	}
	evs := recB.waitFor(t, "the drop on b", func(evs []store.Event) bool {
		last := evs[len(evs)-1]
		return last.Commit == nil && last.Epoch == nh.Epoch
	})
	if last := evs[len(evs)-1]; last.Version != 0 || last.Collection != coll {
		t.Fatalf("b's event for the drop = %+v, want %s at version 0", last, nh.Epoch)
	}
	for _, ev := range evs[total:] {
		if ev.Commit != nil {
			t.Fatalf("b reported a commit after the drop: %+v", ev)
		}
	}
	if h, err := b.Head(ctx, coll); err != nil || h != nh {
		t.Fatalf("Head on b after the drop = %+v, %v; want %+v", h, err, nh)
	}
	// The new history continues on b, and a follows.
	ap, err := b.Apply(ctx, coll, []protocol.Op{{Op: protocol.OpPut, ID: "x", Value: []byte("1")}}, map[string]uint64{"x": 0})
	if err != nil || ap.Epoch != nh.Epoch || ap.Commit.Version != 1 {
		t.Fatalf("Apply on b after the drop = %+v, %v; want version 1 in %s", ap, err, nh.Epoch)
	}
	recA.waitFor(t, "b's commit on a", func(evs []store.Event) bool {
		last := evs[len(evs)-1]
		return last.Commit != nil && last.Epoch == nh.Epoch && last.Version == 1
	})
	if r, err := a.Get(ctx, coll, "x"); err != nil || r.Version != 1 {
		t.Fatalf("Get on a = %+v, %v; want x at version 1", r, err)
	}
}
