package boltstore_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
)

var _ store.BatchPositions = (*boltstore.Store)(nil)

// atCommits makes n commits, the i-th a put of "k<i>" with position
// "p<i>".
func atCommits(n int) []store.AtCommit {
	cs := make([]store.AtCommit, n)
	for i := range cs {
		cs[i] = store.AtCommit{Ops: []protocol.Op{put("k"+strconv.Itoa(i), strconv.Itoa(i))}, Pos: []byte("p" + strconv.Itoa(i))}
	}
	return cs
}

// TestApplyAllAt: commits given together are applied in order, at
// consecutive versions, sharing transactions (MaxBatch each), and the
// collection's position is the last one's.
func TestApplyAllAt(t *testing.T) {
	ctx := context.Background()
	s := open(t, &boltstore.Options{NoSync: true, MaxBatch: 64})
	if _, err := s.Apply(ctx, "all", []protocol.Op{put("first", "0")}, nil); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	const n = 200
	applied, err := s.ApplyAllAt(ctx, "all", atCommits(n))
	if err != nil || len(applied) != n {
		t.Fatalf("ApplyAllAt: %d applied, %v", len(applied), err)
	}
	for i, a := range applied {
		if a.Commit.Version != uint64(i+2) || a.Commit.Ops[0].ID != "k"+strconv.Itoa(i) || a.Epoch == "" {
			t.Fatalf("commit %d: %+v", i, a)
		}
	}
	if st := s.Stats(); st.Commits-before.Commits != n || st.Batches-before.Batches != 4 {
		t.Errorf("Stats went from %+v to %+v: want %d commits in 4 transactions of at most 64", before, st, n)
	}
	if pos, err := s.Position(ctx, "all"); err != nil || string(pos) != "p199" {
		t.Errorf("Position = %q, %v; want p199", pos, err)
	}
	ch, err := s.Changes(ctx, "all", 1, store.Page{})
	if err != nil || len(ch.Commits) != n {
		t.Fatalf("changes: %d commits, %v", len(ch.Commits), err)
	}
	for i, c := range ch.Commits {
		if c.Version != uint64(i+2) || c.Ops[0].ID != "k"+strconv.Itoa(i) {
			t.Fatalf("logged commit %d: %+v", i, c)
		}
	}
}

// TestApplyAllAtPrefix: a commit that fails its check stops the batch
// there, within one transaction or across two: the commits before it are
// made, none after it, and the position is the last made one's.
func TestApplyAllAtPrefix(t *testing.T) {
	for _, maxBatch := range []int{0, 2} {
		t.Run("MaxBatch="+strconv.Itoa(maxBatch), func(t *testing.T) {
			ctx := context.Background()
			s := open(t, &boltstore.Options{NoSync: true, MaxBatch: maxBatch})
			cs := atCommits(4)
			cs[2].Ops = []protocol.Op{del("missing")}
			applied, err := s.ApplyAllAt(ctx, "pre", cs)
			if len(applied) != 2 || !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("ApplyAllAt: %d applied, %v; want 2 and ErrNotFound", len(applied), err)
			}
			if hd, err := s.Head(ctx, "pre"); err != nil || hd.Version != 2 {
				t.Errorf("head %+v, %v; want version 2", hd, err)
			}
			if pos, _ := s.Position(ctx, "pre"); string(pos) != "p1" {
				t.Errorf("Position = %q, want p1", pos)
			}
			// The store goes on.
			if a, err := s.ApplyAllAt(ctx, "pre", atCommits(1)); err != nil || a[0].Commit.Version != 3 {
				t.Errorf("then: %+v, %v", a, err)
			}
		})
	}
	s := open(t, &boltstore.Options{NoSync: true})
	cs := atCommits(3)
	cs[1].Ops = nil
	if a, err := s.ApplyAllAt(context.Background(), "empty", cs); len(a) != 0 || !errors.Is(err, store.ErrEmptyCommit) {
		t.Errorf("an empty commit among them: %d applied, %v; want none and ErrEmptyCommit", len(a), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a, err := s.ApplyAllAt(ctx, "empty", atCommits(3)); len(a) != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("a done context: %d applied, %v", len(a), err)
	}
	if hd, _ := s.Head(context.Background(), "empty"); hd.Version != 0 {
		t.Errorf("head %+v, want nothing applied", hd)
	}
}

// TestApplyAllAtWithdrawn: commits still queued when the context ends are
// withdrawn, all of them, while the committer is busy with another.
func TestApplyAllAtWithdrawn(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	now := func() time.Time {
		once.Do(func() {
			close(entered)
			<-release
		})
		return time.Now()
	}
	s := open(t, &boltstore.Options{Config: store.Config{Now: now}})
	t.Cleanup(func() { released.Do(func() { close(release) }) })
	first := make(chan error, 1)
	go func() {
		_, err := s.Apply(context.Background(), "w", []protocol.Op{put("first", "0")}, nil)
		first <- err
	}()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := s.ApplyAllAt(ctx, "w", atCommits(3))
		done <- result{len(a), err}
	}()
	waitIn(t, "boltstore.(*Store).submitAll(")
	cancel()
	r := <-done
	if r.n != 0 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("withdrawn: %d applied, %v", r.n, r.err)
	}
	released.Do(func() { close(release) })
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// A later commit shares a transaction with nothing withdrawn.
	if _, err := s.Apply(context.Background(), "w", []protocol.Op{put("last", "1")}, nil); err != nil {
		t.Fatal(err)
	}
	if hd, _ := s.Head(context.Background(), "w"); hd.Version != 2 {
		t.Errorf("head %+v, want version 2: the withdrawn commits were applied", hd)
	}
}

// waitIn waits until a goroutine waits in a select inside fn.
func waitIn(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, " [select") && strings.Contains(g, fn) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine waits in %s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}
