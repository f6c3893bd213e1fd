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
// the collection off the feed by hand, as a load in progress would, with
// Options.MaxBacklog 6 messages: 3 commits of a put.)
func TestFeedBacklog(t *testing.T) {
	ctx := t.Context()
	s, other := openPair(t, Options{Layout: LayoutShared, IdleAfter: -1, MaxBacklog: 6})
	const name = "backlog"
	put := func(id string) []protocol.Op {
		return []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte(`"` + id + `"`)}}
	}
	if _, err := other.Apply(ctx, name, put("a"), nil); err != nil {
		t.Fatal(err)
	}
	c := openAt(t, s, name, 1)
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

// TestLoadByDirectGets: in the shared layout a store loads a collection
// it opens with direct gets: one answer of the last message of each of
// its subjects when they fit (a small collection), next by subject in
// batches when they do not (1,500 records: more subjects than such an
// answer holds). Either way the state is the other store's, and it
// follows on.
func TestLoadByDirectGets(t *testing.T) {
	ctx := t.Context()
	writer, _ := openPair(t, Options{Layout: LayoutShared, IdleAfter: -1})
	for _, tc := range []struct {
		name    string
		records int
	}{{"small", 3}, {"large", 1500}} {
		t.Run(tc.name, func(t *testing.T) {
			var ops []protocol.Op
			for i := range tc.records {
				ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprint("r", i), Value: []byte(fmt.Sprint(i))})
				if len(ops) == 500 || i == tc.records-1 {
					if _, err := writer.Apply(ctx, tc.name, ops, nil); err != nil {
						t.Fatal(err)
					}
					ops = nil
				}
			}
			want, err := writer.Snapshot(ctx, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			// A store that has never seen the collection.
			fresh, err := Open(ctx, Options{URL: writer.nc.ConnectedUrl(), Layout: LayoutShared, IdleAfter: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			got, err := fresh.Snapshot(ctx, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != want.Version || got.Epoch != want.Epoch || len(got.Records) != tc.records {
				t.Fatalf("loaded %s:%d with %d records, want %s:%d with %d", got.Epoch, got.Version, len(got.Records), want.Epoch, want.Version, tc.records)
			}
			for i, r := range want.Records {
				if g := got.Records[i]; g.ID != r.ID || g.Version != r.Version || string(g.Value) != string(r.Value) {
					t.Fatalf("record %d: %+v, want %+v", i, g, r)
				}
			}
			if _, err := writer.Apply(ctx, tc.name, []protocol.Op{{Op: protocol.OpPut, ID: "next", Value: []byte(`1`)}}, nil); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the fresh store to follow the next commit", func() bool {
				h, err := fresh.Head(ctx, tc.name)
				if err != nil {
					t.Fatal(err)
				}
				return h.Version == want.Version+1
			})
		})
	}
}
