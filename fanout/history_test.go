package fanout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomised history test (0: a new one each run)")

// historyConfig shapes one randomised history.
type historyConfig struct {
	writers, commitsPerWriter int
	subscribers               int
	// drops is how many times the collection is dropped while writers
	// write.
	drops int
}

// TestRandomHistory: writers commit random multi-op changes through the
// hub while subscribers follow, some slow, each now and then closing its
// subscription and resuming from its cursor. Afterwards every subscriber's
// observed sequence must have been commits at consecutive versions, each as
// its writer stored it, except where a catch-up or a reset intervened; and
// each subscriber's state must equal the final snapshot.
func TestRandomHistory(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	for _, tc := range []struct {
		name string
		cfg  historyConfig
	}{
		{"steady", historyConfig{writers: 4, commitsPerWriter: 250, subscribers: 8}},
		{"drops", historyConfig{writers: 3, commitsPerWriter: 150, subscribers: 6, drops: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, open opener) {
				runHistory(t, open(store.Config{RetainCommits: 40}), seed, tc.cfg)
			})
		})
	}
}

// follower is one subscriber of a randomised history and what it saw.
type follower struct {
	id   int
	slow bool
	v    *view
	// frames are the commits it received, in order.
	frames       []*fanout.Frame
	resubscribes int
	// stalled is set when it stopped reading until far more commits than
	// the buffer holds had been made; stallEvent is what it got next.
	stalled    bool
	stallEvent fanout.EventKind
}

