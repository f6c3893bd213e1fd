package natskv

import (
	"fmt"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestReadTip: a live follower without a consumer follows the stream by
// direct gets, a batch at a time, and sees what another store commits as
// its consumer would: its state moves to the head, with every commit,
// and its committer finds its own batches. (The consumer is stopped and
// the follower marked lost by hand, so that nothing makes a new one, and
// the test reads the tip itself. In the shared layout collections have
// no consumer of their own: TestFeed covers the feed's tip reader.)
func TestReadTip(t *testing.T) {
	ctx := t.Context()
	s, other := openPair(t, Options{Layout: LayoutStream})
	const name = "tip"
	put := func(id string) []protocol.Op {
		return []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte(`"` + id + `"`)}}
	}
	if _, err := s.Apply(ctx, name, put("a"), nil); err != nil {
		t.Fatal(err)
	}
	c, err := s.coll(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !c.direct.Load() {
		t.Fatal("the collection's stream does not answer direct gets")
	}
	c.rmu.Lock()
	c.mu.Lock()
	f := c.fol
	c.lost = true
	// The test is the tip reader: none starts behind its back.
	c.tipReader = true
	c.mu.Unlock()
	f.cc.Stop()
	c.rmu.Unlock()
	// Stop only asks: messages the consumer had pulled may still be
	// handled until it says it is closed.
	<-f.cc.Closed()

	// More than a direct get's batch, in several commits of several ops.
	const n = 60
	for i := range n {
		ops := append(put(fmt.Sprint("o", i, "-0")), put(fmt.Sprint("o", i, "-1"))...)
		ops = append(ops, put(fmt.Sprint("o", i, "-2"))...)
		ops = append(ops, put(fmt.Sprint("o", i, "-3"))...)
		ops = append(ops, put(fmt.Sprint("o", i, "-4"))...)
		if _, err := other.Apply(ctx, name, ops, nil); err != nil {
			t.Fatal(err)
		}
	}
	head, err := other.Head(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	for {
		c.mu.RLock()
		at, from := c.st.Version, c.st.lastSeq+1
		c.mu.RUnlock()
		if at == head.Version {
			break
		}
		got, err := c.readFrom(f, from)
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			t.Fatalf("direct get from %d: nothing; the state is at version %d, the head at %d", from, at, head.Version)
		}
		reads++
	}
	if reads < 2 {
		t.Errorf("%d direct gets for %d commits of 5 ops: want batches of %d messages", reads, n, tipBatch)
	}
	snap, err := s.Snapshot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != head.Version || len(snap.Records) != 1+5*n {
		t.Fatalf("snapshot at %d with %d records, want %d with %d", snap.Version, len(snap.Records), head.Version, 1+5*n)
	}
	ch, err := s.Changes(ctx, name, 0, store.Page{})
	if err != nil || len(ch.Commits) != n+1 {
		t.Fatalf("Changes: %d commits, %v; want %d", len(ch.Commits), err, n+1)
	}

	// The store's own commit is answered once read so.
	done := make(chan error, 1)
	go func() {
		a, err := s.Apply(ctx, name, put("mine"), nil)
		if err == nil && a.Commit.Version != head.Version+1 {
			err = fmt.Errorf("committed at %d, want %d", a.Commit.Version, head.Version+1)
		}
		done <- err
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		c.mu.RLock()
		from := c.st.lastSeq + 1
		c.mu.RUnlock()
		if _, err := c.readFrom(f, from); err != nil {
			t.Fatal(err)
		}
	}
}
