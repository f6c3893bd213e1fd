package fanout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestMain fails the run if a test leaves a goroutine behind: every broker,
// hub, store and subscriber goroutine a test starts must be stopped by it.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// coll is the collection the tests write to.
const coll = "items"

// waitLong bounds every wait for something that must happen; waitShort is
// how long a test watches for something that must not.
const (
	waitLong  = 15 * time.Second
	waitShort = 100 * time.Millisecond
)

// opener opens a fresh store with cfg for the running test; it is closed
// when the test ends.
type opener func(cfg store.Config) store.Store

// backends are the stores every scenario runs against.
var backends = []struct {
	name string
	open func(t testing.TB, cfg store.Config) store.Store
}{
	{"memstore", func(t testing.TB, cfg store.Config) store.Store {
		s := memstore.New(&memstore.Options{Config: cfg})
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close memstore: %v", err)
			}
		})
		return s
	}},
	{"boltstore", func(t testing.TB, cfg store.Config) store.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "fanout.db"), &boltstore.Options{Config: cfg})
		if err != nil {
			t.Fatalf("open boltstore: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close boltstore: %v", err)
			}
		})
		return s
	}},
}

// forEachStore runs f once per store implementation, as a subtest.
func forEachStore(t *testing.T, f func(t *testing.T, open opener)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			f(t, func(cfg store.Config) store.Store { return be.open(t, cfg) })
		})
	}
}

// newBroker returns a broker on st, closed when the test ends (before the
// store, which was opened first).
func newBroker(t testing.TB, st store.Store, o fanout.Options) *fanout.Broker {
	t.Helper()
	b := fanout.New(st, &o)
	t.Cleanup(b.Close)
	return b
}

// subscribe subscribes to coll, closing the subscription when the test ends.
func subscribe(t testing.TB, b *fanout.Broker, cur *protocol.Cursor) *fanout.Subscription {
	t.Helper()
	s, err := b.Subscribe(coll, cur)
	if err != nil {
		t.Fatalf("Subscribe(%v): %v", cur, err)
	}
	t.Cleanup(s.Close)
	return s
}

func put(id, value string) protocol.Op {
	return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(value)}
}

func del(id string) protocol.Op { return protocol.Op{Op: protocol.OpDelete, ID: id} }

// apply applies ops to coll as one commit, as the hub does before it
// publishes.
func apply(t testing.TB, st store.Store, ops ...protocol.Op) store.Applied {
	t.Helper()
	ap, err := st.Apply(context.Background(), coll, ops, nil)
	if err != nil {
		t.Fatalf("apply %v: %v", ops, err)
	}
	return ap
}

// publish hands an applied commit to the broker, as the hub does.
func publish(b *fanout.Broker, ap store.Applied) { b.Publish(coll, ap.Epoch, ap.Commit, ap.Prev) }

// applyN applies n commits, the i-th (from 0) writing record r(i%10) and
// every seventh also deleting another record if it exists. It returns them
// in version order.
func applyN(t testing.TB, st store.Store, n int) []store.Applied {
	t.Helper()
	out := make([]store.Applied, 0, n)
	for range n {
		hd, err := st.Head(context.Background(), coll)
		if err != nil {
			t.Fatalf("head: %v", err)
		}
		i := int(hd.Version)
		ops := []protocol.Op{put(fmt.Sprintf("r%d", i%10), fmt.Sprintf(`{"n":%d}`, i))}
		if i%7 == 6 {
			victim := fmt.Sprintf("r%d", (i+3)%10)
			if _, err := st.Get(context.Background(), coll, victim); err == nil {
				ops = append(ops, del(victim))
			}
		}
		out = append(out, apply(t, st, ops...))
	}
	return out
}

// head returns coll's head in st.
func head(t testing.TB, st store.Store) protocol.Head {
	t.Helper()
	hd, err := st.Head(context.Background(), coll)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	return hd
}

// snapshot returns coll's snapshot in st.
func snapshot(t testing.TB, st store.Store) protocol.Snapshot {
	t.Helper()
	s, err := st.Snapshot(context.Background(), coll)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

// next returns the subscription's next event, failing the test if none
// comes in time. Its Frames are a copy the caller may keep.
func next(t testing.TB, s *fanout.Subscription) fanout.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next after %v: %v", s.Cursor(), err)
	}
	ev.Frames = slices.Clone(ev.Frames)
	return ev
}

// expectNothing fails the test if the subscription delivers anything
// within waitShort.
func expectNothing(t testing.TB, s *fanout.Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	ev, err := s.Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next after %v = %s, %v; want nothing (deadline exceeded)", s.Cursor(), describe(ev), err)
	}
}

// describe summarises an event for failure messages.
func describe(ev fanout.Event) string {
	switch ev.Kind {
	case fanout.EventCommits:
		if len(ev.Frames) == 0 {
			return "commits[]"
		}
		return fmt.Sprintf("commits[%s:%d..%d]", ev.Frames[0].Epoch, ev.Frames[0].Version(), ev.Frames[len(ev.Frames)-1].Version())
	case fanout.EventCatchUp:
		if ev.CatchUp == nil {
			return "catchup(nil)"
		}
		return fmt.Sprintf("catchup(%s:%d, %d records, %d deleted)", ev.CatchUp.Epoch, ev.CatchUp.Version, len(ev.CatchUp.Records), len(ev.CatchUp.Deleted))
	default:
		if ev.Reset == nil {
			return "reset(nil)"
		}
		return fmt.Sprintf("reset(%s:%d, %d records)", ev.Reset.Epoch, ev.Reset.Version, len(ev.Reset.Records))
	}
}

