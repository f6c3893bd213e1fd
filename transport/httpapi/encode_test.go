package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestAppendChanges: the hand-written page encoding is what encoding/json
// writes (up to the HTML escaping encoding/json applies inside values).
func TestAppendChanges(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	pages := []protocol.Changes{
		{Epoch: "e1", Version: 9, Commits: []protocol.Commit{}},
		{Epoch: "abc-DEF_0", Version: 12, Commits: []protocol.Commit{
			{Version: 11, At: at, Ops: []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`{"n":"<b>&</b>"}`)}}},
			{Version: 12, At: at.Add(time.Millisecond), Ops: []protocol.Op{
				{Op: protocol.OpDelete, ID: `q"uote`},
				{Op: protocol.OpPut, ID: "é✓", Value: json.RawMessage(`[1,null,true]`)},
			}},
		}},
	}
	for _, cs := range pages {
		got := appendChanges(nil, &cs)
		want, err := json.Marshal(cs)
		if err != nil {
			t.Fatal(err)
		}
		var escaped bytes.Buffer
		json.HTMLEscape(&escaped, got)
		if !bytes.Equal(escaped.Bytes(), want) {
			t.Errorf("appendChanges\n got %s\nwant %s", got, want)
		}
		var back protocol.Changes
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s does not decode: %v", got, err)
		}
	}
}
