package ws_test

import (
	"context"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

// TestCommitValueRules: a WebSocket commit whose ids, keys or values break
// the value rules is refused with bad_request and the message's id, and
// changes nothing; an id that cannot be decoded as sent is not echoed.
func TestCommitValueRules(t *testing.T) {
	e := newEnv(t, nil)
	e.put("c", "a", `1`)
	c := e.dial()
	deep := strings.Repeat("[", 33) + strings.Repeat("]", 33)
	for _, tt := range []struct {
		name, msg, id, says string
	}{
		{"lone surrogate in an id", `{"type":"commit","id":"v1","collection":"c","ops":[{"op":"put","id":"\ud800","value":1}]}`, "v1", "lone UTF-16 surrogate"},
		{"lone surrogate in an if key", `{"type":"commit","id":"v2","collection":"c","ops":[{"op":"put","id":"b","value":1}],"if":{"\udc00":0}}`, "v2", "lone UTF-16 surrogate"},
		{"lone surrogate in a value", `{"type":"commit","id":"v3","collection":"c","ops":[{"op":"put","id":"b","value":{"s":"\ud83dx"}}]}`, "v3", "lone UTF-16 surrogate"},
		{"duplicate key in a value", `{"type":"commit","id":"v4","collection":"c","ops":[{"op":"put","id":"b","value":{"k":1,"k":2}}]}`, "v4", `duplicate field "k"`},
		{"number out of range", `{"type":"commit","id":"v5","collection":"c","ops":[{"op":"put","id":"b","value":[1e400]}]}`, "v5", "out of the range of float64"},
		{"value too deep", `{"type":"commit","id":"v6","collection":"c","ops":[{"op":"put","id":"b","value":` + deep + `}]}`, "v6", "more than 32 levels"},
		{"value far too deep", `{"type":"commit","id":"v7","collection":"c","ops":[{"op":"put","id":"b","value":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}]}`, "v7", "nested too deep"},
		{"lone surrogate in the message id", `{"type":"commit","id":"\ud800","collection":"c","ops":[{"op":"put","id":"b","value":1}]}`, "", "lone UTF-16 surrogate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, err := e.collection("c").Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c.sendText(tt.msg)
			m := c.expectError(tt.id, protocol.CodeBadRequest)
			if !strings.Contains(m.Message, tt.says) {
				t.Errorf("error message %q does not say %q", m.Message, tt.says)
			}
			after, err := e.collection("c").Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if after.Version != before.Version || len(after.Records) != len(before.Records) {
				t.Fatalf("a refused commit changed the collection: %+v, then %+v", before, after)
			}
		})
	}
	// The connection still serves.
	c.sendText(`{"type":"commit","id":"ok","collection":"c","ops":[{"op":"put","id":"b","value":"\ud83d\ude00"}]}`)
	c.expectResult("ok")
}
