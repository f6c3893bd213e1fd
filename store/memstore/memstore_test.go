package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/storetest"
)

// TestConformance runs the store conformance suite. Reopening an in-memory
// store means making a new one, so it is not persistent.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		return storetest.Harness{
			Open: func(cfg store.Config) (store.Store, error) {
				return New(&Options{Config: cfg}), nil
			},
		}
	})
}

func put(id, v string) protocol.Op {
	return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(v)}
}

func del(id string) protocol.Op { return protocol.Op{Op: protocol.OpDelete, ID: id} }

func TestNilOptions(t *testing.T) {
	s := New(nil)
	defer s.Close()
	a, err := s.Apply(t.Context(), "c", []protocol.Op{put("a", "1")}, nil)
	if err != nil || a.Commit.Version != 1 {
		t.Fatalf("Apply = %+v, %v", a, err)
	}
}

func TestEpochPerInstance(t *testing.T) {
	a, b := New(nil), New(nil)
	ha, _ := a.Head(t.Context(), "c")
	hb, _ := b.Head(t.Context(), "c")
	if ha.Epoch == hb.Epoch {
		t.Fatalf("two stores share epoch %q", ha.Epoch)
	}
}

// TestRejectsBadInput: the store checks names and ops itself, and a bad
// one changes nothing.
func TestRejectsBadInput(t *testing.T) {
	ctx := t.Context()
	s := New(nil)
	defer s.Close()
	if _, err := s.Apply(ctx, "c", []protocol.Op{put("a", "1")}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		coll string
		ops  []protocol.Op
		want error
	}{
		{"Bad", []protocol.Op{put("a", "1")}, protocol.ErrBadName},
		{"c", []protocol.Op{put("b", "1"), put("", "1")}, protocol.ErrBadID},
		{"c", []protocol.Op{put("b", "1"), put("a", "{")}, protocol.ErrBadValue},
		{"c", []protocol.Op{put("b", "1"), {Op: "patch", ID: "a"}}, protocol.ErrBadOp},
		{"c", []protocol.Op{put("b", "1"), {Op: protocol.OpDelete, ID: "a", Value: json.RawMessage("1")}}, protocol.ErrBadOp},
	} {
		if _, err := s.Apply(ctx, c.coll, c.ops, nil); !errors.Is(err, c.want) {
			t.Errorf("Apply(%s, %+v) = %v, want %v", c.coll, c.ops, err, c.want)
		}
	}
	if _, err := s.Head(ctx, "Bad"); !errors.Is(err, protocol.ErrBadName) {
		t.Errorf("Head(Bad) = %v, want ErrBadName", err)
	}
	if h, _ := s.Head(ctx, "c"); h.Version != 1 {
		t.Errorf("Head(c) = %+v after refused commits, want version 1", h)
	}
	if _, err := s.Get(ctx, "c", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(c, b) = %v, want ErrNotFound", err)
	}
}

// TestValuesCompacted: values are stored compact.
func TestValuesCompacted(t *testing.T) {
	s := New(nil)
	defer s.Close()
	a, err := s.Apply(t.Context(), "c", []protocol.Op{put("a", ` { "x" : [ 1, 2 ] } `)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(t.Context(), "c", "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"x":[1,2]}`; string(r.Value) != want || string(a.Commit.Ops[0].Value) != want {
		t.Fatalf("stored %s, committed %s, want %s", r.Value, a.Commit.Ops[0].Value, want)
	}
}

// TestIndexesStayBounded: rewriting and deleting the same few records many
// times keeps the log at RetainCommits, and catch-ups stay right across
// the compactions of the indexes (whose bounds package colstate's tests
// check).
func TestIndexesStayBounded(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(&Options{Config: store.Config{RetainCommits: 10, Now: func() time.Time { return now }}})
	defer s.Close()
	for i := range 5000 {
		id := fmt.Sprintf("r%d", i%5)
		ops := []protocol.Op{put(id, fmt.Sprint(i))}
		if i%3 == 0 {
			ops = append(ops, del(id))
		}
		if _, err := s.Apply(ctx, "c", ops, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Changes(ctx, "c", 5000-11, store.Page{}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes after %d = %v, want ErrCompacted: the log holds more than the last 10 commits", 5000-11, err)
	}
	cu, err := s.CatchUp(ctx, "c", 4990)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx, "c")
	got := make(map[string]bool)
	for _, r := range cu.Records {
		got[r.ID] = true
	}
	for _, r := range snap.Records {
		if r.Version > 4990 && !got[r.ID] {
			t.Fatalf("catch-up misses %q at %d", r.ID, r.Version)
		}
	}
}

// TestCloseForgets: a closed store refuses calls and a second Close.
func TestCloseForgets(t *testing.T) {
	s := New(nil)
	if _, err := s.Apply(context.Background(), "c", []protocol.Op{put("a", "1")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if s.colls != nil {
		t.Fatal("Close kept the collections")
	}
}

// TestConformancePersistent runs the suite's persistent branch: the harness
// hands out closable handles on one Store that outlives them, as if memory
// survived a restart.
func TestConformancePersistent(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		var shared *Store
		t.Cleanup(func() {
			if shared != nil {
				shared.Close()
			}
		})
		return storetest.Harness{
			Persistent: true,
			Open: func(cfg store.Config) (store.Store, error) {
				if shared == nil {
					shared = New(&Options{Config: cfg})
				}
				return &handle{Store: shared}, nil
			},
		}
	})
}

// handle is one opening of a shared Store: closing it closes the handle,
// not the store.
type handle struct {
	*Store
	closed atomic.Bool
}

func (h *handle) check() error {
	if h.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

func (h *handle) Head(ctx context.Context, c string) (protocol.Head, error) {
	if err := h.check(); err != nil {
		return protocol.Head{}, err
	}
	return h.Store.Head(ctx, c)
}

func (h *handle) Apply(ctx context.Context, c string, ops []protocol.Op, ifs map[string]uint64) (store.Applied, error) {
	if err := h.check(); err != nil {
		return store.Applied{}, err
	}
	return h.Store.Apply(ctx, c, ops, ifs)
}

func (h *handle) Get(ctx context.Context, c, id string) (protocol.Record, error) {
	if err := h.check(); err != nil {
		return protocol.Record{}, err
	}
	return h.Store.Get(ctx, c, id)
}

func (h *handle) Snapshot(ctx context.Context, c string) (protocol.Snapshot, error) {
	if err := h.check(); err != nil {
		return protocol.Snapshot{}, err
	}
	return h.Store.Snapshot(ctx, c)
}

func (h *handle) Changes(ctx context.Context, c string, after uint64, page store.Page) (protocol.Changes, error) {
	if err := h.check(); err != nil {
		return protocol.Changes{}, err
	}
	return h.Store.Changes(ctx, c, after, page)
}

func (h *handle) CatchUp(ctx context.Context, c string, after uint64) (protocol.CatchUp, error) {
	if err := h.check(); err != nil {
		return protocol.CatchUp{}, err
	}
	return h.Store.CatchUp(ctx, c, after)
}

func (h *handle) Drop(ctx context.Context, c string) (protocol.Head, error) {
	if err := h.check(); err != nil {
		return protocol.Head{}, err
	}
	return h.Store.Drop(ctx, c)
}

func (h *handle) Close() error {
	if h.closed.Swap(true) {
		return store.ErrClosed
	}
	return nil
}
