package natskv_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// eventually polls cond until it holds, failing the test after a minute
// (a generous deadline, not a bound of the release).
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %s)", what, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// testJetStream connects to url for the test's own JetStream requests.
func testJetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// putOp is a put of value to the record id.
func putOp(id, value string) protocol.Op {
	return protocol.Op{Op: protocol.OpPut, ID: id, Value: []byte(value)}
}

// releases counts the store's "released" debug lines.
type releases struct{ n atomic.Int64 }

func (r *releases) Enabled(context.Context, slog.Level) bool { return true }
func (r *releases) Handle(_ context.Context, rec slog.Record) error {
	if strings.Contains(rec.Message, "released idle collection") {
		r.n.Add(1)
	}
	return nil
}
func (r *releases) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *releases) WithGroup(string) slog.Handler      { return r }

// TestIdleRelease: collections written while held, then used by nobody
// for IdleAfter, are released: the store holds none open and the server no
// consumer. Reading them again answers the same records and versions, and
// writes go on from there without a gap.
func TestIdleRelease(t *testing.T) {
	srv := startServer(t, serverOptions(t.TempDir()))
	rel := &releases{}
	s := openStore(t, srv.ClientURL(), natskv.Options{IdleAfter: 200 * time.Millisecond, Logger: slog.New(rel)})
	js := testJetStream(t, srv.ClientURL())
	ctx := t.Context()
	const n = 50
	name := func(i int) string { return fmt.Sprintf("idle-%02d", i) }
	// Held while written, so that all are open at once.
	var holds []func()
	for i := range n {
		holds = append(holds, s.Hold(name(i)))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for v := range 2 {
				if _, err := s.Apply(ctx, name(i), []protocol.Op{putOp("r", fmt.Sprintf(`{"i":%d,"v":%d}`, i, v+1))}, nil); err != nil {
					t.Errorf("Apply %s: %v", name(i), err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The stream layout has a consumer per open collection; the shared
	// layout one per store, its feed, which stays.
	streams, consumers, idle := n, n, 0
	if testShared() {
		streams, consumers, idle = 1, 1, 1
	}
	if c := countJetStream(t, js); c.consumers < consumers || testShared() && c.consumers != consumers || c.streams != streams {
		t.Fatalf("after writing %d collections: %d streams and %d consumers", n, c.streams, c.consumers)
	}
	if open := s.OpenCollections(); open != n {
		t.Fatalf("%d collections open while held, want %d", open, n)
	}
	for _, release := range holds {
		release()
	}

	// A collection leaves OpenCollections before its release ends (and
	// is logged): the shared layout has no consumer to wait for.
	eventually(t, "every collection released, and its consumer gone", func() (bool, string) {
		open, logged := s.OpenCollections(), rel.n.Load()
		info, err := js.AccountInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return open == 0 && info.Consumers == idle && logged >= n, fmt.Sprintf("%d open, %d consumers, %d releases logged", open, info.Consumers, logged)
	})
	if c := countJetStream(t, js); c.consumers != idle {
		t.Fatalf("%d consumers listed once released", c.consumers)
	}
	if got := rel.n.Load(); got < n {
		t.Errorf("%d releases logged, want at least %d", got, n)
	}

	for i := range n {
		h, err := s.Head(ctx, name(i))
		if err != nil || h.Version != 2 {
			t.Fatalf("Head %s after release = %+v, %v; want version 2", name(i), h, err)
		}
		r, err := s.Get(ctx, name(i), "r")
		if want := fmt.Sprintf(`{"i":%d,"v":2}`, i); err != nil || string(r.Value) != want || r.Version != 2 {
			t.Fatalf("Get %s/r after release = %s v%d, %v; want %s v2", name(i), r.Value, r.Version, err, want)
		}
		a, err := s.Apply(ctx, name(i), []protocol.Op{putOp("r", `{"v":3}`)}, map[string]uint64{"r": 2})
		if err != nil || a.Commit.Version != 3 || a.Epoch != h.Epoch {
			t.Fatalf("Apply %s after release = %+v, %v; want version 3 in epoch %s", name(i), a, err, h.Epoch)
		}
		ch, err := s.Changes(ctx, name(i), 0, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var vs []uint64
		for _, c := range ch.Commits {
			vs = append(vs, c.Version)
		}
		if !slices.Equal(vs, []uint64{1, 2, 3}) {
			t.Fatalf("Changes %s after 0 = versions %v, want 1 2 3", name(i), vs)
		}
	}
}

// TestHoldKeepsWatching: a held collection is not released, and its
// watchers keep getting the commits another store makes; once released
// (twice: the second does nothing) it goes like any other.
func TestHoldKeepsWatching(t *testing.T) {
	srv := startServer(t, serverOptions(t.TempDir()))
	a := openStore(t, srv.ClientURL(), natskv.Options{IdleAfter: 100 * time.Millisecond})
	b := openStore(t, srv.ClientURL(), natskv.Options{})
	ctx := t.Context()
	const held, loose = "held", "loose"

	release := a.Hold(held)
	for _, coll := range []string{held, loose} {
		if _, err := a.Head(ctx, coll); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	defer a.Watch(rec.add)()
	// The sweep has run once the other collection is gone.
	eventually(t, "the collection not held released", func() (bool, string) {
		n := a.OpenCollections()
		return n == 1, fmt.Sprintf("%d open", n)
	})

	const commits = 5
	for i := range commits {
		if _, err := b.Apply(ctx, held, []protocol.Op{putOp(fmt.Sprintf("r%d", i), `1`)}, nil); err != nil {
			t.Fatal(err)
		}
		// Let sweeps pass between the commits.
		time.Sleep(50 * time.Millisecond)
	}
	rec.waitFor(t, "the other store's commits", func(evs []store.Event) bool {
		var vs []uint64
		for _, ev := range evs {
			if ev.Collection == held && ev.Commit != nil {
				vs = append(vs, ev.Commit.Version)
			}
		}
		return slices.Equal(vs, []uint64{1, 2, 3, 4, 5})
	})
	if n := a.OpenCollections(); n != 1 {
		t.Fatalf("%d collections open, want the held one", n)
	}

	release()
	release()
	eventually(t, "the collection released once no longer held", func() (bool, string) {
		n := a.OpenCollections()
		return n == 0, fmt.Sprintf("%d open", n)
	})
	if h, err := a.Head(ctx, held); err != nil || h.Version != commits {
		t.Fatalf("Head %s = %+v, %v; want version %d", held, h, err, commits)
	}
}

// TestIdleReleaseRace: with collections released almost as soon as they
// are idle, two stores read and write a few collections at random, so
// that releases race with every kind of use: every Apply succeeds once,
// the versions of each collection are contiguous, and every read answers.
func TestIdleReleaseRace(t *testing.T) {
	srv := startServer(t, serverOptions(t.TempDir()))
	rel := &releases{}
	stores := []*natskv.Store{
		openStore(t, srv.ClientURL(), natskv.Options{IdleAfter: time.Millisecond, Logger: slog.New(rel)}),
		openStore(t, srv.ClientURL(), natskv.Options{IdleAfter: time.Millisecond, Logger: slog.New(rel)}),
	}
	ctx := t.Context()
	colls := []string{"race-a", "race-b", "race-c"}
	const workers, rounds = 3, 14
	var mu sync.Mutex
	versions := map[string][]uint64{}
	var wg sync.WaitGroup
	for si, s := range stores {
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(si), uint64(w)))
				for i := range rounds {
					coll := colls[rng.IntN(len(colls))]
					id := fmt.Sprintf("s%dw%d", si, w)
					var err error
					switch rng.IntN(4) {
					case 0, 1:
						var a store.Applied
						a, err = s.Apply(ctx, coll, []protocol.Op{putOp(id, fmt.Sprintf(`%d`, i))}, nil)
						if err == nil {
							mu.Lock()
							versions[coll] = append(versions[coll], a.Commit.Version)
							mu.Unlock()
						}
					case 2:
						_, err = s.Snapshot(ctx, coll)
					case 3:
						_, err = s.Changes(ctx, coll, 0, store.Page{})
					}
					if err != nil {
						t.Errorf("store %d, %s: %v", si, coll, err)
						return
					}
					// Idle for a sweep or two, now and then.
					time.Sleep(time.Duration(rng.IntN(25)) * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, coll := range colls {
		vs := versions[coll]
		slices.Sort(vs)
		for i, v := range vs {
			if v != uint64(i+1) {
				t.Fatalf("%s: versions %v, want 1..%d", coll, vs, len(vs))
			}
		}
		for _, s := range stores {
			h, err := s.Head(ctx, coll)
			if err != nil || h.Version != uint64(len(vs)) {
				t.Fatalf("Head %s = %+v, %v; want version %d", coll, h, err, len(vs))
			}
		}
	}
	if rel.n.Load() == 0 {
		t.Error("no collection was released")
	}
}
