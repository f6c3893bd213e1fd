package fanout_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestPagesBoundInBytes: a subscriber resuming over large commits reads
// pages within PageBytes (one commit alone when it is larger), and still
// gets every commit once, in order.
func TestPagesBoundInBytes(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		const pageBytes = 16 << 10
		b := newBroker(t, st, fanout.Options{PageBytes: pageBytes})
		for i := range 60 {
			n := []int{1 << 10, 6 << 10, 20 << 10, 100}[i%4]
			apply(t, st, put(fmt.Sprint("r", i%5), fmt.Sprintf("%q", strings.Repeat("x", n))))
		}
		hd := head(t, st)
		sub := subscribe(t, b, &protocol.Cursor{Epoch: hd.Epoch, Version: 0})
		want := uint64(1)
		for want <= hd.Version {
			ev := next(t, sub)
			if ev.Kind != fanout.EventCommits {
				t.Fatalf("at %d: got %s, want commits", want, describe(ev))
			}
			size := 0
			for _, f := range ev.Frames {
				if f.Version() != want {
					t.Fatalf("got commit %d, want %d", f.Version(), want)
				}
				size += protocol.CommitSize(f.Commit)
				want++
			}
			if len(ev.Frames) > 1 && size > pageBytes {
				t.Fatalf("page of %d commits is %d bytes, over %d", len(ev.Frames), size, pageBytes)
			}
		}
	})
}

// TestHistoryMemoryBound: a subscription's read of history waits for the
// shared memory bound, fails with ErrBusy when it waits too long, works
// once memory is free, holds its bytes until the next event is asked for,
// and gives them back when closed.
func TestHistoryMemoryBound(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		applyN(t, st, 20)
		mem := limit.NewMemory(64 << 10)
		b := newBroker(t, st, fanout.Options{PageBytes: 64 << 10, Memory: mem, MemoryWait: 30 * time.Millisecond})
		hd := head(t, st)

		taken, err := mem.Reserve(t.Context(), 64<<10, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		for _, cur := range []*protocol.Cursor{nil, {Epoch: hd.Epoch, Version: 0}} {
			sub := subscribe(t, b, cur)
			if _, err := sub.NextNow(t.Context()); !errors.Is(err, fanout.ErrBusy) || !errors.Is(err, limit.ErrBusy) {
				t.Fatalf("resume from %v with the memory taken: %v, want ErrBusy", cur, err)
			}
			sub.Close()
		}
		taken.Release()

		sub := subscribe(t, b, &protocol.Cursor{Epoch: hd.Epoch, Version: 0})
		if ev := next(t, sub); ev.Kind != fanout.EventCommits || len(ev.Frames) != 20 {
			t.Fatalf("resume once memory is free: %s", describe(ev))
		}
		if mem.Used() == 0 {
			t.Fatal("the page holds no memory while its frames are in use")
		}
		// The next call gives the page's memory back (it then waits).
		publish(b, applyN(t, st, 1)[0])
		next(t, sub)
		if u := mem.Used(); u != 0 {
			t.Fatalf("%d bytes held after the page was done with", u)
		}
		reset := subscribe(t, b, nil)
		if ev := next(t, reset); ev.Kind != fanout.EventReset {
			t.Fatalf("got %s, want a reset", describe(ev))
		}
		if mem.Used() == 0 {
			t.Fatal("the reset holds no memory while in use")
		}
		reset.Close()
		if u := mem.Used(); u != 0 {
			t.Fatalf("%d bytes held after Close", u)
		}
	})
}
