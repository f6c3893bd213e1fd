package boltstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/storetest"
)

// TestMain fails the run if a committer goroutine outlives its store.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if stacks := leaked(); stacks != "" {
			fmt.Fprintf(os.Stderr, "leaked committer goroutines:\n%s\n", stacks)
			code = 1
		}
	}
	os.Exit(code)
}

// leaked returns the stacks of goroutines still running package code, after
// giving them a moment to finish.
func leaked() string {
	var stacks string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		stacks = ""
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "boltstore.(*Store).run") {
				stacks += g + "\n\n"
			}
		}
		if stacks == "" {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return stacks
}

// openAt opens a store in path and closes it when the test ends, unless the
// test closed it itself.
func openAt(t *testing.T, path string, opts *boltstore.Options) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// open opens a store in a fresh file.
func open(t *testing.T, opts *boltstore.Options) *boltstore.Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "v.db"), opts)
}

func put(id, value string) protocol.Op {
	return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(value)}
}

func del(id string) protocol.Op {
	return protocol.Op{Op: protocol.OpDelete, ID: id}
}

func mustApply(t *testing.T, s store.Store, coll string, ops []protocol.Op, ifs map[string]uint64) store.Applied {
	t.Helper()
	a, err := s.Apply(context.Background(), coll, ops, ifs)
	if err != nil {
		t.Fatalf("Apply %v: %v", ops, err)
	}
	return a
}

