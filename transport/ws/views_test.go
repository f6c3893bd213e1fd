package ws_test

import (
	"encoding/json"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

// TestViewsBySub: one connection holds two filtered views of one
// collection, each known by its sub id, which every message of it
// carries: the reset, the commits restricted to its rows (with after),
// and the error answering a bad filter.
func TestViewsBySub(t *testing.T) {
	e := newEnv(t, nil)
	e.put("orders", "a1", `{"owner":"a"}`)
	e.put("orders", "b1", `{"owner":"b"}`)
	c := e.dial()
	for _, v := range []struct{ sub, owner string }{{"va", "a"}, {"vb", "b"}} {
		c.send(&protocol.SubscribeMessage{Collection: "orders", Sub: v.sub, Where: json.RawMessage(`{"owner":"` + v.owner + `"}`)})
		r := c.expect(protocol.TypeReset)
		if r.Sub != v.sub || len(r.Records) != 1 || r.Records[0].ID != v.owner+"1" {
			t.Fatalf("reset of %s: sub %q, records %v", v.sub, r.Sub, r.Records)
		}
	}
	moved := e.put("orders", "a1", `{"owner":"b"}`) // from va to vb
	got := map[string]protocol.ServerMessage{}
	for range 2 {
		m := c.expect(protocol.TypeCommit)
		got[m.Sub] = m
	}
	if m := got["va"]; m.Version != moved || len(m.Ops) != 1 || m.Ops[0].Op != protocol.OpDelete || m.After == nil || *m.After != 2 {
		t.Errorf("va's commit: %+v, want a1 deleted at %d after 2", m, moved)
	}
	if m := got["vb"]; m.Version != moved || len(m.Ops) != 1 || m.Ops[0].Op != protocol.OpPut || m.After == nil || *m.After != 2 {
		t.Errorf("vb's commit: %+v, want a1 put at %d after 2", m, moved)
	}
	c.send(&protocol.SubscribeMessage{Collection: "orders", Sub: "bad", Where: json.RawMessage(`{"owner":{"$regex":"x"}}`)})
	if m := c.expect(protocol.TypeError); m.Sub != "bad" || m.Code != protocol.CodeBadRequest {
		t.Errorf("bad filter answered %+v, want bad_request about sub bad", m)
	}
	c.send(&protocol.UnsubscribeMessage{Collection: "orders", Sub: "va"})
	e.put("orders", "b2", `{"owner":"b"}`)
	if m := c.expect(protocol.TypeCommit); m.Sub != "vb" {
		t.Errorf("after va left, a commit for sub %q", m.Sub)
	}
}
