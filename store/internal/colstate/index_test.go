package colstate

import (
	"errors"
	"fmt"
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
// above IndexFloor, and none below.
func TestShedRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := New("e")
	model := map[string]protocol.Record{}
	deletedAt := map[string]uint64{} // the ids deleted, not written since
	const keep, ids = 50, 300
	check := func(at string) {
		t.Helper()
		if len(s.versions) > keep {
			t.Fatalf("%s: %d records indexed, bound %d", at, len(s.versions), keep)
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
		// at it (of a commit shed in part).
		snap := s.Snapshot()
		var above []string
		for _, r := range snap.Records {
			if want, ok := model[r.ID]; !ok || want.Version != r.Version || r.Version < floor {
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
		s.Apply(protocol.Commit{Version: v, At: time.Unix(int64(v), 0), Ops: ops}, v)
		s.ShedValues(200)
		s.ShedRecords(keep, math.MaxUint64)
		if v%200 == 0 {
			check(fmt.Sprint("version ", v))
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
	if n := len(s.versions); n < 200 {
		t.Fatalf("%d records indexed, want the 200 written after the bound", n)
	}
	s.ShedRecords(keep, math.MaxUint64)
	if n := len(s.versions); n != keep {
		t.Fatalf("unbounded again: %d records indexed, want %d", n, keep)
	}
}
