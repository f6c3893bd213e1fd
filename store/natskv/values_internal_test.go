package natskv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// recValue is the value the record tests write: the version of its commit
// and padding, so that a read value tells which write it came from.
func recValue(v uint64, pad int) []byte {
	return fmt.Appendf(nil, `{"v":%d,"pad":"%s"}`, v, bytes.Repeat([]byte("x"), pad))
}

// versionIn returns the version a recValue carries.
func versionIn(t *testing.T, b []byte) uint64 {
	t.Helper()
	var x struct{ V uint64 }
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatalf("value %.40q: %v", b, err)
	}
	return x.V
}

// TestRecordCache: an open collection keeps the values of the records
// written last only, up to Options.RecordCache bytes, and with
// Options.RecordIndex the ids and versions of as many records only, in
// the committer's store and in a follower's, and reads the others from
// the stream. Through random puts, deletes and preconditions, Get,
// Snapshot and CatchUp (from the middle, and from 0) answer every record
// as written and every deletion, the committer checks preconditions and
// deletes against records it no longer holds, and tells what its commits
// replaced (Applied.Prev).
func TestRecordCache(t *testing.T) {
	const (
		cache   = 2 << 10
		ids     = 120
		commits = 400
	)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"values", Options{IdleAfter: -1, RecordCache: cache}},
		{"index", Options{IdleAfter: -1, RecordCache: cache, RecordIndex: 16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s, other := openPair(t, tc.opts)
			const name = "records"
			rng := rand.New(rand.NewPCG(3, 4))
			model := map[string]protocol.Record{}
			deletedAt := map[string]uint64{}
			v := uint64(0)
			for range commits {
				id := fmt.Sprint("r", rng.IntN(ids))
				op := protocol.Op{Op: protocol.OpPut, ID: id, Value: recValue(v+1, 100)}
				old, existed := model[id]
				var ifs map[string]uint64
				switch rng.IntN(6) {
				case 0:
					op = protocol.Op{Op: protocol.OpDelete, ID: id}
				case 1:
					ifs = map[string]uint64{id: old.Version}
				case 2:
					// A precondition that fails: nothing changes.
					ifs = map[string]uint64{id: old.Version + 1}
					_, err := s.Apply(ctx, name, []protocol.Op{op}, ifs)
					var pe *store.PreconditionError
					if !errors.As(err, &pe) || pe.Have != old.Version {
						t.Fatalf("precondition %v on %s at %d: %v", ifs, id, old.Version, err)
					}
					continue
				}
				a, err := s.Apply(ctx, name, []protocol.Op{op}, ifs)
				if op.Op == protocol.OpDelete && !existed {
					if !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("delete of %s, which does not exist: %v", id, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				v++
				if a.Commit.Version != v || !bytes.Equal(a.Prev[0], old.Value) {
					t.Fatalf("commit %d: version %d, Applied.Prev %.40q, want %.40q", v, a.Commit.Version, a.Prev[0], old.Value)
				}
				if op.Op == protocol.OpDelete {
					delete(model, id)
					deletedAt[id] = v
				} else {
					model[id] = protocol.Record{ID: id, Value: op.Value, Version: v}
					delete(deletedAt, id)
				}
			}
			for _, st := range []*Store{s, other} {
				c := openAt(t, st, name, v)
				c.mu.RLock()
				kept, indexed, floor := c.st.ValueBytes(), len(c.st.Snapshot().Records), c.st.IndexFloor()
				c.mu.RUnlock()
				if kept > cache {
					t.Fatalf("the state holds %d bytes of values, more than its %d", kept, cache)
				}
				if tc.opts.RecordIndex > 0 && (indexed > tc.opts.RecordIndex || floor == 0) {
					t.Fatalf("the state holds %d records (floor %d), bound %d", indexed, floor, tc.opts.RecordIndex)
				}
				reads := st.RecordReads()
				snap, err := st.Snapshot(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if len(snap.Records) != len(model) || snap.Version != v {
					t.Fatalf("snapshot of %d records at %d, want %d at %d", len(snap.Records), snap.Version, len(model), v)
				}
				for i, r := range snap.Records {
					if want := model[r.ID]; r.Version != want.Version || !bytes.Equal(r.Value, want.Value) {
						t.Fatalf("snapshot has %s at %d %.30q, want %d %.30q", r.ID, r.Version, r.Value, want.Version, want.Value)
					}
					if i > 0 && snap.Records[i-1].ID >= r.ID {
						t.Fatalf("snapshot not sorted by id: %s before %s", snap.Records[i-1].ID, r.ID)
					}
				}
				for i := range ids {
					id := fmt.Sprint("r", i)
					want, ok := model[id]
					r, err := st.Get(ctx, name, id)
					switch {
					case !ok && !errors.Is(err, store.ErrNotFound):
						t.Fatalf("Get(%s), deleted or never written: %+v, %v", id, r, err)
					case ok && (err != nil || r.Version != want.Version || !bytes.Equal(r.Value, want.Value)):
						t.Fatalf("Get(%s) = %d %.30q, %v; want %d %.30q", id, r.Version, r.Value, err, want.Version, want.Value)
					}
				}
				if st.RecordReads() == reads {
					t.Fatal("nothing read from the stream")
				}
				if tc.opts.RecordIndex > 0 && st.scanReads.Load() == 0 {
					t.Fatal("no record scanned from the stream")
				}
				for _, after := range []uint64{0, v / 2, v - 3} {
					cu, err := st.CatchUp(ctx, name, after)
					if err != nil {
						t.Fatal(err)
					}
					n := 0
					for _, r := range cu.Records {
						if want := model[r.ID]; r.Version != want.Version || r.Version <= after || !bytes.Equal(r.Value, want.Value) {
							t.Fatalf("catch-up from %d has %s at %d %.30q, want %d %.30q", after, r.ID, r.Version, r.Value, want.Version, want.Value)
						}
						n++
					}
					for _, r := range model {
						if r.Version > after {
							n--
						}
					}
					if n != 0 {
						t.Fatalf("catch-up from %d: %d records more than the model's", after, n)
					}
					gone := map[string]bool{}
					for _, id := range cu.Deleted {
						gone[id] = true
					}
					for id, d := range deletedAt {
						if d > after && !gone[id] {
							t.Fatalf("catch-up from %d misses the deletion of %s at %d", after, id, d)
						}
					}
					for id := range gone {
						if _, ok := model[id]; ok {
							t.Fatalf("catch-up from %d deletes %s, which exists", after, id)
						}
					}
				}
			}
		})
	}
}

// TestRecordCacheRewritten: reads of values the state shed stay
// consistent (every record's value is the one its version wrote, in a
// snapshot read at one version) while another process keeps rewriting the
// records, so that the stream is often past the reader's state.
func TestRecordCacheRewritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"values", Options{IdleAfter: -1, RecordCache: 512}},
		{"index", Options{IdleAfter: -1, RecordCache: 512, RecordIndex: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) { testRecordCacheRewritten(t, tc.opts) })
	}
}

