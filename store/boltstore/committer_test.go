package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
)

// TestConcurrentApply runs many writers against one counter record, each
// doing compare-and-swap increments with preconditions, and checks the
// history afterwards: versions contiguous and unique, every acknowledged
// commit in the log as acknowledged, the counter equal to the number of
// successful increments, and commits shared between fsyncs.
func TestConcurrentApply(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	s := openAt(t, path, &boltstore.Options{MaxBatch: 16})
	const writers, perWriter = 32, 10

	mustApply(t, s, "ctr", []protocol.Op{put("n", `0`)}, nil)
	var (
		mu      sync.Mutex
		applied []store.Applied
		wg      sync.WaitGroup
	)
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// A private record, unconditionally.
				a, err := s.Apply(ctx, "ctr", []protocol.Op{put(fmt.Sprintf("w%02d-%02d", w, i), strconv.Itoa(i))}, nil)
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				applied = append(applied, a)
				mu.Unlock()
				// An increment of the shared counter, retried on conflict.
				for {
					rec, err := s.Get(ctx, "ctr", "n")
					if err != nil {
						errc <- err
						return
					}
					n, _ := strconv.Atoi(string(rec.Value))
					a, err := s.Apply(ctx, "ctr", []protocol.Op{put("n", strconv.Itoa(n+1))}, map[string]uint64{"n": rec.Version})
					if errors.Is(err, store.ErrPrecondition) {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					mu.Lock()
					applied = append(applied, a)
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	const total = 1 + 2*writers*perWriter
	slices.SortFunc(applied, func(a, b store.Applied) int { return int(a.Commit.Version) - int(b.Commit.Version) })
	for i, a := range applied {
		if a.Commit.Version != uint64(i+2) {
			t.Fatalf("acknowledged versions not contiguous: position %d has version %d", i, a.Commit.Version)
		}
	}
	rec, err := s.Get(ctx, "ctr", "n")
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Value) != strconv.Itoa(writers*perWriter) {
		t.Fatalf("counter = %s, want %d: an increment was lost or doubled", rec.Value, writers*perWriter)
	}
	ch, err := s.Changes(ctx, "ctr", 1, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != total || len(ch.Commits) != total-1 {
		t.Fatalf("log: version %d with %d commits, want %d and %d", ch.Version, len(ch.Commits), total, total-1)
	}
	for i, c := range ch.Commits {
		if !reflect.DeepEqual(c, applied[i].Commit) {
			t.Fatalf("log entry %d = %+v, acknowledged as %+v", c.Version, c, applied[i].Commit)
		}
	}
	if st := s.Stats(); st.Commits != total {
		t.Fatalf("Stats.Commits = %d, want %d", st.Commits, total)
	}

	// Everything acknowledged is durable.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, path, nil)
	h, err := s2.Head(ctx, "ctr")
	if err != nil || h.Version != total {
		t.Fatalf("after reopen head = %+v, %v; want version %d", h, err, total)
	}
}

// TestGroupCommit holds the committer inside a transaction while commits
// queue up, then checks that they are written together, in batches of at
// most MaxBatch, and in arrival order.
func TestGroupCommit(t *testing.T) {
	for _, maxBatch := range []int{0, 8} {
		t.Run("MaxBatch="+strconv.Itoa(maxBatch), func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			now := func() time.Time {
				once.Do(func() {
					close(entered)
					<-release
				})
				return time.Now()
			}
			s := open(t, &boltstore.Options{Config: store.Config{Now: now}, MaxBatch: maxBatch})
			var released sync.Once
			t.Cleanup(func() { released.Do(func() { close(release) }) }) // runs before Close
			ctx := context.Background()

			first := make(chan error, 1)
			go func() {
				_, err := s.Apply(ctx, "g", []protocol.Op{put("first", `0`)}, nil)
				first <- err
			}()
			<-entered

			const n = 50
			var wg sync.WaitGroup
			versions := make([]uint64, n)
			for i := range n {
				// Queue them one at a time, so that arrival order is known.
				waitQueued(t, i)
				wg.Go(func() {
					a, err := s.Apply(ctx, "g", []protocol.Op{put(strconv.Itoa(i), strconv.Itoa(i))}, nil)
					if err != nil {
						t.Error(err)
					}
					versions[i] = a.Commit.Version
				})
			}
			waitQueued(t, n)
			released.Do(func() { close(release) })
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			wg.Wait()

			for i, v := range versions {
				if v != uint64(i+2) {
					t.Fatalf("commit queued %dth got version %d, want %d: not in arrival order", i, v, i+2)
				}
			}
			batch := maxBatch
			if batch == 0 {
				batch = boltstore.DefaultMaxBatch
			}
			// The first commit's transaction takes in the queued ones, up to
			// MaxBatch, before it commits.
			want := (n + batch) / batch
			if st := s.Stats(); st.Commits != n+1 || st.Batches != uint64(want) {
				t.Fatalf("Stats = %+v, want %d commits in %d transactions", st, n+1, want)
			}
		})
	}
}

// waitQueued waits until n goroutines are waiting in the store's queue,
// besides the one whose commit is being written.
func waitQueued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		waiting := 0
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			// Parked in submit's select: queued, waiting for the answer.
			if strings.Contains(g, " [select") && strings.Contains(g, "boltstore.(*Store).submit(") {
				waiting++
			}
		}
		if waiting == n+1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests did not queue up", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchIsolation checks that commits failing their checks inside a
