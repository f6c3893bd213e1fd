package natskv

import (
	"bytes"
	"encoding/json"
	"testing"

	"errors"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestLogEntryPrev: each commit's log entry carries the values its ops
// replaced, and another process's watchers get those.
func TestLogEntryPrev(t *testing.T) {
	ctx := t.Context()
	s, other := openPair(t, Options{})
	const name = "prevlog"
	events := make(chan store.Event, 16)
	stop := other.Watch(func(ev store.Event) {
		if ev.Collection == name && ev.Commit != nil {
			events <- ev
		}
	})
	defer stop()
	oc, err := other.coll(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.unuse()
	steps := [][]protocol.Op{
		{{Op: protocol.OpPut, ID: "a", Value: []byte(`{"n":1}`)}, {Op: protocol.OpPut, ID: "b", Value: []byte(`null`)}},
		{{Op: protocol.OpPut, ID: "a", Value: []byte(`{"n":2}`)}, {Op: protocol.OpDelete, ID: "a"}, {Op: protocol.OpDelete, ID: "b"}},
	}
	want := [][]json.RawMessage{{nil, nil}, {json.RawMessage(`{"n":1}`), json.RawMessage(`{"n":2}`), json.RawMessage(`null`)}}
	for i, ops := range steps {
		if _, err := s.Apply(ctx, name, ops, nil); err != nil {
			t.Fatal(err)
		}
		c := openAt(t, s, name, uint64(i+1))
		c.mu.RLock()
		prefix := c.names.prefix(c.st.Epoch)
		c.mu.RUnlock()
		var entry []byte
		if _, err := s.directGet(ctx, c.names.stream, directRequest{MultiLast: []string{logSubject(prefix, uint64(i+1), 0)}}, func(m feedMsg) bool {
			entry = m.data
			return false
		}); err != nil {
			t.Fatal(err)
		}
		_, prev, err := decodeCommit(entry)
		if err != nil {
			t.Fatal(err)
		}
		if !samePrev(prev, want[i]) {
			t.Fatalf("commit %d: log entry %s carries prev %q, want %q", i+1, entry, prev, want[i])
		}
		ev := <-events
		if ev.Version != uint64(i+1) || !samePrev(ev.Prev, want[i]) {
			t.Fatalf("the other process's watcher got commit %d with prev %q, want commit %d with %q", ev.Version, ev.Prev, i+1, want[i])
		}
	}
}

// samePrev reports whether two lists of previous values are the same,
// telling nil (no record) from the value null.
func samePrev(a, b []json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) || !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestPlanDefersForPrev: requests whose log entries, with the values they
// replace, take a batch past MaxBatch wait for the next batch instead of
// failing the group.
func TestPlanDefersForPrev(t *testing.T) {
	ctx := t.Context()
	s, _ := openPair(t, Options{MaxBatch: 8})
	const name = "defer"
	big := append(append([]byte(`"`), bytes.Repeat([]byte("x"), s.chunkSize())...), '"')
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		if _, err := s.Apply(ctx, name, []protocol.Op{{Op: protocol.OpPut, ID: id, Value: big}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := openAt(t, s, name, uint64(len(ids)))
	var group []*request
	for _, id := range ids {
		ops := []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte("1")}}
		group = append(group, &request{ops: ops, opsJSON: protocol.AppendOps(nil, ops), msgs: 2, done: make(chan struct{})})
	}
	c.mu.RLock()
	p, err := c.plan(group, true, nil, nil)
	c.mu.RUnlock()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(p.ok) != 2 || len(p.deferred) != 1 || p.deferred[0] != group[2] || len(p.msgs) > 8 {
		t.Fatalf("plan took %d requests, deferred %d, in a batch of %d messages; want 2, 1, at most 8", len(p.ok), len(p.deferred), len(p.msgs))
	}
	// Without room to defer, the group is refused as too large.
	c.mu.RLock()
	_, err = c.plan(group, false, nil, nil)
	c.mu.RUnlock()
	if !errors.Is(err, protocol.ErrTooLarge) {
		t.Fatalf("plan without deferring = %v, want ErrTooLarge", err)
	}

	// Committed concurrently, every request gets its commit.
	errs := make(chan error, len(ids))
	for _, id := range ids {
		go func() {
			_, err := s.Apply(ctx, name, []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte("2")}}, nil)
			errs <- err
		}()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if r, err := s.Get(ctx, name, id); err != nil || string(r.Value) != "2" {
			t.Fatalf("Get %s = %+v, %v", id, r, err)
		}
	}
}
