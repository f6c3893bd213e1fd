package colstate

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestShedValues: ShedValues keeps in memory the values of the records
// written most recently, within its bound, through puts, overwrites,
// deletes, the index's compactions and a Restore; the reads return the
// shed ones with a nil Value and the others whole, and each record's
// version is kept either way.
func TestShedValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := New("e")
	model := map[string]protocol.Record{} // every record, whole
	const keep = 2000
	check := func(at string) {
		t.Helper()
		sum, written := 0, []protocol.Record{}
		for id, want := range model {
			got, ok := s.Get(id)
			if !ok || got.Version != want.Version {
				t.Fatalf("%s: Get(%s) = %+v, %v; want version %d", at, id, got, ok, want.Version)
			}
			if got.Value != nil {
				if string(got.Value) != string(want.Value) {
					t.Fatalf("%s: Get(%s) value %s, want %s", at, id, got.Value, want.Value)
				}
				sum += len(got.Value)
			}
			written = append(written, got)
		}
		if sum != s.ValueBytes() {
			t.Fatalf("%s: ValueBytes %d, the values in memory weigh %d", at, s.ValueBytes(), sum)
		}
		if sum > keep {
			t.Fatalf("%s: %d bytes of values in memory, bound %d", at, sum, keep)
		}
		// The values kept are those of the records written last.
		slices.SortFunc(written, func(a, b protocol.Record) int {
			return cmp.Or(cmp.Compare(b.Version, a.Version), cmp.Compare(b.ID, a.ID))
		})
		for i := 1; i < len(written); i++ {
			if written[i].Value != nil && written[i-1].Value == nil {
				t.Fatalf("%s: record %s (version %d) kept, %s (version %d) shed", at, written[i].ID, written[i].Version, written[i-1].ID, written[i-1].Version)
			}
		}
		snap := s.Snapshot()
		if len(snap.Records) != len(model) {
			t.Fatalf("%s: snapshot of %d records, want %d", at, len(snap.Records), len(model))
		}
		cu, err := s.CatchUp(0)
		if err != nil || len(cu.Records) != len(model) {
			t.Fatalf("%s: CatchUp(0) = %d records, %v", at, len(cu.Records), err)
		}
	}
	for v := uint64(1); v <= 3000; v++ {
		var ops []protocol.Op
		for range 1 + rng.IntN(3) {
			id := fmt.Sprint("r", rng.IntN(200))
			if _, ok := model[id]; ok && rng.IntN(4) == 0 {
				ops = append(ops, protocol.Op{Op: protocol.OpDelete, ID: id})
				delete(model, id)
				continue
			}
			val := fmt.Appendf(nil, `"%d-%s"`, v, make([]byte, rng.IntN(40)))
			ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: id, Value: val})
			model[id] = protocol.Record{ID: id, Value: val, Version: v}
		}
		s.Apply(protocol.Commit{Version: v, At: time.Unix(int64(v), 0), Ops: ops}, v)
		s.ShedValues(keep)
		if v%250 == 0 {
			check(fmt.Sprint("version ", v))
		}
	}

	// Restored with every value, then shed again.
	var recs Records
	for _, id := range slices.Sorted(maps.Keys(model)) {
		r := model[id]
		recs.Put(id, r.Version, slices.Clone(r.Value))
	}
	var log Log
	log.Append(LogEntry{Commit: protocol.Commit{Version: s.Version, Ops: []protocol.Op{}}})
	r := New("e")
	if err := r.Restore(log, &recs, nil); err != nil {
		t.Fatal(err)
	}
	s = r
	s.ShedValues(keep)
	check("restored")
}
