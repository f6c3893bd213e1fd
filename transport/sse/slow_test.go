package sse_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/transport/sse"
)

// slowSnapshots delays every snapshot, honouring the context as a store
// does: a reset then takes longer than a ping interval to read.
type slowSnapshots struct {
	store.Store
	delay time.Duration
	calls atomic.Int32
}

func (s *slowSnapshots) Snapshot(ctx context.Context, collection string) (protocol.Snapshot, error) {
	s.calls.Add(1)
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return protocol.Snapshot{}, fmt.Errorf("slow snapshot of %s: %w", collection, ctx.Err())
	}
	return s.Store.Snapshot(ctx, collection)
}

// TestSlowResetStillArrives: a reset whose snapshot takes six ping
// intervals to read is read once, whole: the ping interval bounds only the
// wait for new commits, never a store read, so the read is not retried.
func TestSlowResetStillArrives(t *testing.T) {
	slow := &slowSnapshots{delay: 300 * time.Millisecond}
	e := newEnv(t, config{
		SSE:  sse.Options{PingInterval: 50 * time.Millisecond},
		Wrap: func(s store.Store) store.Store { slow.Store = s; return slow },
	})
	e.put("a", 1)
	cl := e.newClient("items", "", nil)
	pings := 0
	for {
		ev := cl.next()
		if ev.IsComment {
			pings++
			continue
		}
		if ev.Event == "reset" {
			break
		}
	}
	if slow.calls.Load() != 1 {
		t.Fatalf("reset after %d pings and %d snapshot attempts; want one attempt, never cut short", pings, slow.calls.Load())
	}
	t.Logf("reset after %d pings and %d snapshot attempts", pings, slow.calls.Load())
	// Idle again: pings keep coming.
	for range 2 {
		if ev := cl.next(); !ev.IsComment {
			t.Fatalf("got %+v, want a ping", ev)
		}
	}
}
