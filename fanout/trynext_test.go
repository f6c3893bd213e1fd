package fanout_test

import (
	"context"
	"errors"
	"testing"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestTryNextAndNextNow: TryNext answers from the buffer only, never
// waiting and never reading the store; NextNow reads the store when needed
// but does not wait; Changed wakes whoever sweeps subscriptions.
func TestTryNextAndNextNow(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		b := newBroker(t, st, fanout.Options{})
		apply(t, st, put("a", `1`))
		ctx := context.Background()

		// No cursor: a reset is needed, which only NextNow reads.
		s := subscribe(t, b, nil)
		if _, err := s.TryNext(); !errors.Is(err, fanout.ErrBehind) {
			t.Fatalf("TryNext without a cursor: %v, want ErrBehind", err)
		}
		ev, err := s.NextNow(ctx)
		if err != nil || ev.Kind != fanout.EventReset || ev.Reset.Version != 1 {
			t.Fatalf("NextNow: %s, %v; want the reset at 1", describe(ev), err)
		}
		if _, err := s.NextNow(ctx); !errors.Is(err, fanout.ErrWouldBlock) {
			t.Fatalf("NextNow at the head: %v, want ErrWouldBlock", err)
		}
		if _, err := s.TryNext(); !errors.Is(err, fanout.ErrWouldBlock) {
			t.Fatalf("TryNext at the head: %v, want ErrWouldBlock", err)
		}

		// A commit closes the channel taken before it, and TryNext then
		// has it from the buffer.
		changed := s.Changed()
		select {
		case <-changed:
			t.Fatal("Changed closed before any change")
		default:
		}
		ap := apply(t, st, put("b", `2`))
		publish(b, ap)
		<-changed
		ev, err = s.TryNext()
		if err != nil || ev.Kind != fanout.EventCommits || len(ev.Frames) != 1 || ev.Frames[0].Version() != 2 {
			t.Fatalf("TryNext after commit 2: %s, %v", describe(ev), err)
		}
		if s.Cursor().Version != 2 {
			t.Fatalf("Cursor %v after TryNext, want version 2", s.Cursor())
		}

		// A cursor behind the buffer needs the store: ErrBehind, then
		// NextNow reads the page.
		old := subscribe(t, b, &protocol.Cursor{Epoch: ap.Epoch, Version: 0})
		if _, err := old.TryNext(); !errors.Is(err, fanout.ErrBehind) {
			t.Fatalf("TryNext behind the buffer: %v, want ErrBehind", err)
		}
		ev, err = old.NextNow(ctx)
		if err != nil || ev.Kind != fanout.EventCommits || len(ev.Frames) == 0 || ev.Frames[0].Version() != 1 {
			t.Fatalf("NextNow behind the buffer: %s, %v; want commits from 1", describe(ev), err)
		}

		// Closed: ErrClosed from both.
		s.Close()
		if _, err := s.TryNext(); !errors.Is(err, fanout.ErrClosed) {
			t.Fatalf("TryNext after Close: %v", err)
		}
		if _, err := s.NextNow(ctx); !errors.Is(err, fanout.ErrClosed) {
			t.Fatalf("NextNow after Close: %v", err)
		}
	})
}