// batch change nothing and do not fail the others.
func TestBatchIsolation(t *testing.T) {
	ctx := context.Background()
	s := open(t, &boltstore.Options{NoSync: true})
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := strconv.Itoa(i % 20) // ten contenders per id; one create wins
			_, errs[i] = s.Apply(ctx, "iso", []protocol.Op{put(id, strconv.Itoa(i))}, map[string]uint64{id: 0})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrPrecondition):
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 20 {
		t.Fatalf("%d creates succeeded, want exactly 20 (one per id)", ok)
	}
	h, err := s.Head(ctx, "iso")
	if err != nil || h.Version != 20 {
		t.Fatalf("head = %+v, %v; want version 20", h, err)
	}
	ch, err := s.Changes(ctx, "iso", 0, store.Page{})
	if err != nil || len(ch.Commits) != 20 {
		t.Fatalf("changes = %d commits, %v", len(ch.Commits), err)
	}
}

// TestCloseWithPending closes the store while writers are queued: every
// Apply either succeeds, and is then durable, or fails with ErrClosed.
func TestCloseWithPending(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	s := openAt(t, path, nil)
	const writers = 64
	var wg sync.WaitGroup
	results := make([]error, writers)
	versions := make([]uint64, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			a, err := s.Apply(ctx, "p", []protocol.Op{put(strconv.Itoa(i), `1`)}, nil)
			results[i], versions[i] = err, a.Commit.Version
		})
	}
	close(start)
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	var ok []uint64
	for i, err := range results {
		switch {
		case err == nil:
			ok = append(ok, versions[i])
		case !errors.Is(err, store.ErrClosed):
			t.Fatalf("writer %d: %v, want success or ErrClosed", i, err)
		}
	}
	t.Logf("%d of %d commits made it before Close", len(ok), writers)

	if _, err := s.Apply(ctx, "p", []protocol.Op{put("late", `1`)}, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if _, err := s.Head(ctx, "p"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Head after Close: %v", err)
	}
	if _, err := s.Drop(ctx, "p"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Drop after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}

	s = openAt(t, path, nil)
	snap, err := s.Snapshot(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != uint64(len(ok)) || len(snap.Records) != len(ok) {
		t.Fatalf("after reopen: version %d with %d records, want %d acknowledged commits", snap.Version, len(snap.Records), len(ok))
	}
	slices.Sort(ok)
	for i, v := range ok {
		if v != uint64(i+1) {
			t.Fatalf("acknowledged versions %v are not 1..%d", ok, len(ok))
		}
	}
}

// TestContextWhileQueued holds the committer inside a transaction (its
// clock blocks) and checks that a queued Apply whose context ends returns
// the context's error and is never applied.
func TestContextWhileQueued(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	now := func() time.Time {
		once.Do(func() {
			close(entered)
			<-release
		})
		return time.Now()
	}
	s := open(t, &boltstore.Options{Config: store.Config{Now: now}, NoSync: true})

	first := make(chan error, 1)
	go func() {
		_, err := s.Apply(context.Background(), "q", []protocol.Op{put("a", `1`)}, nil)
		first <- err
	}()
	<-entered // the committer is inside the first transaction

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Apply(ctx, "q", []protocol.Op{put("b", `1`)}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued Apply with expired context: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	a := mustApply(t, s, "q", []protocol.Op{put("c", `1`)}, nil)
	if a.Commit.Version != 2 {
		t.Fatalf("next commit has version %d, want 2: the withdrawn commit was applied", a.Commit.Version)
	}
	if _, err := s.Get(context.Background(), "q", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("withdrawn commit's record: %v", err)
	}

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := s.Apply(done, "q", []protocol.Op{put("d", `1`)}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with cancelled context: %v", err)
	}
	if _, err := s.Head(done, "q"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Head with cancelled context: %v", err)
	}
}
