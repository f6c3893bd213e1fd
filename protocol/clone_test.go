package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestClone: a clone is equal to its original and shares no memory with
// it: scribbling on one leaves the other as it was.
func TestClone(t *testing.T) {
	c := Commit{Version: 3, At: time.Unix(5, 0), Ops: []Op{
		{Op: OpPut, ID: "a", Value: json.RawMessage(`{"n":1}`)},
		{Op: OpDelete, ID: "b"},
	}}
	cc := c.Clone()
	if !reflect.DeepEqual(cc, c) {
		t.Fatalf("clone %+v, want %+v", cc, c)
	}
	cc.Ops[0].Value[2] = 'X'
	cc.Ops[1].ID = "z"
	if string(c.Ops[0].Value) != `{"n":1}` || c.Ops[1].ID != "b" {
		t.Fatalf("the original changed with its clone: %+v", c)
	}
	if cc.Ops[1].Value != nil {
		t.Fatalf("a delete's nil value became %q", cc.Ops[1].Value)
	}

	r := Record{ID: "a", Value: json.RawMessage(`[1]`), Version: 2}
	rc := r.Clone()
	if !reflect.DeepEqual(rc, r) {
		t.Fatalf("clone %+v, want %+v", rc, r)
	}
	rc.Value[1] = '9'
	if string(r.Value) != `[1]` {
		t.Fatalf("the original changed with its clone: %+v", r)
	}
}
