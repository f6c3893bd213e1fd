package natskv

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestDecodeDeepCommit: a log entry holding a value as deep as
// encoding/json accepts a value alone, which the store took before the
// value rules, is read back: encoding/json alone cannot read it.
func TestDecodeDeepCommit(t *testing.T) {
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	want := protocol.Commit{Version: 3, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Ops: []protocol.Op{
		{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(deep)},
		{Op: protocol.OpDelete, ID: "b"},
	}}
	c, prev, err := decodeCommit(protocol.AppendLogEntry(nil, want.Version, want.At, protocol.AppendOps(nil, want.Ops), []json.RawMessage{nil, json.RawMessage(deep)}))
	if err != nil {
		t.Fatalf("decodeCommit: %v", err)
	}
	if c.Version != want.Version || !c.At.Equal(want.At) || len(c.Ops) != 2 || string(c.Ops[0].Value) != deep || c.Ops[1].ID != "b" {
		t.Fatalf("decodeCommit = %+v", c)
	}
	if len(prev) != 2 || prev[0] != nil || string(prev[1]) != deep {
		t.Fatalf("decodeCommit read prev %.40q", prev)
	}
	// An entry written without the values its ops replaced.
	if c, prev, err := decodeCommit(protocol.AppendCommit(nil, want)); err != nil || len(c.Ops) != 2 || prev != nil {
		t.Fatalf("decodeCommit of an entry without prev = %+v, %.40q, %v", c, prev, err)
	}
	if _, _, err := decodeCommit([]byte(`{"version":1,`)); err == nil {
		t.Fatal("decodeCommit accepted a truncated entry")
	}
}
