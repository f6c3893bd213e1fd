package natskv

import (
	"context"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestCommitAfterMissedDrop: a store whose follower missed the start of a
// collection's new history (the feed lost the drop's start message on its
// way to the collection) still commits: the stream refuses its batches,
// planned in the old epoch, and once the follower has not caught up with
// the stream in an attempt's time the committer finds the stream in
// another epoch and has the collection reloaded, rather than waiting for
// it forever. (The test takes the collection out of the feed's reach by
// hand while the other store drops it.)
func TestCommitAfterMissedDrop(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // fail, not hang
	defer cancel()
	s, other := openPair(t, Options{Layout: LayoutShared, IdleAfter: -1, AttemptTimeout: 200 * time.Millisecond})
	const name = "missed"
	put := func(id string) []protocol.Op {
		return []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte(`"` + id + `"`)}}
	}
	old, err := s.Apply(ctx, name, put("a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := openAt(t, s, name, 1)

	var nh protocol.Head
	unfollowed(t, s, c, name, func() {
		if nh, err = other.Drop(ctx, name); err != nil {
			t.Fatal(err)
		}
	})
	c.mu.RLock()
	epoch := c.st.Epoch
	c.mu.RUnlock()
	if epoch != old.Epoch || epoch == nh.Epoch {
		t.Fatalf("the follower is in epoch %s: want it still in %s, having missed %s", epoch, old.Epoch, nh.Epoch)
	}

	type result struct {
		a   store.Applied
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := s.Apply(ctx, name, put("b"), nil)
		done <- result{a, err}
	}()
	var a store.Applied
	select {
	case r := <-done:
		a, err = r.a, r.err
	case <-ctx.Done():
		// A commit handed to the server ignores its context.
		t.Fatal("Apply after a missed drop never returned")
	}
	if err != nil {
		t.Fatalf("Apply after a missed drop: %v", err)
	}
	if a.Epoch != nh.Epoch || a.Commit.Version != 1 {
		t.Fatalf("Apply after a missed drop made %s:%d, want %s:1", a.Epoch, a.Commit.Version, nh.Epoch)
	}
	waitUntil(t, "the other store sees b", func() bool {
		r, err := other.Get(ctx, name, "b")
		return err == nil && r.Version == 1
	})
	if _, err := other.Get(ctx, name, "a"); err == nil {
		t.Fatal("record a, made before the drop, is back")
	}
	if _, err := s.Get(ctx, name, "a"); err == nil {
		t.Fatal("record a, made before the drop, is back on the store that missed it")
	}
}
