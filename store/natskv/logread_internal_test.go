package natskv

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestLogCache: an open collection keeps the ops of its newest commits
// only, up to Options.LogCache bytes, however much of its log it retains,
// in both stores (the committer's and a follower's); Changes reads the
// rest from the stream, page by page, the same commits as were made; and
// once the stream has lost a commit a Changes needs (trimmed by another
// process), it answers store.ErrCompacted.
func TestLogCache(t *testing.T) {
	ctx := t.Context()
	const (
		commits = 300
		cache   = 16 << 10
	)
	s, other := openPair(t, Options{IdleAfter: -1, LogCache: cache, Config: store.Config{RetainCommits: 10_000}})
	const name = "log"
	value := func(i int) []byte {
		return fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), 1000))
	}
	for i := range commits {
		ops := []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprint("r", i%50), Value: value(i)}}
		if _, err := s.Apply(ctx, name, ops, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []*Store{s, other} {
		c := openAt(t, st, name, commits)
		c.mu.RLock()
		kept, retained := c.st.LogBytes(), len(c.st.Log())
		c.mu.RUnlock()
		if kept > cache || retained != commits {
			t.Fatalf("the state holds %d commits, %d bytes of them with their ops; want %d, at most %d bytes", retained, kept, commits, cache)
		}

		// Every commit, in pages of at most 64 KiB, as made: those
		// beyond the cache read from the stream.
		reads := st.LogReads()
		next := uint64(0)
		for next < commits {
			ch, err := st.Changes(ctx, name, next, store.Page{Bytes: 64 << 10})
			if err != nil {
				t.Fatalf("Changes after %d: %v", next, err)
			}
			if len(ch.Commits) == 0 || len(ch.Commits) > 64 {
				t.Fatalf("Changes after %d: %d commits in a page of 64 KiB", next, len(ch.Commits))
			}
			for _, cm := range ch.Commits {
				next++
				i := int(next - 1)
				if cm.Version != next || len(cm.Ops) != 1 || cm.Ops[0].ID != fmt.Sprint("r", i%50) || !bytes.Equal(cm.Ops[0].Value, value(i)) {
					t.Fatalf("commit %d read back as %d, %d ops", next, cm.Version, len(cm.Ops))
				}
			}
		}
		if n := st.LogReads() - reads; n < commits-cache/1000 || n >= commits {
			t.Fatalf("%d commits read from the stream, want all those beyond the cache (~%d)", n, commits-cache/1000)
		}
	}

	// The stream loses the oldest commits' log entries behind the
	// stores' backs: a Changes that needs one is told the log was
	// compacted.
	c, err := s.coll(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.unuse()
	c.mu.RLock()
	prefix, bound := c.names.prefix(c.st.Epoch), c.st.Log()[10].Seq
	c.mu.RUnlock()
	stream, err := s.js.Stream(ctx, c.names.stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(logFilter(prefix)), jetstream.WithPurgeSequence(bound)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Changes(ctx, name, 0, store.Page{}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes after 0 with commit 1 gone from the stream: %v; want ErrCompacted", err)
	}
	ch, err := s.Changes(ctx, name, 10, store.Page{})
	if err != nil || len(ch.Commits) != commits-10 {
		t.Fatalf("Changes after 10 = %d commits, %v; want %d", len(ch.Commits), err, commits-10)
	}
}

// TestLogCacheLargeCommits: commits too large for one message (their log
// entries in chunks), shed among small ones, read back from the stream
// whole and in order, on the committing store and on a follower, alone
// and together with the small ones.
func TestLogCacheLargeCommits(t *testing.T) {
	ctx := t.Context()
	s, other := openPair(t, Options{IdleAfter: -1, LogCache: 16 << 10})
	const name = "large"
	big := func(v, k int) []byte {
		return fmt.Appendf(nil, `"%d.%d.%s"`, v, k, bytes.Repeat([]byte("x"), 400<<10))
	}
	const n = 40
	var made []protocol.Commit
	for v := 1; v <= n; v++ {
		var ops []protocol.Op
		switch {
		case v == 6 || v == 7:
			for k := range 3 {
				ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprint("big", k), Value: big(v, k)})
			}
		case v == 8:
			// Small ops whose log entry is large: the values they
			// replace.
			for k := range 3 {
				ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprint("big", k), Value: []byte("0")})
			}
		default:
			ops = []protocol.Op{{Op: protocol.OpPut, ID: "small", Value: fmt.Appendf(nil, `"%d.%s"`, v, bytes.Repeat([]byte("y"), 1<<10))}}
		}
		a, err := s.Apply(ctx, name, ops, nil)
		if err != nil {
			t.Fatalf("commit %d: %v", v, err)
		}
		made = append(made, a.Commit.Clone())
	}
	for _, st := range []*Store{s, other} {
		openAt(t, st, name, n)
		for _, after := range []uint64{7, 5, 0} { // from the small one with a large entry, the large ones, all
			ch, err := st.Changes(ctx, name, after, store.Page{Commits: n - int(after)})
			if err != nil {
				t.Fatalf("Changes after %d: %v", after, err)
			}
			if len(ch.Commits) != n-int(after) {
				t.Fatalf("Changes after %d: %d commits, want %d", after, len(ch.Commits), n-after)
			}
			for _, cm := range ch.Commits {
				want := made[cm.Version-1]
				if len(cm.Ops) != len(want.Ops) {
					t.Fatalf("commit %d read back with %d ops, want %d", cm.Version, len(cm.Ops), len(want.Ops))
				}
				for k, op := range cm.Ops {
					if op.ID != want.Ops[k].ID || !bytes.Equal(op.Value, want.Ops[k].Value) {
						t.Fatalf("commit %d op %d read back as %s (%d bytes)", cm.Version, k, op.ID, len(op.Value))
					}
				}
			}
		}
		if st.LogReads() == 0 {
			t.Fatal("no commit read from the stream")
		}
	}
}
