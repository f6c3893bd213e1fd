package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestSubscribeWithoutCursor: no cursor means a reset first (a snapshot at
// one version V), then live from V+1.
func TestSubscribeWithoutCursor(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		b := newBroker(t, st, fanout.Options{})
		apply(t, st, put("a", `1`), put("b", `2`))
		apply(t, st, put("c", `3`))
		apply(t, st, del("b"))
		s := subscribe(t, b, nil)
		ev := next(t, s)
		if ev.Kind != fanout.EventReset {
			t.Fatalf("first event %s, want reset", describe(ev))
		}
		want := snapshot(t, st)
		v := newView()
		mustApply(t, v, ev)
		if err := v.matches(want); err != nil {
			t.Fatalf("reset differs from the snapshot: %v", err)
		}
		if s.Cursor() != v.cur || v.cur.Version != 3 {
			t.Fatalf("Cursor() = %v after a reset at %v, want version 3", s.Cursor(), v.cur)
		}
		expectNothing(t, s)
		ap := apply(t, st, put("a", `4`))
		publish(b, ap)
		ev = next(t, s)
		if ev.Kind != fanout.EventCommits || len(ev.Frames) != 1 || ev.Frames[0].Version() != 4 {
			t.Fatalf("after the reset: %s, want commit 4", describe(ev))
		}
		mustApply(t, v, ev)
		if err := v.matches(snapshot(t, st)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSubscribeWithoutCursorWhileWriting: the reset's version V and the
// first commit after it, V+1, meet with no gap and no duplicate while a
// writer commits through the hub all along.
func TestSubscribeWithoutCursorWhileWriting(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	h, err := viewsync.New(st, viewsync.WithFanout(fanout.Options{PageSize: 7}))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := h.Collection(coll)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Put(context.Background(), fmt.Sprintf("k%d", i%13), []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 20 {
		s, err := c.Subscribe(nil)
		if err != nil {
			t.Fatal(err)
		}
		v := newView()
		for v.commits < 20 {
			mustApply(t, v, next(t, s))
		}
		if v.resets != 1 || v.catchUps != 0 {
			t.Errorf("%d resets, %d catch-ups; want exactly one reset", v.resets, v.catchUps)
		}
		s.Close()
	}
	close(stop)
	wg.Wait()
}

// TestResumeFromStoreThenBuffer: a cursor older than the buffer is served
// from the store a page at a time, then from the buffer, with no gap and no
// duplicate where the two meet, also while commits keep coming.
func TestResumeFromStoreThenBuffer(t *testing.T) {
	const pageSize = 7
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		aps := applyN(t, st, 100)
		epoch := aps[0].Epoch
		probe, err := fanout.NewFrame(coll, epoch, aps[99].Commit)
		if err != nil {
			t.Fatal(err)
		}
		const holds = 20 // about the commits the buffer holds
		b := newBroker(t, st, fanout.Options{PageSize: pageSize, BufferBytes: holds * fanout.FrameSize(probe)})

		// A live subscriber, in step with the publisher, records the frames
		// the buffer held.
		live := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 99})
		next(t, live)
		buffered := map[uint64]*fanout.Frame{}
		pub := func(aps []store.Applied) {
			for _, ap := range aps {
				publish(b, ap)
				ev := next(t, live)
				if ev.Kind != fanout.EventCommits || len(ev.Frames) != 1 || ev.Frames[0].Version() != ap.Commit.Version {
					t.Fatalf("live subscriber: %s, want commit %d", describe(ev), ap.Commit.Version)
				}
				buffered[ap.Commit.Version] = ev.Frames[0]
			}
		}
		pub(applyN(t, st, 60))
		first, last, ok := b.BufferRange(coll)
		if !ok || last != 160 || first < 130 || first > 150 {
			t.Fatalf("buffer holds %d..%d (ok %v), want about the latest %d of 160", first, last, ok, holds)
		}

		t.Run("still", func(t *testing.T) {
			s := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 10})
			var got []*fanout.Frame
			var sizes []int
			for s.Cursor().Version < 160 {
				ev := next(t, s)
				if ev.Kind != fanout.EventCommits {
					t.Fatalf("resuming: %s, want commits", describe(ev))
				}
				got = append(got, ev.Frames...)
				sizes = append(sizes, len(ev.Frames))
			}
			if fmt.Sprint(versions(got)) != fmt.Sprint(span(11, 160)) {
				t.Fatalf("got versions %v, want 11..160", versions(got))
			}
			// Pages of the store until the cursor reaches the buffer, then
			// the buffer's own frames in one batch.
			paged := 0
			for paged < len(got) && got[paged] != buffered[got[paged].Version()] {
				paged++
			}
			for _, f := range got[paged:] {
				if f != buffered[f.Version()] {
					t.Fatalf("version %d came from the store after the hand-over to the buffer", f.Version())
				}
			}
			if paged == 0 || paged == len(got) {
				t.Fatalf("%d of %d commits from the store: want some from each source", paged, len(got))
			}
			if handover := got[paged].Version(); handover < first || handover >= first+pageSize {
				t.Errorf("hand-over at version %d; the buffer starts at %d, so at most one page late", handover, first)
			}
			for i, n := range sizes[:len(sizes)-1] {
				if n != pageSize {
					t.Errorf("event %d carried %d commits, want full pages of %d (sizes %v)", i, n, pageSize, sizes)
				}
			}
			if n := sizes[len(sizes)-1]; n != len(got)-paged {
				t.Errorf("the buffer's commits came in %d events, want one (sizes %v)", len(sizes)-paged/pageSize, sizes)
			}
		})

		// The buffer's start moves while the subscriber pages towards it.
		// Once live, a subscriber that falls a whole buffer behind gets a
		// catch-up, which is allowed; but every commit it gets must be the
		// one after its cursor, and it must end at the store's state.
		t.Run("while-publishing", func(t *testing.T) {
			s := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 3})
			more := applyN(t, st, 300)
			end := more[len(more)-1].Commit.Version
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, ap := range more {
					publish(b, ap)
					time.Sleep(20 * time.Microsecond)
				}
			}()
			v := viewAt(t, epoch, aps[:3])
			for v.cur.Version < end {
				ev := next(t, s)
				if ev.Kind == fanout.EventReset {
					t.Fatalf("resuming: %s, want commits or a catch-up", describe(ev))
				}
				mustApply(t, v, ev)
			}
			<-done
			if err := v.matches(snapshot(t, st)); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d commits, %d catch-ups", v.commits, v.catchUps)
		})
	})
}

