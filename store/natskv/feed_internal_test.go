package natskv

import (
	"fmt"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestFeedBacklog: in the shared layout a collection that is not live on
// the feed keeps what the feed brings in its backlog, and applies it, in
// order, when it goes live; when more comes than the backlog keeps, it
// drops it and loads again, and still reaches the head. (The test takes
// the collection off the feed by hand, as a load in progress would, and
// lowers the bound to 6 messages: 3 commits of a put.)
func TestFeedBacklog(t *testing.T) {
	ctx := t.Context()
	s, other := openPair(t, Options{Layout: LayoutShared, IdleAfter: -1})
	const name = "backlog"
	put := func(id string) []protocol.Op {
		return []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte(`"` + id + `"`)}}
	}
	if _, err := other.Apply(ctx, name, put("a"), nil); err != nil {
		t.Fatal(err)
	}
	c, err := s.coll(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the collection is live on the feed", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.onFeedLocked() && c.st.Version == 1
	})
	s.feed.mu.Lock()
	s.feed.backlog = 6
	s.feed.mu.Unlock()
	offFeed := func() {
		c.mu.Lock()
		c.fol.onFeed = false
		c.mu.Unlock()
	}
	commit := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := other.Apply(ctx, name, put(id), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	version := func() uint64 {
		c.mu.RLock()
		defer c.mu.RUnlock()
		if c.st == nil {
			return 0
		}
		return c.st.Version
	}

	// Within the bound: the backlog is applied when the follower goes live.
	offFeed()
	commit("b", "c")
	last := lastSeq(t, s)
	waitUntil(t, "the two commits in the backlog", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return len(c.backlog) > 0 && c.backlog[len(c.backlog)-1].seq == last
	})
	if v := version(); v != 1 {
		t.Fatalf("off the feed, the state moved to version %d", v)
	}
	c.mu.Lock()
	c.feedLiveLocked(c.fol)
	broken, left := c.broken, len(c.backlog)
	c.mu.Unlock()
	if broken || left != 0 {
		t.Fatalf("after going live: broken %v, %d messages left in the backlog", broken, left)
	}
	if v := version(); v != 3 {
		t.Fatalf("after going live the state is at version %d, want 3", v)
	}

	// Past it: the backlog is dropped, and the collection loads again.
	offFeed()
	commit("d", "e", "f", "g", "h")
	if n := lastSeq(t, s) - last; n <= 6 {
		t.Fatalf("5 commits of a put made %d messages: too few to overflow the backlog", n)
	}
	waitUntil(t, "the backlog to overflow", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.overflow && c.backlog == nil
	})
	c.mu.Lock()
	c.feedLiveLocked(c.fol)
	c.mu.Unlock()
	waitUntil(t, "the state to reach version 8 after loading again", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.onFeedLocked() && c.st.Version == 8
	})
	snap, err := s.Snapshot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Records) != 8 {
		t.Fatalf("snapshot: %d records, want 8", len(snap.Records))
	}
	// And it follows on.
	commit("i")
	waitUntil(t, "version 9", func() bool { return version() == 9 })
}

// lastSeq returns the sequence of the shared stream's last message.
func lastSeq(t *testing.T, s *Store) uint64 {
	t.Helper()
	stream, err := s.js.Stream(t.Context(), s.prefix)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// waitUntil polls cond until it holds, failing the test after a minute (a
// generous deadline, not a bound of the release).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprint("timed out waiting for ", what))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
