package colstate

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestShedRecords: ShedRecords keeps in memory the index entries of the
// records written most recently, at most its bound, through puts,
// overwrites, deletes, value shedding and the index's compactions. Lookup
// knows every record of a version above IndexFloor and every deletion,
// and is right whenever it says it knows; CatchUp from IndexFloor on is
// whole, and below it fails with ErrIndexShed; Snapshot holds every record
// above IndexFloor, and none below. A state restored from Records a load
// filled, batch by batch in id order and shedding as it went, passes the
// same checks, except that it may hold records below its IndexFloor: its
// load shed some of a batch's records before older ones.
func TestShedRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := New("e")
	model := map[string]protocol.Record{}
	deletedAt := map[string]uint64{} // the ids deleted, not written since
	var history []protocol.Commit
	const keep, ids, valueCache = 50, 300, 200
	check := func(s *State, at string, inOrder bool) {
		t.Helper()
		if s.recs.Len() > keep {
			t.Fatalf("%s: %d records indexed, bound %d", at, s.recs.Len(), keep)
		}
		held := 0
		for _, r := range s.Snapshot().Records {
			held += len(r.Value)
		}
		if held != s.ValueBytes() || held > valueCache {
			t.Fatalf("%s: ValueBytes %d, values held %d, bound %d", at, s.ValueBytes(), held, valueCache)
		}
		floor := s.IndexFloor()
		for i := range ids {
			id := fmt.Sprint("r", i)
			want, exists := model[id]
			v, ok, known := s.Lookup(id)
			switch {
			case known && (ok != exists || v != want.Version):
				t.Fatalf("%s: Lookup(%s) = %d, %v; want %d, %v", at, id, v, ok, want.Version, exists)
			case !known && exists && want.Version > floor:
				t.Fatalf("%s: Lookup(%s) does not know version %d, above the floor %d", at, id, want.Version, floor)
			case !known && deletedAt[id] != 0:
				t.Fatalf("%s: Lookup(%s) does not know its deletion at %d", at, id, deletedAt[id])
			}
		}
		// The snapshot: every record above the floor, and some of those
		// at it (of a commit shed in part), or below it too if shed out
		// of order.
		snap := s.Snapshot()
		var above []string
		for _, r := range snap.Records {
			if want, ok := model[r.ID]; !ok || want.Version != r.Version || (inOrder && r.Version < floor) {
				t.Fatalf("%s: snapshot holds %s at %d; the model has it at %d (floor %d)", at, r.ID, r.Version, want.Version, floor)
			}
			if r.Version > floor {
				above = append(above, r.ID)
			}
		}
		var want []string
		for id, r := range model {
			if r.Version > floor {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		if !slices.Equal(above, want) {
			t.Fatalf("%s: snapshot of %v above %d, want %v", at, above, floor, want)
		}
		if floor > 0 {
			if _, err := s.CatchUp(floor - 1); !errors.Is(err, ErrIndexShed) {
				t.Fatalf("%s: CatchUp below the floor: %v, want ErrIndexShed", at, err)
			}
		}
		for after := floor; after <= s.Version; after += 1 + uint64(rng.IntN(20)) {
			cu, err := s.CatchUp(after)
			if err != nil {
				t.Fatalf("%s: CatchUp(%d): %v", at, after, err)
			}
			n := 0
			for _, r := range cu.Records {
				if want := model[r.ID]; want.Version != r.Version || r.Version <= after {
					t.Fatalf("%s: CatchUp(%d) gives %s at %d; the model has it at %d", at, after, r.ID, r.Version, want.Version)
				}
				n++
			}
			for _, r := range model {
				if r.Version > after {
					n--
				}
			}
			if n != 0 {
				t.Fatalf("%s: CatchUp(%d) misses %d records", at, after, -n)
			}
			for _, id := range cu.Deleted {
				if d := deletedAt[id]; d <= after {
					t.Fatalf("%s: CatchUp(%d) deletes %s, deleted at %d", at, after, id, d)
				}
			}
			for id, d := range deletedAt {
				if d > after && !slices.Contains(cu.Deleted, id) {
					t.Fatalf("%s: CatchUp(%d) misses the deletion of %s at %d", at, after, id, d)
				}
			}
		}
	}
	for v := uint64(1); v <= 4000; v++ {
		var ops []protocol.Op
		touched := map[string]bool{}
		for range 1 + rng.IntN(4) {
			id := fmt.Sprint("r", rng.IntN(ids))
			if touched[id] {
				continue // one op an id, so that the model's deletions are the commits'
			}
			touched[id] = true
			if _, ok := model[id]; ok && rng.IntN(3) == 0 {
				ops = append(ops, protocol.Op{Op: protocol.OpDelete, ID: id})
				delete(model, id)
				deletedAt[id] = v
				continue
			}
			val := fmt.Appendf(nil, `"%d"`, v)
			ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: id, Value: val})
			model[id] = protocol.Record{ID: id, Value: val, Version: v}
			delete(deletedAt, id)
		}
		c := protocol.Commit{Version: v, At: time.Unix(int64(v), 0), Ops: ops}
		history = append(history, c.Clone())
		s.Apply(c, v)
		s.ShedValues(valueCache)
		s.ShedRecords(keep, math.MaxUint64)
		if v%200 == 0 {
			check(&s, fmt.Sprint("version ", v), true)
		}
		if v%1000 == 0 {
			check(loaded(t, history, valueCache, keep), fmt.Sprint("loaded at version ", v), false)
		}
	}
	if s.IndexFloor() == 0 {
		t.Fatal("nothing was shed")
	}

	// Bounded by a version, it sheds none of the records written after
	// it, however many.
	pin := s.Version
	for v := pin + 1; v <= pin+200; v++ {
		s.Apply(protocol.Commit{Version: v, At: time.Unix(int64(v), 0), Ops: []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprint("n", v), Value: []byte("1")}}}, v)
		s.ShedRecords(keep, pin)
		if s.IndexFloor() > pin {
			t.Fatalf("at %d: the floor rose to %d, past %d", v, s.IndexFloor(), pin)
		}
	}
	if n := s.recs.Len(); n < 200 {
		t.Fatalf("%d records indexed, want the 200 written after the bound", n)
	}
	s.ShedRecords(keep, math.MaxUint64)
	if n := s.recs.Len(); n != keep {
		t.Fatalf("unbounded again: %d records indexed, want %d", n, keep)
	}
}

