package fanout_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestSlowSubscriberGetsOneCatchUp: a subscriber that stops taking commits
// while many are published loses its backlog and gets one compacted
// catch-up, which brings its state to the store's, then goes on live. A
// subscriber keeping up meanwhile sees every commit.
func TestSlowSubscriberGetsOneCatchUp(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		// "fixed" is written once and never again: a catch-up must not
		// carry it, as it is not a snapshot.
		base := []store.Applied{apply(t, st, put("fixed", `"f"`)), apply(t, st, put("gone", `"g"`))}
		base = append(base, applyN(t, st, 8)...)
		epoch := base[0].Epoch
		probe, err := fanout.NewFrame(coll, epoch, base[len(base)-1].Commit)
		if err != nil {
			t.Fatal(err)
		}
		b := newBroker(t, st, fanout.Options{BufferBytes: 10 * fanout.FrameSize(probe)})

		slow := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 10})
		fast := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 10})
		expectNothing(t, slow)
		// The slow one takes one commit from the buffer: it is live.
		ap := apply(t, st, put("r1", `"live"`))
		publish(b, ap)
		slowView := viewAt(t, epoch, append(base, ap))
		if ev := next(t, slow); ev.Kind != fanout.EventCommits || versions(ev.Frames)[0] != 11 {
			t.Fatalf("slow: %s, want commit 11", describe(ev))
		}

		fastView := viewAt(t, epoch, base)
		fastView.commits = 0
		var fastAt atomic.Uint64
		var wg sync.WaitGroup
		wg.Go(func() {
			for fastView.cur.Version < 211 {
				ev := next(t, fast)
				if err := fastView.apply(ev); err != nil {
					t.Errorf("fast: %s: %v", describe(ev), err)
					return
				}
				fastAt.Store(fastView.cur.Version)
			}
		})
		aps := applyN(t, st, 199)
		aps = append(aps, apply(t, st, del("gone")))
		for _, ap := range aps {
			publish(b, ap)
			// In step with the fast one, so that it never lags.
			deadline := time.Now().Add(waitLong)
			for fastAt.Load() < ap.Commit.Version && time.Now().Before(deadline) {
				time.Sleep(50 * time.Microsecond)
			}
		}
		wg.Wait()
		if fastView.catchUps != 0 || fastView.resets != 0 || fastView.commits != 201 {
			t.Errorf("fast subscriber: %d commits, %d catch-ups, %d resets; want 201 commits only",
				fastView.commits, fastView.catchUps, fastView.resets)
		}

		// The stalled subscriber pins nothing: the buffer still holds only
		// what its byte bound allows.
		if first, last, _ := b.BufferRange(coll); last != 211 || last-first+1 > 12 {
			t.Errorf("buffer holds %d..%d with a stalled subscriber at 11, want about the latest 10", first, last)
		}

		snap := snapshot(t, st)
		ev := next(t, slow)
		if ev.Kind != fanout.EventCatchUp {
			t.Fatalf("slow: %s, want one catch-up", describe(ev))
		}
		cu := ev.CatchUp
		if cu.Epoch != epoch || cu.Version != 211 {
			t.Errorf("catch-up to %s:%d, want %s:211", cu.Epoch, cu.Version, epoch)
		}
		if slices.ContainsFunc(cu.Records, func(r protocol.Record) bool { return r.ID == "fixed" }) {
			t.Error("the catch-up carries a record unchanged since the cursor")
		}
		if !slices.Contains(cu.Deleted, "gone") {
			t.Errorf("the catch-up's deleted ids %v lack %q", cu.Deleted, "gone")
		}
		mustApply(t, slowView, ev)
		if err := slowView.matches(snap); err != nil {
			t.Fatalf("state after the catch-up: %v", err)
		}
		if slow.Cursor() != slowView.cur {
			t.Errorf("Cursor() = %v after the catch-up, want %v", slow.Cursor(), slowView.cur)
		}
		// Not the backlog: nothing more until the next commit.
		expectNothing(t, slow)
		ap = apply(t, st, put("r2", `"after"`))
		publish(b, ap)
		ev = next(t, slow)
		if ev.Kind != fanout.EventCommits || fmt.Sprint(versions(ev.Frames)) != "[212]" {
			t.Fatalf("after the catch-up: %s, want commit 212", describe(ev))
		}
		mustApply(t, slowView, ev)
		if err := slowView.matches(snapshot(t, st)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestResumeAfterLogTrimmed: a cursor older than the store's change log
// gets a catch-up, then live commits.
func TestResumeAfterLogTrimmed(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{RetainCommits: 5})
		aps := applyN(t, st, 60)
		epoch := aps[0].Epoch
		b := newBroker(t, st, fanout.Options{})
		s := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 3})
		v := viewAt(t, epoch, aps[:3])
		ev := next(t, s)
		if ev.Kind != fanout.EventCatchUp {
			t.Fatalf("resume at 3 with the log trimmed: %s, want catch-up", describe(ev))
		}
		mustApply(t, v, ev)
		if err := v.matches(snapshot(t, st)); err != nil {
			t.Fatal(err)
		}
		expectNothing(t, s)
		ap := apply(t, st, put("r1", `"x"`))
		publish(b, ap)
		ev = next(t, s)
		if ev.Kind != fanout.EventCommits || fmt.Sprint(versions(ev.Frames)) != "[61]" {
			t.Fatalf("after the catch-up: %s, want commit 61", describe(ev))
		}
	})
}

// TestResumePastTombstoneHorizon: a cursor older than the deletions the
// store still remembers gets a reset, not a catch-up that would miss them;
// a cursor after them still gets a catch-up.
func TestResumePastTombstoneHorizon(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		var (
			mu  sync.Mutex
			now = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		)
		clock := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
		advance := func(d time.Duration) {
			mu.Lock()
			now = now.Add(d)
			mu.Unlock()
		}
		st := open(store.Config{RetainCommits: 5, RetainTombstones: time.Hour, Now: clock})
		var aps []store.Applied
		aps = append(aps, apply(t, st, put("a", `1`), put("b", `2`)))
		aps = append(aps, apply(t, st, del("a")))
		aps = append(aps, apply(t, st, put("c", `3`)))
		epoch := aps[0].Epoch
		advance(2 * time.Hour)
		aps = append(aps, applyN(t, st, 50)...)
		b := newBroker(t, st, fanout.Options{})

		s := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 1})
		ev := next(t, s)
		if ev.Kind != fanout.EventReset {
			t.Fatalf("resume at 1, before a forgotten deletion: %s, want reset", describe(ev))
		}
		v := newView()
		mustApply(t, v, ev)
		if err := v.matches(snapshot(t, st)); err != nil {
			t.Fatal(err)
		}

		s2 := subscribe(t, b, &protocol.Cursor{Epoch: epoch, Version: 10})
		ev = next(t, s2)
		if ev.Kind != fanout.EventCatchUp {
			t.Fatalf("resume at 10, after the forgotten deletion, log trimmed: %s, want catch-up", describe(ev))
		}
		v2 := viewAt(t, epoch, aps[:10])
		mustApply(t, v2, ev)
		if err := v2.matches(snapshot(t, st)); err != nil {
			t.Fatal(err)
		}
	})
}