// versions lists the versions of frames.
func versions(frames []*fanout.Frame) []uint64 {
	vs := make([]uint64, len(frames))
	for i, f := range frames {
		vs[i] = f.Version()
	}
	return vs
}

// span returns the versions from..to.
func span(from, to uint64) []uint64 {
	var vs []uint64
	for v := from; v <= to; v++ {
		vs = append(vs, v)
	}
	return vs
}

// view is a client's state as built from a subscription's events; apply
// checks guarantee 2 as it goes.
type view struct {
	cur  protocol.Cursor
	recs map[string]protocol.Record
	// counts of events applied, by kind.
	commits, catchUps, resets int
}

func newView() *view { return &view{recs: map[string]protocol.Record{}} }

// viewAt returns the view of a client that applied commits and stands
// after the last of them.
func viewAt(t testing.TB, epoch string, commits []store.Applied) *view {
	t.Helper()
	v := newView()
	v.cur.Epoch = epoch
	for _, ap := range commits {
		f, err := fanout.NewFrame(coll, ap.Epoch, ap.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.apply(fanout.Event{Kind: fanout.EventCommits, Frames: []*fanout.Frame{f}}); err != nil {
			t.Fatalf("building view: %v", err)
		}
	}
	return v
}

// apply applies one event, reporting any breach of the delivery rules: a
// commit must be the one right after the cursor, in its epoch; a catch-up
// stays in the epoch, never goes back and holds only newer records; a reset
// replaces everything.
func (v *view) apply(ev fanout.Event) error {
	switch ev.Kind {
	case fanout.EventReset:
		s := ev.Reset
		if s == nil || !s.Reset || s.Collection != coll || s.Records == nil {
			return fmt.Errorf("malformed reset %+v", s)
		}
		v.recs = make(map[string]protocol.Record, len(s.Records))
		for _, r := range s.Records {
			v.recs[r.ID] = r
		}
		v.cur = protocol.Cursor{Epoch: s.Epoch, Version: s.Version}
		v.resets++
	case fanout.EventCatchUp:
		cu := ev.CatchUp
		if cu == nil || !cu.Compacted || cu.Collection != coll || cu.Records == nil || cu.Deleted == nil {
			return fmt.Errorf("malformed catch-up %+v", cu)
		}
		if v.cur.Epoch != "" && cu.Epoch != v.cur.Epoch {
			return fmt.Errorf("catch-up in epoch %q after cursor %v", cu.Epoch, v.cur)
		}
		if cu.Version < v.cur.Version {
			return fmt.Errorf("catch-up to %d goes back from cursor %v", cu.Version, v.cur)
		}
		for _, r := range cu.Records {
			if r.Version <= v.cur.Version || r.Version > cu.Version {
				return fmt.Errorf("catch-up %v..%d carries record %q at version %d", v.cur, cu.Version, r.ID, r.Version)
			}
			v.recs[r.ID] = r
		}
		for _, id := range cu.Deleted {
			delete(v.recs, id)
		}
		v.cur = protocol.Cursor{Epoch: cu.Epoch, Version: cu.Version}
		v.catchUps++
	case fanout.EventCommits:
		if len(ev.Frames) == 0 {
			return errors.New("empty commits event")
		}
		for _, f := range ev.Frames {
			if f.Collection != coll {
				return fmt.Errorf("frame of collection %q", f.Collection)
			}
			if v.cur.Epoch == "" {
				v.cur.Epoch = f.Epoch
			}
			if f.Epoch != v.cur.Epoch || f.Version() != v.cur.Version+1 {
				return fmt.Errorf("commit %s:%d after cursor %v (gap, duplicate or other epoch)", f.Epoch, f.Version(), v.cur)
			}
			for _, op := range f.Commit.Ops {
				switch op.Op {
				case protocol.OpPut:
					v.recs[op.ID] = protocol.Record{ID: op.ID, Value: op.Value, Version: f.Version()}
				case protocol.OpDelete:
					if _, ok := v.recs[op.ID]; !ok {
						return fmt.Errorf("commit %d deletes %q, which the view does not hold", f.Version(), op.ID)
					}
					delete(v.recs, op.ID)
				default:
					return fmt.Errorf("commit %d has op %q", f.Version(), op.Op)
				}
			}
			v.cur.Version++
			v.commits++
		}
	default:
		return fmt.Errorf("unknown event kind %d", ev.Kind)
	}
	return nil
}

// matches reports how the view differs from a snapshot, or nil.
func (v *view) matches(s protocol.Snapshot) error {
	if v.cur != (protocol.Cursor{Epoch: s.Epoch, Version: s.Version}) {
		return fmt.Errorf("view at %v, snapshot at %s:%d", v.cur, s.Epoch, s.Version)
	}
	if len(v.recs) != len(s.Records) {
		return fmt.Errorf("view holds %d records, snapshot %d", len(v.recs), len(s.Records))
	}
	for _, r := range s.Records {
		got, ok := v.recs[r.ID]
		if !ok {
			return fmt.Errorf("view lacks record %q", r.ID)
		}
		if got.Version != r.Version || !bytes.Equal(got.Value, r.Value) {
			return fmt.Errorf("record %q: view has %s@%d, snapshot %s@%d", r.ID, got.Value, got.Version, r.Value, r.Version)
		}
	}
	return nil
}

// mustApply applies ev to v, failing the test on a breach.
func mustApply(t testing.TB, v *view, ev fanout.Event) {
	t.Helper()
	if err := v.apply(ev); err != nil {
		t.Fatalf("%s: %v", describe(ev), err)
	}
}
