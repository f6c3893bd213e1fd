package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Sizes of the concurrency test: modest, as it runs under the race
// detector against stores that fsync every commit.
const (
	writers          = 8
	commitsPerWriter = 50
	sharedIDs        = 4
	readers          = 2
	sideWriters      = 2
	sideCommits      = 25
	readsKept        = 40
)

// attempt is one Apply a writer made, and its outcome.
type attempt struct {
	writer, seq int
	kind        string
	ops         []protocol.Op
	ifs         map[string]uint64
	applied     store.Applied
	err         error
}

// reads is what one reader saw while the writers ran.
type reads struct {
	snapshots []protocol.Snapshot
	followed  []protocol.Commit // the log, as followed with Changes
	catchUps  []catchUpRead
}

// catchUpRead is one CatchUp a reader made.
type catchUpRead struct {
	after uint64
	cu    protocol.CatchUp
}

func testConcurrentHistory(t *testing.T, f *fixture) {
	seed := randomSeed(t)
	ctx := f.ctx()
	const coll, side = "c", "side"
	epoch := f.head(coll).Epoch

	var wg sync.WaitGroup
	attempts := make([][]attempt, writers)
	for w := range writers {
		wg.Go(func() { attempts[w] = write(ctx, t, f.s, coll, w, seed) })
	}
	for w := range sideWriters {
		wg.Go(func() {
			for i := range sideCommits {
				id := fmt.Sprintf("d%d", (w+i)%3)
				if _, err := f.s.Apply(ctx, side, []protocol.Op{put(id, fmt.Sprint(i))}, nil); err != nil {
					t.Errorf("Apply(%s, put %q): %v", side, id, err)
				}
			}
		})
	}
	done := make(chan struct{})
	var rwg sync.WaitGroup
	seen := make([]reads, readers)
	for r := range readers {
		rwg.Go(func() { seen[r] = read(ctx, t, f.s, coll, epoch, rand.New(rand.NewPCG(seed, uint64(1000+r))), done) })
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	if t.Failed() {
		return
	}

	// Every attempt's outcome is one the rules allow.
	var ok []attempt
	var refused []store.PreconditionError
	for _, as := range attempts {
		for _, a := range as {
			what := fmt.Sprintf("writer %d attempt %d (%s): Apply(%s, if %v)", a.writer, a.seq, a.kind, opsString(a.ops), a.ifs)
			var pe *store.PreconditionError
			switch {
			case a.err == nil:
				if a.applied.Epoch != epoch {
					t.Fatalf("%s: epoch %q, want %q", what, a.applied.Epoch, epoch)
				}
				if d := diffOps(a.applied.Commit.Ops, a.ops); d != "" {
					t.Fatalf("%s: commit %s", what, d)
				}
				if err := checkAt(a.applied.Commit.At, f.cfg); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				ok = append(ok, a)
			case errors.As(a.err, &pe):
				if !errors.Is(a.err, store.ErrPrecondition) {
					t.Fatalf("%s = %v: a *PreconditionError that is not ErrPrecondition", what, a.err)
				}
				want, guarded := a.ifs[pe.ID]
				if !guarded || pe.Want != want || pe.Have == pe.Want {
					t.Fatalf("%s failed precondition %+v, which is not one it set or did not fail", what, *pe)
				}
				refused = append(refused, *pe)
			case errors.Is(a.err, store.ErrNotFound) && a.kind == "blind delete":
			default:
				t.Fatalf("%s = %v, want success, a failed precondition or (blind delete only) ErrNotFound", what, a.err)
			}
		}
	}

	// Versions are unique, gap-free and follow each writer's order.
	byVersion := make(map[uint64]attempt, len(ok))
	for _, a := range ok {
		v := a.applied.Commit.Version
		if prev, dup := byVersion[v]; dup {
			t.Fatalf("version %d acknowledged twice: writer %d attempt %d and writer %d attempt %d",
				v, prev.writer, prev.seq, a.writer, a.seq)
		}
		byVersion[v] = a
	}
	for v := uint64(1); v <= uint64(len(ok)); v++ {
		if _, found := byVersion[v]; !found {
			t.Fatalf("%d commits succeeded but none got version %d", len(ok), v)
		}
	}
	if hd := f.head(coll); hd.Epoch != epoch || hd.Version != uint64(len(ok)) {
		t.Fatalf("Head(%s) = %+v after %d successful commits, want %s:%d", coll, hd, len(ok), epoch, len(ok))
	}
	for _, as := range attempts {
		var last uint64
		for _, a := range as {
			if a.err == nil {
				if a.applied.Commit.Version <= last {
					t.Fatalf("writer %d: attempt %d got version %d after an earlier attempt got %d",
						a.writer, a.seq, a.applied.Commit.Version, last)
				}
				last = a.applied.Commit.Version
			}
		}
	}

	// The log holds exactly the acknowledged commits; replayed in order,
	// every precondition held just before its commit, every delete found
	// its record and the result is the snapshot.
	hist := replayLog(f, coll, epoch)
	for _, c := range hist.commits {
		a := byVersion[c.Version]
		if d := diffCommits([]protocol.Commit{c}, []protocol.Commit{a.applied.Commit}); d != "" {
			t.Fatalf("log commit %d is not what Apply acknowledged: %s", c.Version, d)
		}
		before := hist.states[c.Version-1]
		for id, want := range a.ifs {
			if have := before.version(id); have != want {
				t.Fatalf("commit %d required %q at version %d, but the log has it at %d just before",
					c.Version, id, want, have)
			}
		}
		if d := diffPrev(a.applied.Prev, before.prev(c.Ops)); d != "" {
			t.Fatalf("commit %d: Apply's Prev is not the values the log has just before it: %s", c.Version, d)
		}
	}
	if s := f.snapshot(coll); s.Epoch != epoch || s.Version != hist.head() {
		t.Fatalf("Snapshot(%s) at %s:%d, want %s:%d", coll, s.Epoch, s.Version, epoch, hist.head())
	} else if d := diffRecords(s.Records, hist.state().records()); d != "" {
		t.Fatalf("Snapshot(%s) is not the replayed log: %s", coll, d)
	}

	// A refused precondition names a version the record really had.
	written := make(map[string]map[uint64]bool)
	for _, c := range hist.commits {
		for _, op := range c.Ops {
			if op.Op == protocol.OpPut {
				if written[op.ID] == nil {
					written[op.ID] = make(map[uint64]bool)
				}
				written[op.ID][c.Version] = true
			}
		}
	}
	for _, pe := range refused {
		if pe.Have != 0 && !written[pe.ID][pe.Have] {
			t.Fatalf("failed precondition %+v: no commit wrote %q at version %d", pe, pe.ID, pe.Have)
		}
	}

	// Readers saw whole commits only.
	for r, rd := range seen {
		for _, s := range rd.snapshots {
			if s.Version > hist.head() {
				t.Fatalf("reader %d: snapshot at version %d, beyond the last commit %d", r, s.Version, hist.head())
			}
			if d := diffSnapshot(s, protocol.Snapshot{Epoch: epoch, Version: s.Version, Records: hist.states[s.Version].records()}); d != "" {
				t.Fatalf("reader %d: snapshot at version %d is not the state at that version: %s", r, s.Version, d)
			}
		}
		if len(rd.followed) > len(hist.commits) {
			t.Fatalf("reader %d followed %d commits, more than the %d made", r, len(rd.followed), len(hist.commits))
		}
		if d := diffCommits(rd.followed, hist.commits[:len(rd.followed)]); d != "" {
			t.Fatalf("reader %d: the log as followed with Changes differs from the final log: %s", r, d)
		}
		for _, c := range rd.catchUps {
			if c.cu.Epoch != epoch {
				t.Fatalf("reader %d: CatchUp(after %d) epoch %q, want %q", r, c.after, c.cu.Epoch, epoch)
			}
			if err := checkCatchUp(c.cu, c.after, hist); err != nil {
				t.Fatalf("reader %d: CatchUp(after %d) at %d: %v", r, c.after, c.cu.Version, err)
			}
		}
	}

	// The other collection went its own way.
	sideHist := replayLog(f, side, f.head(side).Epoch)
	if sideHist.head() != sideWriters*sideCommits {
		t.Fatalf("%s has %d commits, want %d", side, sideHist.head(), sideWriters*sideCommits)
	}
	if d := diffRecords(f.snapshot(side).Records, sideHist.state().records()); d != "" {
		t.Fatalf("Snapshot(%s) is not its replayed log: %s", side, d)
	}
}

// write makes one writer's attempts: blind puts of its own records,
// read-modify-write puts and deletes of shared records guarded by the
// version read, and blind deletes of shared records, which may find them
// gone.
func write(ctx context.Context, t *testing.T, s store.Store, coll string, w int, seed uint64) []attempt {
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	out := make([]attempt, 0, commitsPerWriter)
	for i := range commitsPerWriter {
		shared := fmt.Sprintf("s%d", rng.IntN(sharedIDs))
		own := fmt.Sprintf("w%d-%d", w, rng.IntN(3))
		val := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
		a := attempt{writer: w, seq: i}
		switch rng.IntN(4) {
		case 0:
			a.kind, a.ops = "blind put", []protocol.Op{put(own, val)}
		case 1, 2:
			var ver uint64
			r, err := s.Get(ctx, coll, shared)
			switch {
			case err == nil:
				ver = r.Version
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("writer %d: Get(%s, %q): %v", w, coll, shared, err)
				return out
			}
			a.ifs = map[string]uint64{shared: ver}
			if ver != 0 && rng.IntN(3) == 0 {
				a.kind, a.ops = "guarded delete", []protocol.Op{del(shared)}
			} else {
				a.kind, a.ops = "guarded put", []protocol.Op{put(shared, val), put(own, val)}
			}
		default:
			a.kind, a.ops = "blind delete", []protocol.Op{put(own, val), del(shared)}
		}
		a.applied, a.err = s.Apply(ctx, coll, a.ops, a.ifs)
		out = append(out, a)
	}
	return out
}

// read follows the collection until done is closed, then once more: Head
// must never go back, Changes must continue exactly where it left off, and
// it keeps some snapshots and catch-ups for checking later.
func read(ctx context.Context, t *testing.T, s store.Store, coll, epoch string, rng *rand.Rand, done <-chan struct{}) reads {
	var rd reads
	var last protocol.Head
	for {
		stop := false
		select {
		case <-done:
			stop = true
		default:
		}
		hd, err := s.Head(ctx, coll)
		if err != nil {
			t.Errorf("reader: Head: %v", err)
			return rd
		}
		if hd.Epoch != epoch || hd.Version < last.Version {
			t.Errorf("reader: Head = %+v after %+v", hd, last)
			return rd
		}
		last = hd

		snap, err := s.Snapshot(ctx, coll)
		if err != nil {
			t.Errorf("reader: Snapshot: %v", err)
			return rd
		}
		if len(rd.snapshots) < readsKept {
			rd.snapshots = append(rd.snapshots, snap)
		}

		from := uint64(len(rd.followed))
		ch, err := s.Changes(ctx, coll, from, store.Page{Commits: 10})
		if err != nil {
			t.Errorf("reader: Changes(after %d): %v", from, err)
			return rd
		}
		for i, c := range ch.Commits {
			if c.Version != from+uint64(i)+1 || c.Version > ch.Version {
				t.Errorf("reader: Changes(after %d) read at %d has commit %d at position %d", from, ch.Version, c.Version, i)
				return rd
			}
		}
		rd.followed = append(rd.followed, ch.Commits...)

		after := rng.Uint64N(uint64(len(rd.followed)) + 1)
		cu, err := s.CatchUp(ctx, coll, after)
		if err != nil {
			t.Errorf("reader: CatchUp(after %d): %v", after, err)
			return rd
		}
		if len(rd.catchUps) < readsKept {
			rd.catchUps = append(rd.catchUps, catchUpRead{after: after, cu: cu})
		}
		if stop {
			return rd
		}
	}
}

// replayLog reads the whole log of coll, a page at a time, and replays it:
// the commits must run from version 1 to the head without a gap, in epoch,
// and apply cleanly.
func replayLog(f *fixture, coll, epoch string) *history {
	f.t.Helper()
	hist := newHistory()
	for {
		ch := f.changes(coll, hist.head(), store.Page{Commits: 16})
		if ch.Epoch != epoch {
			f.t.Fatalf("Changes(%s, after %d) epoch %q, want %q", coll, hist.head(), ch.Epoch, epoch)
		}
		if len(ch.Commits) == 0 {
			if ch.Version != hist.head() {
				f.t.Fatalf("Changes(%s, after %d) read at %d returned no commits", coll, hist.head(), ch.Version)
			}
			return hist
		}
		for _, c := range ch.Commits {
			if err := hist.add(c); err != nil {
				f.t.Fatalf("replaying %s: %v", coll, err)
			}
		}
	}
}

// testContextDoneInFlight: writers whose contexts expire at random moments,
// before or during their Apply. Whatever the moment, the answer must tell
// the truth: an Apply that returned an error (the context's) left no
// commit, and every commit in the log was acknowledged.
func testContextDoneInFlight(t *testing.T, f *fixture) {
	seed := randomSeed(t)
	const coll, perWriter = "c", 25
	epoch := f.head(coll).Epoch
	type outcome struct {
		version uint64
		err     error
	}
	outcomes := make([][]outcome, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range perWriter {
				d := time.Duration(rng.IntN(3000)) * time.Microsecond
				if rng.IntN(4) == 0 {
					d = 0 // done before the call
				}
				ctx, cancel := context.WithTimeout(f.ctx(), d)
				a, err := f.s.Apply(ctx, coll, []protocol.Op{put(fmt.Sprintf("w%d-%d", w, i), fmt.Sprint(i))}, nil)
				cancel()
				outcomes[w] = append(outcomes[w], outcome{a.Commit.Version, err})
			}
		})
	}
	wg.Wait()

	acked := make(map[string]uint64)
	for w, os := range outcomes {
		for i, o := range os {
			id := fmt.Sprintf("w%d-%d", w, i)
			switch {
			case o.err == nil:
				acked[id] = o.version
			case errors.Is(o.err, context.DeadlineExceeded) || errors.Is(o.err, context.Canceled):
			default:
				t.Fatalf("Apply(put %q) = %v, want success or the context's error", id, o.err)
			}
		}
	}
	hist := replayLog(f, coll, epoch)
	if hist.head() != uint64(len(acked)) {
		t.Fatalf("the log has %d commits, but %d Applies succeeded", hist.head(), len(acked))
	}
	for _, c := range hist.commits {
		id := c.Ops[0].ID
		if v, ok := acked[id]; !ok || v != c.Version {
			t.Fatalf("log commit %d puts %q, but its Apply acknowledged version %d (0: failed)", c.Version, id, v)
		}
	}
}
