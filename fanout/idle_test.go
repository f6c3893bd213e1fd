package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestNextIdle: NextIdle bounds only the wait. Nothing within the idle time
// gives ErrIdle, exactly then, and the subscription goes on; a commit
// within it is returned at once; each call restarts the bound, and a later
// unbounded Next is not cut short by it. Time is synthetic.
func TestNextIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New(nil)
		defer st.Close()
		b := fanout.New(st, nil)
		defer b.Close()
		s, err := b.Subscribe(coll, &protocol.Cursor{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()

		start := time.Now()
		if ev, err := s.NextIdle(ctx, time.Second); !errors.Is(err, fanout.ErrIdle) {
			t.Fatalf("NextIdle with nothing to send = %s, %v; want ErrIdle", describe(ev), err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("ErrIdle after %v, want 1s", d)
		}

		ap := apply(t, st, put("a", `1`))
		go func() {
			time.Sleep(300 * time.Millisecond)
			publish(b, ap)
		}()
		start = time.Now()
		ev, err := s.NextIdle(ctx, time.Second)
		if err != nil || fmt.Sprint(versions(ev.Frames)) != "[1]" {
			t.Fatalf("NextIdle = %s, %v; want commit 1", describe(ev), err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Errorf("commit returned after %v, want 300ms", d)
		}

		start = time.Now()
		if _, err := s.NextIdle(ctx, 2*time.Second); !errors.Is(err, fanout.ErrIdle) || time.Since(start) != 2*time.Second {
			t.Errorf("second idle: %v after %v, want ErrIdle after 2s", err, time.Since(start))
		}

		// What is pending comes first, even with an idle time already due.
		ap2 := apply(t, st, put("b", `2`))
		publish(b, ap2)
		if ev, err := s.NextIdle(ctx, time.Nanosecond); err != nil || fmt.Sprint(versions(ev.Frames)) != "[2]" {
			t.Fatalf("NextIdle with a commit pending = %s, %v; want commit 2", describe(ev), err)
		}

		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start = time.Now()
		if _, err := s.Next(wctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Errorf("Next after NextIdle: %v after %v, want the context's deadline after 5s", err, time.Since(start))
		}

		// A context ending before the idle time wins.
		cctx, cancel2 := context.WithTimeout(ctx, time.Second)
		defer cancel2()
		if _, err := s.NextIdle(cctx, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("NextIdle with a shorter context: %v, want DeadlineExceeded", err)
		}

		// Close ends a NextIdle waiting.
		go func() {
			time.Sleep(10 * time.Millisecond)
			s.Close()
		}()
		if _, err := s.NextIdle(ctx, time.Minute); !errors.Is(err, fanout.ErrClosed) {
			t.Errorf("NextIdle across Close: %v, want ErrClosed", err)
		}
	})
}

// TestNextIdleDoesNotAllocate: NextIdle reuses its timer, so a transport
// calling it for every batch allocates nothing more than Next does.
func TestNextIdleDoesNotAllocate(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := fanout.New(st, nil)
	defer b.Close()
	first := apply(t, st, put("r", `0`))
	s, err := b.Subscribe(coll, &protocol.Cursor{Epoch: first.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next(t, s)
	aps := applyN(t, st, allocRuns+1)
	ctx := context.Background()
	i := 0
	both := mallocsPerRun(allocRuns, func() {
		publish(b, aps[i])
		i++
		ev, err := s.NextIdle(ctx, time.Minute)
		if err != nil || len(ev.Frames) != 1 {
			t.Fatalf("NextIdle = %s, %v; want one commit", describe(ev), err)
		}
	})
	alone := publishAllocs(t, 1, false)
	if !sameAllocs(both, alone) {
		t.Errorf("Publish+NextIdle allocates %v times, Publish alone %v: NextIdle allocates", both, alone)
	}
}

// TestErrClosedIsStoreErrClosed: transports map store.ErrClosed to
// "unavailable"; a closed subscription's error must match it.
func TestErrClosedIsStoreErrClosed(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := fanout.New(st, nil)
	defer b.Close()
	s, err := b.Subscribe(coll, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = s.Next(context.Background())
	if !errors.Is(err, fanout.ErrClosed) || !errors.Is(err, store.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed matching store.ErrClosed", err)
	}
}