func TestApplyAndRead(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("X", 3600)))
	s := open(t, &boltstore.Options{Config: store.Config{Now: clk.Now}})

	h0, err := s.Head(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	if h0.Version != 0 || protocol.ValidateEpoch(h0.Epoch) != nil || len(h0.Epoch) != 16 {
		t.Fatalf("fresh head = %+v, want version 0 and a 16-character epoch", h0)
	}

	a1 := mustApply(t, s, "products", []protocol.Op{put("b", `{"n":2}`), put("a", `{"n":1}`)}, nil)
	if a1.Epoch != h0.Epoch || a1.Commit.Version != 1 {
		t.Fatalf("first commit = %+v, want version 1 in epoch %s", a1, h0.Epoch)
	}
	if !a1.Commit.At.Equal(clk.Now()) || a1.Commit.At.Location() != time.UTC {
		t.Fatalf("At = %v, want %v in UTC", a1.Commit.At, clk.Now())
	}
	a2 := mustApply(t, s, "products", []protocol.Op{put("a", `{"n":3}`), del("b")}, map[string]uint64{"a": 1, "b": 1})
	if a2.Commit.Version != 2 {
		t.Fatalf("second commit version = %d", a2.Commit.Version)
	}

	rec, err := s.Get(ctx, "products", "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := (protocol.Record{ID: "a", Value: json.RawMessage(`{"n":3}`), Version: 2}); !reflect.DeepEqual(rec, want) {
		t.Fatalf("Get a = %+v, want %+v", rec, want)
	}
	if _, err := s.Get(ctx, "products", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get deleted record: err = %v, want ErrNotFound", err)
	}

	snap, err := s.Snapshot(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Epoch != h0.Epoch || snap.Version != 2 || len(snap.Records) != 1 || snap.Records[0].ID != "a" {
		t.Fatalf("Snapshot = %+v", snap)
	}

	ch, err := s.Changes(ctx, "products", 0, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Commit{a1.Commit, a2.Commit}
	if ch.Version != 2 || ch.Epoch != h0.Epoch || !reflect.DeepEqual(ch.Commits, want) {
		t.Fatalf("Changes(0) = %+v, want commits %+v", ch, want)
	}
	ch, err = s.Changes(ctx, "products", 0, store.Page{Commits: 1})
	if err != nil || len(ch.Commits) != 1 || ch.Commits[0].Version != 1 || ch.Version != 2 {
		t.Fatalf("Changes(0, limit 1) = %+v, %v", ch, err)
	}
	ch, err = s.Changes(ctx, "products", 5, store.Page{})
	if err != nil || ch.Commits == nil || len(ch.Commits) != 0 || ch.Version != 2 {
		t.Fatalf("Changes ahead of head = %+v, %v; want no commits, version 2", ch, err)
	}

	cu, err := s.CatchUp(ctx, "products", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !cu.Compacted || cu.Version != 2 || !reflect.DeepEqual(cu.Deleted, []string{"b"}) ||
		len(cu.Records) != 1 || cu.Records[0].ID != "a" || cu.Records[0].Version != 2 {
		t.Fatalf("CatchUp(1) = %+v", cu)
	}
	cu, err = s.CatchUp(ctx, "products", 2)
	if err != nil || cu.Records == nil || cu.Deleted == nil || len(cu.Records)+len(cu.Deleted) != 0 {
		t.Fatalf("CatchUp(head) = %+v, %v; want empty, non-nil slices", cu, err)
	}
	b, err := json.Marshal(cu)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"collection":"products","epoch":"` + h0.Epoch + `","version":2,"compacted":true,"records":[],"deleted":[]}`; string(b) != want {
		t.Fatalf("empty catch-up encodes as %s, want %s", b, want)
	}
}

func TestApplyErrorsChangeNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t, nil)
	mustApply(t, s, "c", []protocol.Op{put("a", `1`)}, nil)

	cases := []struct {
		name string
		coll string
		ops  []protocol.Op
		ifs  map[string]uint64
		is   error
	}{
		{"empty commit", "c", nil, nil, store.ErrEmptyCommit},
		{"bad collection", "Bad", []protocol.Op{put("x", `1`)}, nil, protocol.ErrBadName},
		{"bad id", "c", []protocol.Op{put("", `1`)}, nil, protocol.ErrBadID},
		{"unknown op", "c", []protocol.Op{{Op: "merge", ID: "x"}}, nil, protocol.ErrBadOp},
		{"must not exist", "c", []protocol.Op{put("a", `2`)}, map[string]uint64{"a": 0}, store.ErrPrecondition},
		{"wrong version", "c", []protocol.Op{put("a", `2`)}, map[string]uint64{"a": 7}, store.ErrPrecondition},
		{"guard on other record", "c", []protocol.Op{put("z", `2`)}, map[string]uint64{"y": 1}, store.ErrPrecondition},
		{"delete missing", "c", []protocol.Op{put("n", `1`), del("missing")}, nil, store.ErrNotFound},
		{"delete twice", "c", []protocol.Op{del("a"), del("a")}, nil, store.ErrNotFound},
		{"delete missing in new collection", "fresh", []protocol.Op{del("a")}, nil, store.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(ctx, tc.coll, tc.ops, tc.ifs)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			snap, err := s.Snapshot(ctx, "c")
			if err != nil {
				t.Fatal(err)
			}
			if snap.Version != 1 || len(snap.Records) != 1 || string(snap.Records[0].Value) != `1` {
				t.Fatalf("store changed: %+v", snap)
			}
		})
	}

	_, err := s.Apply(ctx, "c", []protocol.Op{put("a", `2`)}, map[string]uint64{"b": 3, "a": 9})
	var pe *store.PreconditionError
	if !errors.As(err, &pe) || *pe != (store.PreconditionError{ID: "a", Want: 9, Have: 1}) {
		t.Fatalf("err = %v, want the precondition of the smallest failing id, a", err)
	}

	// Ops of one commit see the earlier ones.
	a := mustApply(t, s, "c", []protocol.Op{put("t", `1`), del("t"), put("u", `1`), del("a")}, map[string]uint64{"t": 0})
	if a.Commit.Version != 2 {
		t.Fatalf("version = %d, want 2", a.Commit.Version)
	}
	snap, err := s.Snapshot(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Records) != 1 || snap.Records[0].ID != "u" {
		t.Fatalf("records = %+v, want only u", snap.Records)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	s := openAt(t, path, nil)
	mustApply(t, s, "a", []protocol.Op{put("x", `"1"`)}, nil)
	mustApply(t, s, "a", []protocol.Op{put("y", `"2"`)}, nil)
	mustApply(t, s, "b", []protocol.Op{put("x", `true`)}, nil)
	dropped, err := s.Drop(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, "b", []protocol.Op{put("z", `null`)}, nil)
	ha, _ := s.Head(ctx, "a")
	hc, _ := s.Head(ctx, "never")
	snapA, err := s.Snapshot(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, nil)
	if h, err := s.Head(ctx, "a"); err != nil || h != ha {
		t.Fatalf("a after reopen = %+v, %v; want %+v", h, err, ha)
	}
	if h, err := s.Head(ctx, "never"); err != nil || h != hc {
		t.Fatalf("never-written after reopen = %+v, %v; want %+v", h, err, hc)
	}
	if h, err := s.Head(ctx, "b"); err != nil || h != (protocol.Head{Epoch: dropped.Epoch, Version: 1}) {
		t.Fatalf("dropped b after reopen = %+v, %v; want version 1 in %s", h, err, dropped.Epoch)
	}
	if snap, err := s.Snapshot(ctx, "a"); err != nil || !reflect.DeepEqual(snap, snapA) {
		t.Fatalf("snapshot after reopen = %+v, %v; want %+v", snap, err, snapA)
	}
	a := mustApply(t, s, "a", []protocol.Op{del("x")}, map[string]uint64{"x": 1})
	if a.Commit.Version != 3 || a.Epoch != ha.Epoch {
		t.Fatalf("commit after reopen = %+v, want version 3 in %s", a, ha.Epoch)
	}
}

func TestDrop(t *testing.T) {
	ctx := context.Background()
	s := open(t, nil)
	first := mustApply(t, s, "d", []protocol.Op{put("x", `1`), put("y", `2`)}, nil)
	mustApply(t, s, "d", []protocol.Op{del("y")}, nil)
	other := mustApply(t, s, "o", []protocol.Op{put("x", `1`)}, nil)

	h, err := s.Drop(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 0 || h.Epoch == first.Epoch || protocol.ValidateEpoch(h.Epoch) != nil || h.Epoch == "" {
		t.Fatalf("Drop = %+v, want version 0 in a new valid epoch (old %s)", h, first.Epoch)
	}
	if got, _ := s.Head(ctx, "d"); got != h {
		t.Fatalf("Head after drop = %+v, want %+v", got, h)
	}
	if snap, _ := s.Snapshot(ctx, "d"); len(snap.Records) != 0 || snap.Epoch != h.Epoch {
		t.Fatalf("snapshot after drop = %+v", snap)
	}
	if ch, err := s.Changes(ctx, "d", 0, store.Page{}); err != nil || len(ch.Commits) != 0 {
		t.Fatalf("changes after drop = %+v, %v", ch, err)
	}
	if cu, err := s.CatchUp(ctx, "d", 0); err != nil || len(cu.Records)+len(cu.Deleted) != 0 {
		t.Fatalf("catch-up after drop = %+v, %v", cu, err)
	}
	if _, err := s.Get(ctx, "d", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after drop: %v", err)
	}
	a := mustApply(t, s, "d", []protocol.Op{put("x", `3`)}, map[string]uint64{"x": 0})
	if a.Commit.Version != 1 || a.Epoch != h.Epoch {
		t.Fatalf("commit after drop = %+v, want version 1 in %s", a, h.Epoch)
	}
	if got, _ := s.Head(ctx, "o"); got != (protocol.Head{Epoch: other.Epoch, Version: 1}) {
		t.Fatalf("other collection changed: %+v", got)
	}
	h2, err := s.Drop(ctx, "d")
	if err != nil || h2.Epoch == h.Epoch {
		t.Fatalf("second drop = %+v, %v; want another epoch than %s", h2, err, h.Epoch)
	}
	h3, err := s.Drop(ctx, "never-written")
	if err != nil || h3.Version != 0 || h3.Epoch == first.Epoch {
		t.Fatalf("drop of a never-written collection = %+v, %v", h3, err)
	}
}

func TestLogTrimming(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	s := openAt(t, path, &boltstore.Options{Config: store.Config{RetainCommits: 5}, NoSync: true})
	for i := range 20 {
		mustApply(t, s, "l", []protocol.Op{put(strconv.Itoa(i%3), strconv.Itoa(i))}, nil)
	}
	// The log holds exactly the last five commits, 16 through 20.
	ch, err := s.Changes(ctx, "l", 15, store.Page{})
	if err != nil || len(ch.Commits) != 5 || ch.Commits[0].Version != 16 {
		t.Fatalf("Changes(15) = %+v, %v; want commits 16-20", ch, err)
	}
	if _, err := s.Changes(ctx, "l", 14, store.Page{}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(14): %v, want ErrCompacted", err)
	}
	if _, err := s.Changes(ctx, "l", 0, store.Page{Commits: 1}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(0): %v, want ErrCompacted", err)
	}
	// Behind the log, a catch-up still works and holds every record.
	cu, err := s.CatchUp(ctx, "l", 0)
	if err != nil || len(cu.Records) != 3 {
		t.Fatalf("CatchUp(0) = %+v, %v", cu, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// With a larger retention the log grows again: 16 through 40.
	s = openAt(t, path, &boltstore.Options{Config: store.Config{RetainCommits: 100}, NoSync: true})
	for i := range 20 {
		mustApply(t, s, "l", []protocol.Op{put("x", strconv.Itoa(i))}, nil)
	}
	if ch, err := s.Changes(ctx, "l", 15, store.Page{}); err != nil || len(ch.Commits) != 25 {
		t.Fatalf("Changes(15) = %d commits, %v; want 25", len(ch.Commits), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A much smaller retention shrinks the log a few entries per commit,
	// not all at once.
	s = openAt(t, path, &boltstore.Options{Config: store.Config{RetainCommits: 1}, NoSync: true})
	mustApply(t, s, "l", []protocol.Op{put("x", `1`)}, nil) // version 41
	if _, err := s.Changes(ctx, "l", 15, store.Page{}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(15) after one commit: %v, want ErrCompacted", err)
	}
	if ch, err := s.Changes(ctx, "l", 30, store.Page{}); err != nil || len(ch.Commits) != 11 {
		t.Fatalf("Changes(30) after one commit = %d commits, %v; want the log trimmed incrementally", len(ch.Commits), err)
	}
	for range 10 {
		mustApply(t, s, "l", []protocol.Op{put("x", `2`)}, nil) // versions 42-51
	}
	if ch, err := s.Changes(ctx, "l", 50, store.Page{}); err != nil || len(ch.Commits) != 1 {
		t.Fatalf("Changes(50) = %+v, %v", ch, err)
	}
	if _, err := s.Changes(ctx, "l", 49, store.Page{}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(49): %v, want ErrCompacted", err)
	}
}

func TestTombstoneTrimming(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := open(t, &boltstore.Options{Config: store.Config{Now: clk.Now, RetainTombstones: time.Hour}, NoSync: true})

	mustApply(t, s, "t", []protocol.Op{put("a", `1`), put("b", `1`), put("c", `1`)}, nil) // v1
	mustApply(t, s, "t", []protocol.Op{del("a")}, nil)                                    // v2 at 0:00
	clk.Advance(30 * time.Minute)
	mustApply(t, s, "t", []protocol.Op{del("b")}, nil) // v3 at 0:30
	cu, err := s.CatchUp(ctx, "t", 1)
	if err != nil || !reflect.DeepEqual(cu.Deleted, []string{"a", "b"}) {
		t.Fatalf("CatchUp(1) = %+v, %v; want a and b deleted", cu, err)
	}

	// At 1:00 the deletion of a is exactly one hour old: still kept.
	clk.Advance(30 * time.Minute)
	mustApply(t, s, "t", []protocol.Op{put("d", `1`)}, nil) // v4
	if _, err := s.CatchUp(ctx, "t", 1); err != nil {
		t.Fatalf("CatchUp(1) with the tombstone at the horizon: %v", err)
	}

	clk.Advance(time.Minute)
	mustApply(t, s, "t", []protocol.Op{put("e", `1`)}, nil) // v5 trims a's tombstone
	if _, err := s.CatchUp(ctx, "t", 1); !errors.Is(err, store.ErrHistoryGone) {
		t.Fatalf("CatchUp(1) after a's tombstone expired: %v, want ErrHistoryGone", err)
	}
	cu, err = s.CatchUp(ctx, "t", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cu.Deleted, []string{"b"}) || len(cu.Records) != 2 || cu.Records[0].ID != "d" || cu.Records[1].ID != "e" {
		t.Fatalf("CatchUp(2) = %+v; want d, e and b deleted", cu)
	}

	// Writing b again forgets its tombstone: it is no longer "deleted".
	mustApply(t, s, "t", []protocol.Op{put("b", `2`)}, map[string]uint64{"b": 0}) // v6
	cu, err = s.CatchUp(ctx, "t", 2)
	if err != nil || len(cu.Deleted) != 0 || len(cu.Records) != 3 || cu.Records[2].ID != "b" {
		t.Fatalf("CatchUp(2) after b was written again = %+v, %v", cu, err)
	}
	// A deletion trimmed later raises the horizon past its version.
	mustApply(t, s, "t", []protocol.Op{del("c")}, nil) // v7
	clk.Advance(2 * time.Hour)
	mustApply(t, s, "t", []protocol.Op{put("f", `1`)}, nil) // v8 trims c's tombstone
	if _, err := s.CatchUp(ctx, "t", 6); !errors.Is(err, store.ErrHistoryGone) {
		t.Fatalf("CatchUp(6): %v, want ErrHistoryGone", err)
	}
	if cu, err := s.CatchUp(ctx, "t", 7); err != nil || len(cu.Records) != 1 || cu.Records[0].ID != "f" {
		t.Fatalf("CatchUp(7) = %+v, %v", cu, err)
	}
}

func TestCatchUpOrder(t *testing.T) {
	ctx := context.Background()
	s := open(t, &boltstore.Options{NoSync: true})
	mustApply(t, s, "o", []protocol.Op{put("z", `1`), put("m", `1`), put("a", `1`)}, nil) // v1
	mustApply(t, s, "o", []protocol.Op{put("y", `2`), put("b", `2`)}, nil)                // v2
	mustApply(t, s, "o", []protocol.Op{put("z", `3`)}, nil)                               // v3
	mustApply(t, s, "o", []protocol.Op{del("m"), del("a")}, nil)                          // v4
	cu, err := s.CatchUp(ctx, "o", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range cu.Records {
		got = append(got, fmt.Sprintf("%s@%d=%s", r.ID, r.Version, r.Value))
	}
	if want := []string{"b@2=2", "y@2=2", "z@3=3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("records = %v, want %v (by version, then id)", got, want)
	}
	if !reflect.DeepEqual(cu.Deleted, []string{"a", "m"}) {
		t.Fatalf("deleted = %v", cu.Deleted)
	}
	snap, err := s.Snapshot(ctx, "o")
	if err != nil {
		t.Fatal(err)
	}
	if ids := []string{snap.Records[0].ID, snap.Records[1].ID, snap.Records[2].ID}; !reflect.DeepEqual(ids, []string{"b", "y", "z"}) {
		t.Fatalf("snapshot order = %v", ids)
	}
	// Values read out of a transaction stay intact after further writes.
	mustApply(t, s, "o", []protocol.Op{put("b", `"changed"`), put("y", `"changed"`)}, nil)
	if string(cu.Records[0].Value) != "2" || string(snap.Records[2].Value) != "3" {
		t.Fatalf("earlier reads changed under us: %s %s", cu.Records[0].Value, snap.Records[2].Value)
	}
}

func TestOpenRefusesLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	openAt(t, path, nil)
	if _, err := boltstore.Open(path, &boltstore.Options{LockTimeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("second Open of a locked file succeeded")
	}
}

// TestConformance runs the store conformance suite. Each subtest gets its
// own file, reopened at the same path.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		dir := t.TempDir()
		return storetest.Harness{
			Persistent: true,
			Open: func(cfg store.Config) (store.Store, error) {
				return boltstore.Open(filepath.Join(dir, "v.db"), &boltstore.Options{Config: cfg})
			},
		}
	})
}
