package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// newHubCollection returns a hub on st and its collection coll; the hub is
// closed when the test ends.
func newHubCollection(t testing.TB, st store.Store, fo fanout.Options) (*viewsync.Hub, *viewsync.Collection) {
	t.Helper()
	h, err := viewsync.New(st, viewsync.WithFanout(fo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c, err := h.Collection(coll)
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

// hubSubscribe subscribes to c, closing the subscription when the test ends.
func hubSubscribe(t testing.TB, c *viewsync.Collection, cur *protocol.Cursor) *fanout.Subscription {
	t.Helper()
	s, err := c.Subscribe(cur)
	if err != nil {
		t.Fatalf("Subscribe(%v): %v", cur, err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestDropResetsLiveSubscribers: dropping a collection through the hub gives
// its live subscribers a reset in the new epoch, after which they follow
// the new history.
func TestDropResetsLiveSubscribers(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		_, c := newHubCollection(t, st, fanout.Options{})
		ctx := context.Background()
		for i := range 5 {
			if _, err := c.Put(ctx, fmt.Sprintf("k%d", i), []byte(`1`)); err != nil {
				t.Fatal(err)
			}
		}
		old, err := c.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		subs := []*fanout.Subscription{
			hubSubscribe(t, c, nil),
			hubSubscribe(t, c, &protocol.Cursor{Epoch: old.Epoch, Version: 5}),
			hubSubscribe(t, c, &protocol.Cursor{Epoch: old.Epoch, Version: 2}),
		}
		views := make([]*view, len(subs))
		for i, s := range subs {
			views[i] = newView() // the drop's reset will replace it whole
			if i != 1 {
				// The reset at 5, and commits 3..5.
				if ev := next(t, s); s.Cursor().Version != 5 {
					t.Fatalf("subscriber %d: %s, want to reach version 5", i, describe(ev))
				}
			}
			expectNothing(t, s)
		}

		// All three wait in Next when the drop comes.
		type result struct {
			ev  fanout.Event
			err error
		}
		results := make([]chan result, len(subs))
		for i, s := range subs {
			results[i] = make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitLong)
				defer cancel()
				ev, err := s.Next(ctx)
				results[i] <- result{ev, err}
			}()
		}
		time.Sleep(10 * time.Millisecond)
		nh, err := c.Drop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if nh.Epoch == old.Epoch || nh.Version != 0 {
			t.Fatalf("drop: head %v, want a new epoch at 0", nh)
		}
		for i := range subs {
			r := <-results[i]
			if r.err != nil {
				t.Fatalf("subscriber %d: %v", i, r.err)
			}
			if r.ev.Kind != fanout.EventReset || r.ev.Reset.Epoch != nh.Epoch || r.ev.Reset.Version != 0 || len(r.ev.Reset.Records) != 0 {
				t.Fatalf("subscriber %d after the drop: %s, want an empty reset in epoch %s", i, describe(r.ev), nh.Epoch)
			}
			mustApply(t, views[i], r.ev)
		}
		if _, err := c.Put(ctx, "new", []byte(`"n"`)); err != nil {
			t.Fatal(err)
		}
		for i, s := range subs {
			ev := next(t, s)
			if ev.Kind != fanout.EventCommits || fmt.Sprint(versions(ev.Frames)) != "[1]" || ev.Frames[0].Epoch != nh.Epoch {
				t.Fatalf("subscriber %d: %s, want commit 1 of the new epoch", i, describe(ev))
			}
			mustApply(t, views[i], ev)
			if err := views[i].matches(snapshot(t, st)); err != nil {
				t.Fatalf("subscriber %d: %v", i, err)
			}
		}
		// Resuming at a cursor of the old history, even one that exists in
		// the new, is a reset.
		s := hubSubscribe(t, c, &protocol.Cursor{Epoch: old.Epoch, Version: 1})
		if ev := next(t, s); ev.Kind != fanout.EventReset || ev.Reset.Epoch != nh.Epoch || ev.Reset.Version != 1 {
			t.Fatalf("resume in the old epoch: %s, want reset at %s:1", describe(ev), nh.Epoch)
		}
	})
}

// nextIn runs s.Next on its own goroutine and returns its error on a
// channel.
func nextIn(s *fanout.Subscription) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_, err := s.Next(ctx)
		ch <- err
	}()
	return ch
}

