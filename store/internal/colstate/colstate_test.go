package colstate

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestIndexesStayBounded: rewriting and deleting the same few records many
// times keeps the version index and the tombstone list near the number of
// live records and tombstones, the log at what is retained, and catch-ups
// right across compactions.
func TestIndexesStayBounded(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New("e")
	for i := range 5000 {
		id := fmt.Sprintf("r%d", i%5)
		ops := []protocol.Op{{Op: protocol.OpPut, ID: id, Value: json.RawMessage(fmt.Sprint(i))}}
		if i%3 == 0 {
			ops = append(ops, protocol.Op{Op: protocol.OpDelete, ID: id})
		}
		s.Apply(protocol.Commit{Version: s.Version + 1, At: now, Ops: ops}, 0)
		s.TrimLog(10, 1)
		s.RaiseHorizon(s.ExpiredHorizon(now, time.Hour), nil)
	}
	if written, tombs, log := len(s.recs.written), len(s.tombs), s.log.Len(); written > 2*compactMin+5 || tombs > 2*compactMin+5 || log > 10 {
		t.Fatalf("index %d, tombstones %d, log %d entries for 5 ids and a log of 10", written, tombs, log)
	}
	cu, err := s.CatchUp(4990)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]bool)
	for _, r := range cu.Records {
		got[r.ID] = true
	}
	for _, r := range s.Snapshot().Records {
		if r.Version > 4990 && !got[r.ID] {
			t.Fatalf("catch-up misses %q at %d", r.ID, r.Version)
		}
	}
}
