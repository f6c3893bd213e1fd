package fanout_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestOutOfOrderPublish: concurrent writers finish in any order, and the
// hub may publish a commit twice; every subscriber still gets 1..N in
// order, each once, as the same frames.
func TestOutOfOrderPublish(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		epoch := head(t, st).Epoch
		// No gap is ever filled from the store here: the reordering alone
		// must restore the order.
		b := newBroker(t, st, fanout.Options{GapTimeout: time.Hour})
		const nsubs, n = 3, 300
		subs := make([]*fanout.Subscription, nsubs)
		for i := range subs {
			subs[i] = subscribe(t, b, &protocol.Cursor{Epoch: epoch})
			expectNothing(t, subs[i]) // the topic holds the head, 0
		}
		aps := applyN(t, st, n)

		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 0))
		var order []store.Applied
		for _, ap := range aps {
			for range 1 + rng.IntN(3) {
				order = append(order, ap)
			}
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		// Four publishers, as four writers' goroutines would be.
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < len(order); i += 4 {
					publish(b, order[i])
				}
			})
		}

		got := make([][]*fanout.Frame, nsubs)
		for i, s := range subs {
			v := newView()
			v.cur.Epoch = epoch
			for v.cur.Version < n {
				ev := next(t, s)
				if ev.Kind != fanout.EventCommits {
					t.Fatalf("subscriber %d: %s, want commits", i, describe(ev))
				}
				mustApply(t, v, ev)
				got[i] = append(got[i], ev.Frames...)
			}
			if err := v.matches(snapshot(t, st)); err != nil {
				t.Fatalf("subscriber %d: %v", i, err)
			}
			expectNothing(t, s)
		}
		wg.Wait()
		for j := range n {
			for i := 1; i < nsubs; i++ {
				if got[i][j] != got[0][j] {
					t.Fatalf("version %d: subscribers 0 and %d got different frames", j+1, i)
				}
			}
		}
		if first, last, _ := b.BufferRange(coll); first != 1 || last != n {
			t.Errorf("buffer holds %d..%d, want 1..%d", first, last, n)
		}
	})
}

// TestMissingPublishFilledFromStore: a commit applied but never published
// holds back its successors for GapTimeout, no longer; then it is read from
// the store and delivery goes on in order. Time is synthetic, so the bound
// is checked exactly.
func TestMissingPublishFilledFromStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const gap = 250 * time.Millisecond
		st := memstore.New(nil)
		defer st.Close()
		b := fanout.New(st, &fanout.Options{GapTimeout: gap})
		defer b.Close()
		s, err := b.Subscribe(coll, &protocol.Cursor{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()

		type delivery struct {
			vs []uint64
			at time.Time
		}
		var (
			mu   sync.Mutex
			got  []delivery
			done = make(chan struct{})
		)
		go func() {
			defer close(done)
			for {
				ev, err := s.Next(context.Background())
				if err != nil {
					return
				}
				mu.Lock()
				got = append(got, delivery{versions(ev.Frames), time.Now()})
				mu.Unlock()
			}
		}()
		synctest.Wait() // the topic holds the head, 0, and the subscriber waits

		aps := applyN(t, st, 10)
		start := time.Now()
		for _, ap := range aps {
			if ap.Commit.Version != 5 {
				publish(b, ap)
			}
		}
		synctest.Wait()
		seen := func() string {
			mu.Lock()
			defer mu.Unlock()
			var vs []uint64
			for _, d := range got {
				vs = append(vs, d.vs...)
			}
			return fmt.Sprint(vs)
		}
		if s := seen(); s != "[1 2 3 4]" {
			t.Fatalf("before the gap timeout: %s, want [1 2 3 4]", s)
		}
		time.Sleep(gap - time.Nanosecond)
		synctest.Wait()
		if s := seen(); s != "[1 2 3 4]" {
			t.Fatalf("just before the gap timeout: %s, want [1 2 3 4]", s)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if s := seen(); s != fmt.Sprint(span(1, 10)) {
			t.Fatalf("at the gap timeout: %s, want 1..10", s)
		}
		mu.Lock()
		last := got[len(got)-1]
		mu.Unlock()
		if d := last.at.Sub(start); d != gap {
			t.Errorf("commits 5..10 delivered after %v, want %v", d, gap)
		}
		// The late publish of 5 changes nothing.
		publish(b, aps[4])
		synctest.Wait()
		if s := seen(); s != fmt.Sprint(span(1, 10)) {
			t.Fatalf("after a late publish: %s", s)
		}
		b.Close()
		<-done
	})
}

// TestMissingPublishRealTime: the same on both stores, in real time, with
// several holes.
func TestMissingPublishRealTime(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		const gap = 30 * time.Millisecond
		st := open(store.Config{})
		b := newBroker(t, st, fanout.Options{GapTimeout: gap})
		s := subscribe(t, b, &protocol.Cursor{})
		expectNothing(t, s)
		aps := applyN(t, st, 40)
		missing := map[uint64]bool{3: true, 17: true, 18: true, 33: true}
		start := time.Now()
		for _, ap := range aps {
			if !missing[ap.Commit.Version] {
				publish(b, ap)
			}
		}
		v := newView()
		for v.cur.Version < 40 {
			ev := next(t, s)
			if ev.Kind != fanout.EventCommits {
				t.Fatalf("%s, want commits", describe(ev))
			}
			mustApply(t, v, ev)
			if v.cur.Version >= 3 && time.Since(start) < gap {
				t.Fatalf("commit 3, never published, came after %v, before the gap timeout %v", time.Since(start), gap)
			}
		}
		if err := v.matches(snapshot(t, st)); err != nil {
			t.Fatal(err)
		}
	})
}
