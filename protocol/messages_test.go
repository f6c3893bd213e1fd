package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestEncodeReset(t *testing.T) {
	snap := &protocol.Snapshot{Collection: "c", Epoch: "E", Version: 3, Reset: true,
		Records: []protocol.Record{{ID: "a", Value: json.RawMessage(`{"x":"y"}`), Version: 2}}}
	b, err := protocol.EncodeReset(snap, "")
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
	if _, err := protocol.EncodeReset(&protocol.Snapshot{Epoch: "E"}, ""); err == nil {
		t.Error("EncodeReset without a collection succeeded")
	}
}

func TestEncodeCatchUp(t *testing.T) {
	cu := &protocol.CatchUp{Collection: "c", Epoch: "E", Version: 9, Compacted: true,
		Records: []protocol.Record{{ID: "a", Value: json.RawMessage(`1`), Version: 8}}, Deleted: []string{"b"}}
	b, err := protocol.EncodeCatchUp(cu, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"catchup","collection":"c","epoch":"E","version":9,"compacted":true,"records":[{"id":"a","value":1,"version":8}],"deleted":["b"]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if _, err := protocol.EncodeCatchUp(&protocol.CatchUp{Epoch: "E"}, ""); err == nil {
		t.Error("EncodeCatchUp without a collection succeeded")
	}
}

func TestEncodeResult(t *testing.T) {
	tests := []struct {
		id       protocol.MessageID
		result   json.RawMessage
		versions map[string]uint64
		want     string
	}{
		{protocol.StringID("1"), json.RawMessage(`{"version":4}`), map[string]uint64{"c": 4},
			`{"type":"result","id":"1","result":{"version":4},"versions":{"c":4}}`},
		{protocol.StringID("2"), nil, nil, `{"type":"result","id":"2","result":null,"versions":{}}`},
		{protocol.StringID(`q"<`), json.RawMessage(`[1, 2]`), map[string]uint64{"b": 1, "a": 2},
			`{"type":"result","id":"q\"\u003c","result":[1,2],"versions":{"a":2,"b":1}}`},
		// Ids read from a client are echoed as sent.
		{protocol.IntID(1), nil, nil, `{"type":"result","id":1,"result":null,"versions":{}}`},
		{rawID(`-1.50e+3`), nil, nil, `{"type":"result","id":-1.50e+3,"result":null,"versions":{}}`},
		{rawID(`"<\u00e9>"`), nil, nil, `{"type":"result","id":"<\u00e9>","result":null,"versions":{}}`},
		{protocol.MessageID{}, nil, nil, `{"type":"result","result":null,"versions":{}}`},
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
	if _, err := protocol.EncodeResult(protocol.StringID("1"), json.RawMessage(`{`), nil); err == nil {
		t.Error("EncodeResult with a broken result succeeded")
	}
}

func TestEncodeError(t *testing.T) {
	for _, tt := range []struct {
		id   protocol.MessageID
		want string
	}{
		{protocol.MessageID{}, `{"type":"error","code":"bad_request","message":"bad"}`},
		{protocol.IntID(7), `{"type":"error","id":7,"code":"bad_request","message":"bad"}`},
		{rawID(`"<\/>"`), `{"type":"error","id":"<\/>","code":"bad_request","message":"bad"}`},
	} {
		if got := string(protocol.EncodeError(tt.id, "", protocol.CodeBadRequest, "bad")); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
	b := protocol.EncodeError(protocol.StringID("k"), "", protocol.CodePreconditionFailed, "record \"a\" is at version 2")
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != protocol.TypeError || m.ID != protocol.StringID("k") || m.Code != protocol.CodePreconditionFailed || m.Message != `record "a" is at version 2` {
		t.Errorf("decoded %+v", m)
	}
}