// TestResumeCursors: the answer to each kind of cursor.
func TestResumeCursors(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		b := newBroker(t, st, fanout.Options{})
		aps := applyN(t, st, 10)
		epoch := aps[0].Epoch
		// The anchor keeps the topic, and its buffer, across the subtests.
		anchor := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 10})
		expectNothing(t, anchor)

		t.Run("empty-epoch", func(t *testing.T) {
			s := subscribe(t, b, &protocol.Cursor{Version: 5})
			ev := next(t, s)
			if ev.Kind != fanout.EventCommits || fmt.Sprint(versions(ev.Frames)) != fmt.Sprint(span(6, 10)) {
				t.Fatalf("%s, want commits 6..10", describe(ev))
			}
			if ev.Frames[0].Epoch != epoch || s.Cursor() != (protocol.Cursor{Epoch: epoch, Version: 10}) {
				t.Errorf("frames in epoch %q, Cursor() = %v; want the current epoch %q", ev.Frames[0].Epoch, s.Cursor(), epoch)
			}
		})

		resets := []struct {
			name string
			cur  protocol.Cursor
		}{
			{"other-epoch", protocol.Cursor{Epoch: "another", Version: 5}},
			{"other-epoch-at-zero", protocol.Cursor{Epoch: "another"}},
			{"ahead-of-head", protocol.Cursor{Epoch: epoch, Version: 11}},
			{"far-ahead-empty-epoch", protocol.Cursor{Version: 1 << 60}},
		}
		for _, tc := range resets {
			t.Run(tc.name, func(t *testing.T) {
				s := subscribe(t, b, &tc.cur)
				ev := next(t, s)
				if ev.Kind != fanout.EventReset {
					t.Fatalf("%s, want reset", describe(ev))
				}
				v := newView()
				mustApply(t, v, ev)
				if err := v.matches(snapshot(t, st)); err != nil {
					t.Fatal(err)
				}
				if s.Cursor() != (protocol.Cursor{Epoch: epoch, Version: 10}) {
					t.Errorf("Cursor() = %v after the reset", s.Cursor())
				}
			})
		}

		t.Run("at-head", func(t *testing.T) {
			s := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 10})
			expectNothing(t, s)
			ap := apply(t, st, put("x", `1`))
			publish(b, ap)
			if ev := next(t, s); ev.Kind != fanout.EventCommits || len(ev.Frames) != 1 || ev.Frames[0].Version() != 11 {
				t.Fatalf("%s, want commit 11", describe(ev))
			}
		})

		// Commits the store applied but the hub has not published yet: a
		// cursor among them is ahead of the buffer but not bogus. It waits
		// for them; no reset.
		t.Run("ahead-of-buffer", func(t *testing.T) {
			if _, last, ok := b.BufferRange(coll); !ok || last != 11 {
				t.Fatalf("buffer ends at %d (ok %v), want 11", last, ok)
			}
			unpublished := applyN(t, st, 3) // 12..14
			s13 := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 13})
			s14 := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 14})
			expectNothing(t, s13)
			expectNothing(t, s14)
			for _, ap := range unpublished {
				publish(b, ap)
			}
			if ev := next(t, s13); ev.Kind != fanout.EventCommits || fmt.Sprint(versions(ev.Frames)) != "[14]" {
				t.Fatalf("cursor 13: %s, want commit 14", describe(ev))
			}
			expectNothing(t, s14)
			ap := apply(t, st, put("y", `1`))
			publish(b, ap)
			for _, s := range []*fanout.Subscription{s13, s14} {
				if ev := next(t, s); ev.Kind != fanout.EventCommits || fmt.Sprint(versions(ev.Frames)) != "[15]" {
					t.Fatalf("%s, want commit 15", describe(ev))
				}
			}
		})
	})
}

// TestSubscribeBadCollection: a name outside the contract is refused.
func TestSubscribeBadCollection(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := fanout.New(st, nil)
	defer b.Close()
	for _, name := range []string{"", "Items", "_x", "a/b"} {
		if s, err := b.Subscribe(name, nil); err == nil {
			s.Close()
			t.Errorf("Subscribe(%q) succeeded", name)
		} else if !errors.Is(err, protocol.ErrBadName) {
			t.Errorf("Subscribe(%q): %v, want ErrBadName", name, err)
		}
	}
	if n := b.Topics(); n != 0 {
		t.Errorf("Topics() = %d after refused subscriptions", n)
	}
}
