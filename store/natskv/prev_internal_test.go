package natskv

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestReloadReportsPrev: commits a store missed, reported to its watchers
// when it reloads the collection's state, come with the values their ops
// replaced, chained from the state it had before through every missed
// commit; the load keeps their ops whole however small Options.LogCache,
// and their log entries carry the values they replaced however small
// Options.RecordCache.
func TestReloadReportsPrev(t *testing.T) {
	ctx := t.Context()
	// A log cache of a byte: the state keeps no commit's ops, but the
	// load keeps those of the commits the follower missed. A record
	// cache of a byte: the state keeps no value.
	s, other := openPair(t, Options{LogCache: 1, RecordCache: 1})
	const name = "reload"
	put := func(id, v string) protocol.Op {
		return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(v)}
	}
	del := func(id string) protocol.Op { return protocol.Op{Op: protocol.OpDelete, ID: id} }
	if _, err := s.Apply(ctx, name, []protocol.Op{put("a", "1"), put("b", "1")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Head(ctx, name); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		events []store.Event
		got    = make(chan struct{}, 1)
	)
	stop := s.Watch(func(ev store.Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		select {
		case got <- struct{}{}:
		default:
		}
	})
	defer stop()

	// The follower stops applying: its messages are ignored from now on,
	// as those of a replaced follower are, until the reload stops its
	// consumer.
	c, err := s.coll(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	f := c.fol
	c.fol = &follower{gen: f.gen, epoch: f.epoch, prefix: f.prefix, cc: f.cc}
	c.mu.Unlock()

	missed := []struct {
		ops  []protocol.Op
		prev []string // "": no record
	}{
		{[]protocol.Op{put("a", "2"), del("b"), put("c", "1")}, []string{"1", "1", ""}},
		{[]protocol.Op{put("a", "3"), put("c", "2"), del("c"), put("b", "3")}, []string{"2", "1", "2", ""}},
		{[]protocol.Op{del("a"), put("c", "4")}, []string{"3", ""}},
	}
	for _, m := range missed {
		if _, err := other.Apply(ctx, name, m.ops, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	if c.st.Version != 1 {
		c.mu.Unlock()
		t.Fatalf("the state is at version %d before the reload, want 1: the commits were not missed", c.st.Version)
	}
	c.breakLocked(errors.New("test: reload"))
	c.mu.Unlock()

	last := uint64(1 + len(missed))
	for {
		mu.Lock()
		n := len(events)
		done := n > 0 && events[n-1].Version >= last
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("waiting for the missed commits' events (%d so far): %v", n, ctx.Err())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != len(missed) {
		t.Fatalf("%d events, want one per missed commit (%d): %+v", len(events), len(missed), events)
	}
	for i, ev := range events {
		m := missed[i]
		if ev.Commit == nil || ev.Commit.Version != uint64(i+2) || len(ev.Commit.Ops) != len(m.ops) {
			t.Fatalf("event %d = %+v, want commit %d", i, ev, i+2)
		}
		if len(ev.Prev) != len(m.ops) {
			t.Fatalf("commit %d: Event.Prev has %d values, want %d", i+2, len(ev.Prev), len(m.ops))
		}
		for k, want := range m.prev {
			if p := ev.Prev[k]; (want == "") != (p == nil) || !bytes.Equal(p, []byte(want)) {
				t.Fatalf("commit %d op %d: Event.Prev %q, want %q (\"\": none)", i+2, k, p, want)
			}
		}
	}
}
