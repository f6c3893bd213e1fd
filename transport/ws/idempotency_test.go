package ws_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// TestIdempotencyKey: a commit or call message with an idempotencyKey is
// applied (run) once; sent again, its answer comes back the same, marked
// "replayed":true; another request under the key is refused with
// idempotency_key_reused, a bad key with bad_idempotency_key.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, &config{hub: []viewsync.Option{viewsync.WithIdempotency(viewsync.IdempotencyOptions{MaxKeyBytes: 8})}})
	var runs atomic.Int64
	e.hub.HandleCall("count", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return runs.Add(1), nil
	})
	c := e.dial()
	commit := func(id, key, value string) {
		c.send(&protocol.CommitMessage{ID: protocol.StringID(id), Collection: "c", Ops: []protocol.Op{put("a", value)}, IdempotencyKey: key})
	}
	commit("1", "k", `1`)
	first := c.expectResult("1")
	if first.Replayed || string(first.Result) != `{"version":1}` || first.Versions["c"] != 1 {
		t.Fatalf("first: %+v", first)
	}
	for _, id := range []string{"2", "3"} {
		commit(id, "k", `1`)
		r := c.expectResult(id)
		if !r.Replayed || string(r.Result) != `{"version":1}` || r.Versions["c"] != 1 {
			t.Fatalf("retry %s: replayed %v result %s versions %v", id, r.Replayed, r.Result, r.Versions)
		}
	}
	commit("4", "k", `2`)
	c.expectError("4", protocol.CodeIdempotencyKeyReused)
	commit("5", "toolong12", `2`)
	c.expectError("5", protocol.CodeBadIdempotencyKey)
	commit("6", "caf\u00e9", `2`)
	c.expectError("6", protocol.CodeBadIdempotencyKey)
	// No key (or an empty one): applied each time.
	commit("7", "", `1`)
	if r := c.expectResult("7"); r.Replayed || r.Versions["c"] != 2 {
		t.Fatalf("without a key: %+v", r)
	}
	// A failed precondition is remembered, marked replayed the second time.
	for i, id := range []string{"8", "9"} {
		c.send(&protocol.CommitMessage{ID: protocol.StringID(id), Collection: "c", Ops: []protocol.Op{put("a", `3`)}, If: map[string]uint64{"a": 1}, IdempotencyKey: "p"})
		if m := c.expectError(id, protocol.CodePreconditionFailed); m.Replayed != (i == 1) {
			t.Fatalf("precondition failure %s: replayed %v", id, m.Replayed)
		}
	}
	// Calls.
	for i, id := range []string{"c1", "c2"} {
		c.send(&protocol.CallMessage{ID: protocol.StringID(id), Name: "count", Arg: json.RawMessage(`{ "x" : 1 }`), IdempotencyKey: "call"})
		r := c.expectResult(id)
		if string(r.Result) != "1" || r.Replayed != (i == 1) || r.Versions == nil {
			t.Fatalf("call %s: %s replayed %v versions %v", id, r.Result, r.Replayed, r.Versions)
		}
	}
	// The key of a commit sent over a new connection replays too: keys
	// belong to the principal, not the connection.
	c2 := e.dial()
	c2.sendText(`{"type":"commit","id":"x","collection":"c","ops":[{"op":"put","id":"a","value":1}],"idempotencyKey":"k"}`)
	if r := c2.expectResult("x"); !r.Replayed || r.Versions["c"] != 1 {
		t.Fatalf("over another connection: %+v", r)
	}
	c2.sendText(`{"type":"commit","id":"y","collection":"c","ops":[{"op":"put","id":"a","value":1}],"idempotencyKey":7}`)
	if m := c2.expectError("y", protocol.CodeBadRequest); !strings.Contains(m.Message, "idempotencyKey") {
		t.Errorf("a key that is not a string: %q", m.Message)
	}
	if h, _ := e.collection("c").Head(context.Background()); h.Version != 2 || runs.Load() != 1 {
		t.Errorf("version %d, %d runs; want 2, 1", h.Version, runs.Load())
	}
}