// wantErr fails unless ch yields an error matching want promptly.
func wantErr(t testing.TB, what string, ch <-chan error, want error) {
	t.Helper()
	select {
	case err := <-ch:
		if !errors.Is(err, want) {
			t.Errorf("%s: Next returned %v, want %v", what, err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Next still blocked", what)
	}
}

// TestSubscriptionClose: Close unblocks a waiting Next with ErrClosed, and
// later calls get it too; the last subscriber of a collection leaving
// removes its topic.
func TestSubscriptionClose(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := newBroker(t, st, fanout.Options{})
	s1 := subscribe(t, b, &protocol.Cursor{})
	s2 := subscribe(t, b, &protocol.Cursor{})
	other, err := b.Subscribe("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.Topics(); n != 2 {
		t.Fatalf("Topics() = %d with two collections followed, want 2", n)
	}
	ch := nextIn(s1)
	time.Sleep(10 * time.Millisecond)
	s1.Close()
	wantErr(t, "closed subscription", ch, fanout.ErrClosed)
	if _, err := s1.Next(context.Background()); !errors.Is(err, fanout.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	s1.Close() // a second Close is harmless
	if n := b.Topics(); n != 2 {
		t.Fatalf("Topics() = %d with s2 left, want 2", n)
	}
	// s2 is untouched.
	ap := apply(t, st, put("a", `1`))
	publish(b, ap)
	if ev := next(t, s2); fmt.Sprint(versions(ev.Frames)) != "[1]" {
		t.Fatalf("s2: %s, want commit 1", describe(ev))
	}
	s2.Close()
	if n := b.Topics(); n != 1 {
		t.Fatalf("Topics() = %d after the last subscriber of %s left, want 1", n, coll)
	}
	other.Close()
	if n := b.Topics(); n != 0 {
		t.Fatalf("Topics() = %d after every subscriber left, want 0", n)
	}
	// Publishing to it now does nothing, and a new subscriber starts afresh
	// from the store.
	ap2 := apply(t, st, put("b", `2`))
	publish(b, ap2)
	if n := b.Topics(); n != 0 {
		t.Fatalf("Topics() = %d after publishing without subscribers", n)
	}
	s3 := subscribe(t, b, &protocol.Cursor{Epoch: ap.Epoch, Version: 1})
	if ev := next(t, s3); fmt.Sprint(versions(ev.Frames)) != "[2]" {
		t.Fatalf("new subscriber: %s, want commit 2", describe(ev))
	}
	ap3 := apply(t, st, put("c", `3`))
	publish(b, ap3)
	if ev := next(t, s3); fmt.Sprint(versions(ev.Frames)) != "[3]" {
		t.Fatalf("new subscriber: %s, want commit 3", describe(ev))
	}
}

// TestBrokerClose: Close unblocks every subscription with ErrClosed, forgets
// every topic and refuses new subscriptions.
func TestBrokerClose(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := fanout.New(st, nil)
	defer b.Close()
	var subs []*fanout.Subscription
	var waits []<-chan error
	for i := range 6 {
		s, err := b.Subscribe(fmt.Sprintf("c%d", i%3), &protocol.Cursor{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs = append(subs, s)
		waits = append(waits, nextIn(s))
	}
	// Subscriptions not waiting yet: one that would start with a reset,
	// one never used.
	fresh, err := b.Subscribe("c0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	time.Sleep(10 * time.Millisecond)
	if n := b.Topics(); n != 3 {
		t.Fatalf("Topics() = %d, want 3", n)
	}
	b.Close()
	for i, ch := range waits {
		wantErr(t, fmt.Sprintf("subscription %d", i), ch, fanout.ErrClosed)
	}
	if _, err := fresh.Next(context.Background()); !errors.Is(err, fanout.ErrClosed) {
		t.Errorf("Next on a subscription without cursor after Close: %v, want ErrClosed", err)
	}
	if _, err := subs[0].Next(context.Background()); !errors.Is(err, fanout.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	if n := b.Topics(); n != 0 {
		t.Errorf("Topics() = %d after Close, want 0", n)
	}
	if s, err := b.Subscribe("c0", nil); !errors.Is(err, fanout.ErrClosed) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	ap := apply(t, st, put("a", `1`))
	b.Publish("c0", ap.Epoch, ap.Commit, ap.Prev) // harmless
	b.Reset("c0")
	b.Close() // a second Close is harmless
	for _, s := range subs {
		s.Close()
	}
}

// TestHubCloseEndsSubscriptions: closing the hub ends its subscriptions and
// refuses new ones.
func TestHubCloseEndsSubscriptions(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	h, c := newHubCollection(t, st, fanout.Options{})
	var waits []<-chan error
	for range 4 {
		s := hubSubscribe(t, c, &protocol.Cursor{})
		waits = append(waits, nextIn(s))
	}
	time.Sleep(10 * time.Millisecond)
	if n := h.LiveCollections(); n != 1 {
		t.Errorf("LiveCollections() = %d, want 1", n)
	}
	h.Close()
	for i, ch := range waits {
		wantErr(t, fmt.Sprintf("subscription %d", i), ch, fanout.ErrClosed)
	}
	if s, err := c.Subscribe(nil); !errors.Is(err, viewsync.ErrClosed) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Subscribe after hub Close: %v, want ErrClosed", err)
	}
}

// TestResetWithoutTopic: Reset of a collection nobody follows does nothing.
func TestResetWithoutTopic(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := newBroker(t, st, fanout.Options{})
	b.Reset(coll)
	if n := b.Topics(); n != 0 {
		t.Errorf("Topics() = %d after Reset without subscribers", n)
	}
	// A subscriber whose topic has not read its head yet is unaffected too.
	s := subscribe(t, b, &protocol.Cursor{})
	b.Reset(coll)
	ap := apply(t, st, put("a", `1`))
	if ev := next(t, s); fmt.Sprint(versions(ev.Frames)) != "[1]" || ev.Frames[0].Epoch != ap.Epoch {
		t.Fatalf("%s, want commit 1", describe(ev))
	}
}
