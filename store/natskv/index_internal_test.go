package natskv

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestOverlay: a scan of the records at one version, laid under a later
// state, gives the records of that state: those written since replace the
// scanned ones, those deleted since are left out (and listed as deleted
// when asked for), tombstones the scan read are listed; and a state that
// shed records written since the scan asks for another scan.
func TestOverlay(t *testing.T) {
	st := newState("e")
	put := func(v uint64, ids ...string) {
		var ops []protocol.Op
		for _, id := range ids {
			ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: id, Value: []byte(`"v"`)})
		}
		st.Apply(protocol.Commit{Version: v, At: time.Unix(int64(v), 0), Ops: ops}, v)
	}
	del := func(v uint64, id string) {
		st.Apply(protocol.Commit{Version: v, At: time.Unix(int64(v), 0), Ops: []protocol.Op{{Op: protocol.OpDelete, ID: id}}}, v)
	}
	// The scan, at version 4: a, b, c written, d deleted (its tombstone).
	put(1, "a", "b", "c", "d")
	put(2, "b")
	del(3, "d")
	put(4, "c")
	recs := map[string]scanned{
		"a": {version: 1, value: []byte(`"a1"`)},
		"b": {version: 2, value: []byte(`"b2"`)},
		"c": {version: 4, value: []byte(`"c4"`)},
		"d": {version: 3, deleted: true},
	}
	// Since: b written again, c deleted, e written.
	put(5, "b")
	del(6, "c")
	put(7, "e")

	for _, tc := range []struct {
		tombstones  bool
		wantDeleted []string
	}{{false, nil}, {true, []string{"c", "d"}}} {
		records, deleted, err := overlay(st, 4, recs, tc.tombstones)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		for _, r := range records {
			got[r.ID] = r.Version
		}
		want := map[string]uint64{"a": 1, "b": 5, "e": 7}
		if len(got) != len(want) || got["a"] != 1 || got["b"] != 5 || got["e"] != 7 {
			t.Fatalf("tombstones %t: records %v, want %v", tc.tombstones, got, want)
		}
		slices.Sort(deleted)
		if !slices.Equal(deleted, tc.wantDeleted) {
			t.Fatalf("tombstones %t: deleted %v, want %v", tc.tombstones, deleted, tc.wantDeleted)
		}
	}

	// The state shed records written after the scan: scan again.
	st.ShedRecords(1, 5)
	if st.IndexFloor() <= 4 {
		t.Fatalf("index floor %d, want past the scan's 4", st.IndexFloor())
	}
	if _, _, err := overlay(st, 4, recs, false); !errors.Is(err, errRescan) {
		t.Fatalf("overlay past the floor: %v, want errRescan", err)
	}
}