func testRecordCacheRewritten(t *testing.T, opts Options) {
	ctx := t.Context()
	const ids = 40
	s, other := openPair(t, opts)
	const name = "rewritten"
	var ops []protocol.Op
	for i := range ids {
		ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprint("r", i), Value: recValue(1, 50)})
	}
	if _, err := other.Apply(ctx, name, ops, nil); err != nil {
		t.Fatal(err)
	}
	openAt(t, s, name, 1)

	// wrote maps each commit's version to the number its value carries.
	var mu sync.Mutex
	wrote := map[uint64]uint64{1: 1}
	record := func(a store.Applied, n uint64) {
		mu.Lock()
		wrote[a.Commit.Version] = n
		mu.Unlock()
	}
	type seen struct{ version, n uint64 }
	var seens []seen
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := uint64(2); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			op := protocol.Op{Op: protocol.OpPut, ID: fmt.Sprint("r", n%ids), Value: recValue(n, 50)}
			a, err := other.Apply(ctx, name, []protocol.Op{op}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			record(a, n)
		}
	})
	for range 30 {
		snap, err := s.Snapshot(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Records) != ids {
			t.Fatalf("snapshot of %d records, want %d", len(snap.Records), ids)
		}
		for _, r := range snap.Records {
			if r.Version > snap.Version {
				t.Fatalf("snapshot at %d holds %s at version %d", snap.Version, r.ID, r.Version)
			}
			seens = append(seens, seen{r.Version, versionIn(t, r.Value)})
		}
		r, err := s.Get(ctx, name, "r0")
		if err != nil {
			t.Fatal(err)
		}
		seens = append(seens, seen{r.Version, versionIn(t, r.Value)})
		// The committer reads the values it replaces too.
		a, err := s.Apply(ctx, name, []protocol.Op{{Op: protocol.OpPut, ID: "r1", Value: recValue(0, 1)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		record(a, 0)
		if a.Prev[0] == nil {
			t.Fatal("Applied.Prev of a record that exists is nil")
		}
	}
	close(stop)
	wg.Wait()
	for _, x := range seens {
		if n, ok := wrote[x.version]; !ok || n != x.n {
			t.Fatalf("a record at version %d read with the value of write %d; that version wrote %d", x.version, x.n, n)
		}
	}
	if s.RecordReads() == 0 {
		t.Fatal("no value read from the stream")
	}
	if opts.RecordIndex > 0 && s.scanReads.Load() == 0 {
		t.Fatal("no record scanned from the stream")
	}
}

// TestRecordCacheStale: a read of values the state shed, by a state the
// stream has moved past (here: it missed the messages that rewrote them),
// catches up and answers the records as they are now; so does the
// committer, for the values its commit replaces.
func TestRecordCacheStale(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // fail, not hang
	defer cancel()
	s, other := openPair(t, Options{Layout: LayoutShared, IdleAfter: -1, RecordCache: 1, Timeout: time.Second, AttemptTimeout: 200 * time.Millisecond})
	const name = "stale"
	var ops []protocol.Op
	for i := range 10 {
		ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprint("r", i), Value: recValue(1, 10)})
	}
	if _, err := other.Apply(ctx, name, ops, nil); err != nil {
		t.Fatal(err)
	}
	c := openAt(t, s, name, 1)

	// missed rewrites a record while s's state does not follow.
	missed := func(id string, n uint64) {
		t.Helper()
		unfollowed(t, s, c, name, func() {
			if _, err := other.Apply(ctx, name, []protocol.Op{{Op: protocol.OpPut, ID: id, Value: recValue(n, 10)}}, nil); err != nil {
				t.Fatal(err)
			}
		})
	}

	missed("r0", 2)
	snap, err := s.Snapshot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 2 || len(snap.Records) != 10 {
		t.Fatalf("snapshot at version %d with %d records; want 2, 10", snap.Version, len(snap.Records))
	}
	for _, r := range snap.Records {
		if n := versionIn(t, r.Value); n != r.Version {
			t.Fatalf("snapshot has %s at version %d with the value of %d", r.ID, r.Version, n)
		}
	}

	missed("r1", 3)
	a, err := s.Apply(ctx, name, []protocol.Op{{Op: protocol.OpPut, ID: "r1", Value: recValue(4, 10)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Commit.Version != 4 || versionIn(t, a.Prev[0]) != 3 {
		t.Fatalf("commit %d replaced %.30q; want commit 4 replacing the value of version 3", a.Commit.Version, a.Prev[0])
	}
}

// TestSnapshotShared: callers asking for a snapshot while one is being
// read at their state get a copy of it, each their own: a crowd reads
// the shed values from the stream once, not once each.
func TestSnapshotShared(t *testing.T) {
	ctx := t.Context()
	s, _ := openPair(t, Options{IdleAfter: -1, RecordCache: 1})
	const name = "crowd"
	for v := range 4 {
		var ops []protocol.Op
		for i := range 500 {
			ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprintf("r%04d", v*500+i), Value: recValue(1, 20)})
		}
		if _, err := s.Apply(ctx, name, ops, nil); err != nil {
			t.Fatal(err)
		}
	}
	openAt(t, s, name, 4)
	reads := s.RecordReads()
	const callers = 20
	snaps := make([]protocol.Snapshot, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			sn, err := s.Snapshot(ctx, name)
			if err != nil {
				t.Error(err)
			}
			snaps[i] = sn
		})
	}
	wg.Wait()
	n := s.RecordReads() - reads
	t.Logf("%d snapshots read %d values from the stream", callers, n)
	if n >= callers*2000 {
		t.Fatalf("%d snapshots read %d values: each its own", callers, n)
	}
	for i, sn := range snaps {
		if len(sn.Records) != 2000 || string(sn.Records[0].Value) != string(recValue(1, 20)) {
			t.Fatalf("snapshot %d: %d records", i, len(sn.Records))
		}
	}
	// Each caller owns its copy.
	snaps[0].Records[0].Value[0] = 'X'
	for i := 1; i < callers; i++ {
		if snaps[i].Records[0].Value[0] == 'X' {
			t.Fatalf("snapshot %d shares its values with snapshot 0", i)
		}
	}
}
