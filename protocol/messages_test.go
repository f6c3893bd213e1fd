package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestEncodeReset(t *testing.T) {
	snap := &protocol.Snapshot{Collection: "c", Epoch: "E", Version: 3, Reset: true,
		Records: []protocol.Record{{ID: "a", Value: json.RawMessage(`{"x":"y"}`), Version: 2}}}
	b, err := protocol.EncodeReset(snap)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"reset","collection":"c","epoch":"E","version":3,"reset":true,"records":[{"id":"a","value":{"x":"y"},"version":2}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != protocol.TypeReset || m.Collection != "c" || m.Epoch != "E" || m.Version != 3 || !m.Reset || len(m.Records) != 1 {
		t.Fatalf("decoded %+v", m)
	}
	if _, err := protocol.EncodeReset(&protocol.Snapshot{Epoch: "E"}); err == nil {
		t.Error("EncodeReset without a collection succeeded")
	}
}

func TestEncodeCatchUp(t *testing.T) {
	cu := &protocol.CatchUp{Collection: "c", Epoch: "E", Version: 9, Compacted: true,
		Records: []protocol.Record{{ID: "a", Value: json.RawMessage(`1`), Version: 8}}, Deleted: []string{"b"}}
	b, err := protocol.EncodeCatchUp(cu)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"catchup","collection":"c","epoch":"E","version":9,"compacted":true,"records":[{"id":"a","value":1,"version":8}],"deleted":["b"]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if _, err := protocol.EncodeCatchUp(&protocol.CatchUp{Epoch: "E"}); err == nil {
		t.Error("EncodeCatchUp without a collection succeeded")
	}
}

func TestEncodeResult(t *testing.T) {
	tests := []struct {
		id       string
		result   json.RawMessage
		versions map[string]uint64
		want     string
	}{
		{"1", json.RawMessage(`{"version":4}`), map[string]uint64{"c": 4},
			`{"type":"result","id":"1","result":{"version":4},"versions":{"c":4}}`},
		{"2", nil, nil, `{"type":"result","id":"2","result":null,"versions":{}}`},
		{`q"<`, json.RawMessage(`[1, 2]`), map[string]uint64{"b": 1, "a": 2},
			`{"type":"result","id":"q\"\u003c","result":[1,2],"versions":{"a":2,"b":1}}`},
	}
	for _, tt := range tests {
		b, err := protocol.EncodeResult(tt.id, tt.result, tt.versions)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("got  %s\nwant %s", b, tt.want)
		}
	}
	if _, err := protocol.EncodeResult("1", json.RawMessage(`{`), nil); err == nil {
		t.Error("EncodeResult with a broken result succeeded")
	}
}

func TestEncodeError(t *testing.T) {
	if got, want := string(protocol.EncodeError("", protocol.CodeBadRequest, "bad")), `{"type":"error","code":"bad_request","message":"bad"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	b := protocol.EncodeError("k", protocol.CodePreconditionFailed, "record \"a\" is at version 2")
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != protocol.TypeError || m.ID != "k" || m.Code != protocol.CodePreconditionFailed || m.Message != `record "a" is at version 2` {
		t.Errorf("decoded %+v", m)
	}
}