func runHistory(t *testing.T, st store.Store, seed uint64, cfg historyConfig) {
	h, err := viewsync.New(st, viewsync.WithFanout(fanout.Options{BufferBytes: 8 << 10, PageSize: 7, GapTimeout: 20 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := h.Collection(coll)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// deadline is a hang guard: a run takes seconds, but a busy machine
	// syncing every commit of the bbolt store to disk can make it long.
	deadline := time.Now().Add(2 * time.Minute)

	// stored maps each version to the commit as its writer got it back;
	// only kept while there is a single history.
	var (
		storedMu sync.Mutex
		stored   = map[uint64]protocol.Commit{}
	)
	var (
		writing = make(chan struct{}) // closed when writers may start
		written atomic.Int64          // commits attempted so far
		final   atomic.Pointer[protocol.Cursor]
		wg      sync.WaitGroup
	)

	followers := make([]*follower, cfg.subscribers)
	for i := range followers {
		f := &follower{id: i, slow: i%2 == 1, v: newView()}
		followers[i] = f
		rng := rand.New(rand.NewPCG(seed, 1000+uint64(i)))
		var start *protocol.Cursor
		if i%3 != 0 {
			start = &protocol.Cursor{}
		}
		s, err := c.Subscribe(start)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer func() { s.Close() }()
			stallDone := i != 1
			for events := 0; ; events++ {
				if fc := final.Load(); fc != nil && f.v.cur == *fc {
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("subscriber %d stuck at %v, final head %v", i, f.v.cur, final.Load())
					return
				}
				nctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				ev, err := s.Next(nctx)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				if err != nil {
					t.Errorf("subscriber %d at %v: %v", i, f.v.cur, err)
					return
				}
				if err := f.v.apply(ev); err != nil {
					t.Errorf("subscriber %d, event %d, %s: %v", i, events, describe(ev), err)
					return
				}
				if got := s.Cursor(); got != f.v.cur {
					t.Errorf("subscriber %d: Cursor() = %v, its view is at %v", i, got, f.v.cur)
					return
				}
				f.frames = append(f.frames, ev.Frames...)
				if f.stalled && f.stallEvent < 0 {
					f.stallEvent = ev.Kind
				}
				switch {
				case !stallDone && ev.Kind == fanout.EventCommits:
					// Stop reading until far more than the buffer holds has
					// been committed, if the writers get that far.
					stallDone = true
					target := f.v.cur.Version + 100
					for time.Now().Before(deadline) && final.Load() == nil {
						hd, err := c.Head(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						if hd.Version >= target && hd.Epoch == f.v.cur.Epoch {
							f.stalled, f.stallEvent = true, -1
							break
						}
						time.Sleep(time.Millisecond)
					}
				case f.slow:
					d := time.Duration(rng.IntN(2000)) * time.Microsecond
					if rng.IntN(20) == 0 {
						d = 20 * time.Millisecond
					}
					time.Sleep(d)
				}
				if events == 3 || rng.IntN(25) == 0 {
					s.Close()
					cur := f.v.cur
					if s, err = c.Subscribe(&cur); err != nil {
						t.Errorf("subscriber %d: resubscribe at %v: %v", i, cur, err)
						return
					}
					f.resubscribes++
				}
			}
		})
	}

	var writers sync.WaitGroup
	for w := range cfg.writers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		writers.Go(func() {
			<-writing
			for n := 0; n < cfg.commitsPerWriter; n++ {
				// Spread the history over a while, so that subscribers
				// take part as it unfolds.
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				written.Add(1)
				ops := make([]viewsync.Op, 1+rng.IntN(4))
				for k := range ops {
					id := fmt.Sprintf("k%d", rng.IntN(24))
					if rng.IntN(10) < 3 {
						ops[k] = viewsync.Delete(id)
					} else {
						ops[k] = viewsync.Put(id, fmt.Appendf(nil, `{"w":%d,"n":%d,"k":%d}`, w, n, k))
					}
				}
				cm, err := c.Commit(ctx, ops, nil)
				switch {
				case errors.Is(err, viewsync.ErrNotFound):
					// A delete of a record absent now: nothing changed.
				case err != nil:
					t.Errorf("writer %d: %v", w, err)
					return
				case cfg.drops == 0:
					storedMu.Lock()
					stored[cm.Version] = cm
					storedMu.Unlock()
				}
			}
		})
	}
	if cfg.drops > 0 {
		rng := rand.New(rand.NewPCG(seed, 999))
		writers.Go(func() {
			<-writing
			total := cfg.writers * cfg.commitsPerWriter
			for k := range cfg.drops {
				// Somewhere in the k-th of drops+1 equal stretches of the
				// writes.
				at := int64(total*k/(cfg.drops+1) + rng.IntN(total/(cfg.drops+1)))
				for written.Load() < at {
					time.Sleep(100 * time.Microsecond)
				}
				if _, err := c.Drop(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	close(writing)
	writers.Wait()

	snap, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	final.Store(&protocol.Cursor{Epoch: snap.Epoch, Version: snap.Version})
	wg.Wait()
	if t.Failed() {
		return
	}

	var commits, catchUps, resets, resubscribes int
	for _, f := range followers {
		if err := f.v.matches(snap); err != nil {
			t.Errorf("subscriber %d (slow %v): final state: %v", f.id, f.slow, err)
		}
		if cfg.drops == 0 {
			for _, fr := range f.frames {
				want, err := json.Marshal(stored[fr.Version()])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(fr.JSON(), want) {
					t.Errorf("subscriber %d: commit %d is %s, its writer stored %s", f.id, fr.Version(), fr.JSON(), want)
					break
				}
			}
		}
		if f.stalled && f.stallEvent != fanout.EventCatchUp && !(cfg.drops > 0 && f.stallEvent == fanout.EventReset) {
			t.Errorf("subscriber %d fell 100 commits behind and then got %v, want a catch-up", f.id, f.stallEvent)
		}
		commits += f.v.commits
		catchUps += f.v.catchUps
		resets += f.v.resets
		resubscribes += f.resubscribes
	}
	if cfg.drops == 0 && len(stored) != int(snap.Version) {
		t.Errorf("writers stored %d commits, the head is at %d", len(stored), snap.Version)
	}
	t.Logf("head %d; delivered %d commits, %d catch-ups, %d resets; %d resubscriptions; stalled subscriber caught up: %v",
		snap.Version, commits, catchUps, resets, resubscribes, followers[1].stalled)
	if resubscribes < cfg.subscribers {
		t.Errorf("%d resubscriptions, want at least one per subscriber", resubscribes)
	}
	if cfg.drops == 0 && catchUps == 0 {
		// Drops may turn every lag into a reset; without them the stalled
		// subscriber must have needed a catch-up.
		t.Error("no subscriber got a catch-up: the history did not exercise slow subscribers")
	}
}
