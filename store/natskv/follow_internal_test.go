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
	c, err := decodeCommit(protocol.AppendCommit(nil, want))
	if err != nil {
		t.Fatalf("decodeCommit: %v", err)
	}
	if c.Version != want.Version || !c.At.Equal(want.At) || len(c.Ops) != 2 || string(c.Ops[0].Value) != deep || c.Ops[1].ID != "b" {
		t.Fatalf("decodeCommit = %+v", c)
	}
	if _, err := decodeCommit([]byte(`{"version":1,`)); err == nil {
		t.Fatal("decodeCommit accepted a truncated entry")
	}
}