// loaded returns the state a store's load restores from history: it reads
// the commits' record writes in batches of one to four commits, each
// batch's last write of each record in id order (as natskv writes them,
// so not in version order), shedding values beyond valueCache bytes and
// records beyond keep as it reads.
func loaded(t *testing.T, history []protocol.Commit, valueCache, keep int) *State {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var recs Records
	tombs := map[string]Tomb{}
	for len(history) > 0 {
		batch := history[:min(len(history), 1+rng.IntN(4))]
		history = history[len(batch):]
		type write struct {
			version uint64
			op      protocol.Op
		}
		last := map[string]write{}
		for _, c := range batch {
			for _, op := range c.Ops {
				last[op.ID] = write{c.Version, op}
			}
		}
		for _, id := range slices.Sorted(maps.Keys(last)) {
			w := last[id]
			if w.op.Op == protocol.OpDelete {
				recs.Delete(id)
				tombs[id] = Tomb{Version: w.version, ID: id, At: time.Unix(int64(w.version), 0)}
				continue
			}
			delete(tombs, id)
			recs.Put(id, w.version, slices.Clone(w.op.Value))
			recs.ShedValues(valueCache)
			recs.ShedRecords(keep, math.MaxUint64)
		}
		if len(history) == 0 {
			var log Log
			log.Append(LogEntry{Commit: batch[len(batch)-1]})
			s := New("e")
			if err := s.Restore(log, &recs, tombs); err != nil {
				t.Fatal(err)
			}
			if recs.Len() != 0 {
				t.Fatal("Restore left the records it took in the Records")
			}
			return &s
		}
	}
	t.Fatal("no history")
	return nil
}
