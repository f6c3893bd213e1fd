package protocol_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/protocol"
)

// TestMain fails the run if a test of the package leaves a goroutine
// behind.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

func u64(v uint64) *uint64 { return &v }

// validClientMessages are well-formed client messages and what they decode to.
var validClientMessages = []struct {
	in   string
	want protocol.ClientMessage
}{
	{`{"type":"subscribe","collection":"products"}`, &protocol.SubscribeMessage{Collection: "products"}},
	{`{"type":"subscribe","collection":"p","after":0}`, &protocol.SubscribeMessage{Collection: "p", After: u64(0)}},
	{`{"collection":"p","after":18446744073709551615,"epoch":"E-1_x","type":"subscribe"}`,
		&protocol.SubscribeMessage{Collection: "p", After: u64(18446744073709551615), Epoch: "E-1_x"}},
	{`{"type":"subscribe","collection":"p","after":7,"epoch":""}`, &protocol.SubscribeMessage{Collection: "p", After: u64(7)}},
	{" \t\r\n{ \"type\" : \"unsubscribe\" , \"collection\" : \"a.b-c_d\" } \n", &protocol.UnsubscribeMessage{Collection: "a.b-c_d"}},
	{`{"typ\u0065":"unsubscribe","collection":"c"}`, &protocol.UnsubscribeMessage{Collection: "c"}},
	{`{"type":"call","id":"1","name":"add.Item-2","arg":{"x":[1,2,{"y":null}]}}`,
		&protocol.CallMessage{ID: protocol.StringID("1"), Name: "add.Item-2", Arg: json.RawMessage(`{"x":[1,2,{"y":null}]}`)}},
	{`{"type":"call","id":"` + strings.Repeat("é", 32) + `","name":"n","arg":null}`,
		&protocol.CallMessage{ID: protocol.StringID(strings.Repeat("é", 32)), Name: "n", Arg: json.RawMessage(`null`)}},
	{`{"type":"commit","id":"c-1","collection":"c","ops":[]}`, &protocol.CommitMessage{ID: protocol.StringID("c-1"), Collection: "c", Ops: []protocol.Op{}}},
	{`{"type":"commit","id":"c-1","collection":"c","ops":[{"op":"put","id":"a","value":{"n":1}},{"id":"b","op":"delete"}],"if":{"a":3,"b":0}}`,
		&protocol.CommitMessage{ID: protocol.StringID("c-1"), Collection: "c",
			Ops: []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`{"n":1}`)}, {Op: protocol.OpDelete, ID: "b"}},
			If:  map[string]uint64{"a": 3, "b": 0}}},
	// Ops are checked for shape only: the hub judges kinds and values.
	{`{"type":"commit","id":"x","collection":"c","ops":[{"op":"frobnicate","id":"","value":null}],"if":{}}`,
		&protocol.CommitMessage{ID: protocol.StringID("x"), Collection: "c",
			Ops: []protocol.Op{{Op: "frobnicate", ID: "", Value: json.RawMessage(`null`)}}, If: map[string]uint64{}}},
	{`{"type":"ack","collection":"c","version":42}`, &protocol.AckMessage{Collection: "c", Version: 42}},
	// Ids are strings or numbers, kept as the JSON text sent.
	{`{"type":"call","id":1,"name":"n","arg":null}`, &protocol.CallMessage{ID: protocol.IntID(1), Name: "n", Arg: json.RawMessage(`null`)}},
	{`{"type":"call","id":-0,"name":"n","arg":null}`, &protocol.CallMessage{ID: rawID(`-0`), Name: "n", Arg: json.RawMessage(`null`)}},
	{`{"type":"commit","id":1.50e+3,"collection":"c","ops":[]}`, &protocol.CommitMessage{ID: rawID(`1.50e+3`), Collection: "c", Ops: []protocol.Op{}}},
	{`{"type":"commit","id":` + strings.Repeat("9", protocol.MaxNumberIDLen) + `,"collection":"c","ops":[]}`,
		&protocol.CommitMessage{ID: rawID(strings.Repeat("9", protocol.MaxNumberIDLen)), Collection: "c", Ops: []protocol.Op{}}},
	{`{"type":"call","id":"` + strings.Repeat("x", protocol.MaxStringIDLen) + `","name":"n","arg":null}`,
		&protocol.CallMessage{ID: protocol.StringID(strings.Repeat("x", protocol.MaxStringIDLen)), Name: "n", Arg: json.RawMessage(`null`)}},
	{`{"type":"call","id":"\u0041\"\/é","name":"n","arg":null}`, &protocol.CallMessage{ID: rawID(`"\u0041\"\/é"`), Name: "n", Arg: json.RawMessage(`null`)}},
	{`{"type":"call","id":"` + strings.Repeat(`\n`, protocol.MaxStringIDLen) + `","name":"n","arg":null}`,
		&protocol.CallMessage{ID: rawID(`"` + strings.Repeat(`\n`, protocol.MaxStringIDLen) + `"`), Name: "n", Arg: json.RawMessage(`null`)}},
}

// rawID returns the id whose JSON text is raw.
func rawID(raw string) protocol.MessageID {
	var id protocol.MessageID
	if err := json.Unmarshal([]byte(raw), &id); err != nil {
		panic(err)
	}
	return id
}

func TestDecodeClientMessage(t *testing.T) {
	for _, tt := range validClientMessages {
		t.Run(tt.in, func(t *testing.T) {
			got, err := protocol.DecodeClientMessage([]byte(tt.in))
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			if got.Type() != tt.want.Type() {
				t.Fatalf("Type %q, want %q", got.Type(), tt.want.Type())
			}
			// What it encodes to decodes to the same message.
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := protocol.DecodeClientMessage(b)
			if err != nil {
				t.Fatalf("re-decoding %s: %v", b, err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip through %s: got %#v, want %#v", b, again, got)
			}
		})
	}
}

func TestSubscribeCursor(t *testing.T) {
	if c := (&protocol.SubscribeMessage{Collection: "c"}).Cursor(); c != nil {
		t.Errorf("Cursor without after = %v, want nil", c)
	}
	c := (&protocol.SubscribeMessage{Collection: "c", After: u64(5), Epoch: "E"}).Cursor()
	if c == nil || *c != (protocol.Cursor{Epoch: "E", Version: 5}) {
		t.Errorf("Cursor = %v, want E:5", c)
	}
}

// badClientMessages are refused; id is the id the error must carry.
var badClientMessages = []struct {
	name, in, id string
	also         error // another sentinel the error must wrap
}{
	{name: "empty", in: ``},
	{name: "space", in: `  `},
	{name: "null", in: `null`},
	{name: "array", in: `[{"type":"ack","collection":"c","version":1}]`},
	{name: "string", in: `"subscribe"`},
	{name: "number", in: `1`},
	{name: "malformed", in: `{"type":"subscribe","collection":"c"`},
	{name: "single quotes", in: `{'type':'subscribe','collection':'c'}`},
	{name: "trailing object", in: `{"type":"unsubscribe","collection":"c"}{}`},
	{name: "trailing garbage", in: `{"type":"unsubscribe","collection":"c"} x`},
	{name: "bom", in: "\ufeff{\"type\":\"unsubscribe\",\"collection\":\"c\"}"},
	{name: "invalid utf-8", in: "{\"type\":\"unsubscribe\",\"collection\":\"c\xff\"}"},
	{name: "invalid utf-8 in arg", in: "{\"type\":\"call\",\"id\":\"1\",\"name\":\"n\",\"arg\":\"\xc3\"}"},
	{name: "empty object", in: `{}`},
	{name: "missing type", in: `{"collection":"c"}`},
	{name: "type null", in: `{"type":null,"collection":"c"}`},
	{name: "type number", in: `{"type":1,"collection":"c"}`},
	{name: "unknown type", in: `{"type":"publish","collection":"c"}`},
	{name: "server type", in: `{"type":"reset","collection":"c"}`},
	{name: "type case", in: `{"type":"Subscribe","collection":"c"}`},
	{name: "key case", in: `{"Type":"subscribe","collection":"c"}`},
	{name: "collection key case", in: `{"type":"subscribe","Collection":"c"}`},
	{name: "duplicate key", in: `{"type":"subscribe","collection":"c","collection":"d"}`},
	{name: "duplicate type", in: `{"type":"ack","type":"subscribe","collection":"c"}`},
	{name: "unknown field", in: `{"type":"subscribe","collection":"c","aftr":1}`},
	{name: "field of another type", in: `{"type":"unsubscribe","collection":"c","after":1}`},
	{name: "missing collection", in: `{"type":"subscribe"}`},
	{name: "collection null", in: `{"type":"subscribe","collection":null}`},
	{name: "collection number", in: `{"type":"subscribe","collection":1}`},
	{name: "empty collection", in: `{"type":"subscribe","collection":""}`, also: protocol.ErrBadName},
	{name: "bad collection", in: `{"type":"subscribe","collection":"Products"}`, also: protocol.ErrBadName},
	{name: "long collection", in: `{"type":"unsubscribe","collection":"` + strings.Repeat("a", 65) + `"}`, also: protocol.ErrBadName},
	{name: "after negative", in: `{"type":"subscribe","collection":"c","after":-1}`},
	{name: "after fraction", in: `{"type":"subscribe","collection":"c","after":1.5}`},
	{name: "after point zero", in: `{"type":"subscribe","collection":"c","after":1.0}`},
	{name: "after exponent", in: `{"type":"subscribe","collection":"c","after":1e3}`},
	{name: "after string", in: `{"type":"subscribe","collection":"c","after":"1"}`},
	{name: "after null", in: `{"type":"subscribe","collection":"c","after":null}`},
	{name: "after overflow", in: `{"type":"subscribe","collection":"c","after":18446744073709551616}`},
	{name: "epoch without after", in: `{"type":"subscribe","collection":"c","epoch":"E"}`},
	{name: "bad epoch", in: `{"type":"subscribe","collection":"c","after":1,"epoch":"E:1"}`, also: protocol.ErrBadCursor},
	{name: "epoch number", in: `{"type":"subscribe","collection":"c","after":1,"epoch":1}`},
	{name: "call missing id", in: `{"type":"call","name":"n","arg":1}`},
	{name: "call empty id", in: `{"type":"call","id":"","name":"n","arg":1}`},
	{name: "call long id", in: `{"type":"call","id":"` + strings.Repeat("x", protocol.MaxStringIDLen+1) + `","name":"n","arg":1}`},
	{name: "call long id in bytes", in: `{"type":"call","id":"` + strings.Repeat("é", protocol.MaxStringIDLen/2+1) + `","name":"n","arg":1}`},
	{name: "call long escaped id", in: `{"type":"call","id":"` + strings.Repeat(`\u0041`, protocol.MaxStringIDLen+1) + `","name":"n","arg":1}`},
	{name: "call long number id", in: `{"type":"call","id":1` + strings.Repeat("0", protocol.MaxNumberIDLen) + `,"name":"n","arg":1}`},
	{name: "call null id", in: `{"type":"call","id":null,"name":"n","arg":1}`},
	{name: "call boolean id", in: `{"type":"call","id":true,"name":"n","arg":1}`},
	{name: "call object id", in: `{"type":"call","id":{"n":1},"name":"n","arg":1}`},
	{name: "call array id", in: `{"type":"call","id":[1],"name":"n","arg":1}`},
	{name: "commit null id", in: `{"type":"commit","id":null,"collection":"c","ops":[]}`},
	{name: "commit number id, bad collection", in: `{"type":"commit","id":7,"collection":"-c","ops":[]}`, id: `7`, also: protocol.ErrBadName},
	{name: "commit fraction id, missing ops", in: `{"type":"commit","id":-0.5,"collection":"c"}`, id: `-0.5`},
	{name: "call escaped id, missing name", in: `{"type":"call","id":"\u00e9\/","arg":1}`, id: `"\u00e9\/"`},
	{name: "ack with number id", in: `{"type":"ack","id":3,"collection":"c"}`, id: `3`},
	{name: "call missing name", in: `{"type":"call","id":"q","arg":1}`, id: `"q"`},
	{name: "call bad name", in: `{"type":"call","id":"q","name":"no spaces","arg":1}`, id: `"q"`, also: protocol.ErrBadCallName},
	{name: "call missing arg", in: `{"type":"call","id":"q","name":"n"}`, id: `"q"`},
	{name: "call unknown field", in: `{"type":"call","id":"q","name":"n","arg":1,"context":2}`, id: `"q"`},
	{name: "commit missing id", in: `{"type":"commit","collection":"c","ops":[]}`},
	{name: "commit missing ops", in: `{"type":"commit","id":"k","collection":"c"}`, id: `"k"`},
	{name: "commit ops null", in: `{"type":"commit","id":"k","collection":"c","ops":null}`, id: `"k"`},
	{name: "commit ops object", in: `{"type":"commit","id":"k","collection":"c","ops":{"op":"put","id":"a","value":1}}`, id: `"k"`},
	{name: "commit op not object", in: `{"type":"commit","id":"k","collection":"c","ops":["put"]}`, id: `"k"`},
	{name: "commit op unknown field", in: `{"type":"commit","id":"k","collection":"c","ops":[{"op":"put","id":"a","value":1,"x":2}]}`, id: `"k"`},
	{name: "commit op duplicate field", in: `{"type":"commit","id":"k","collection":"c","ops":[{"op":"put","id":"a","id":"b","value":1}]}`, id: `"k"`},
	{name: "commit op missing op", in: `{"type":"commit","id":"k","collection":"c","ops":[{"id":"a","value":1}]}`, id: `"k"`},
	{name: "commit op missing id", in: `{"type":"commit","id":"k","collection":"c","ops":[{"op":"put","value":1}]}`, id: `"k"`},
	{name: "commit op id number", in: `{"type":"commit","id":"k","collection":"c","ops":[{"op":"put","id":1,"value":1}]}`, id: `"k"`},
	{name: "commit op kind null", in: `{"type":"commit","id":"k","collection":"c","ops":[{"op":null,"id":"a"}]}`, id: `"k"`},
	{name: "commit if array", in: `{"type":"commit","id":"k","collection":"c","ops":[],"if":[]}`, id: `"k"`},
	{name: "commit if null", in: `{"type":"commit","id":"k","collection":"c","ops":[],"if":null}`, id: `"k"`},
	{name: "commit if negative", in: `{"type":"commit","id":"k","collection":"c","ops":[],"if":{"a":-1}}`, id: `"k"`},
	{name: "commit if string", in: `{"type":"commit","id":"k","collection":"c","ops":[],"if":{"a":"1"}}`, id: `"k"`},
	{name: "commit if duplicate", in: `{"type":"commit","id":"k","collection":"c","ops":[],"if":{"a":1,"a":2}}`, id: `"k"`},
	{name: "commit bad collection", in: `{"type":"commit","id":"k","collection":"-c","ops":[]}`, id: `"k"`, also: protocol.ErrBadName},
	{name: "ack missing version", in: `{"type":"ack","collection":"c"}`},
	{name: "ack version string", in: `{"type":"ack","collection":"c","version":"3"}`},
	{name: "ack with id", in: `{"type":"ack","id":"z","collection":"c","version":3}`, id: `"z"`},
	{name: "unknown type with id", in: `{"type":"nope","id":"z"}`, id: `"z"`},
	{name: "too many fields", in: `{"type":"ack","collection":"c","version":1` + manyFields(70) + `}`},
}

// manyFields returns ,"f0":0,"f1":1,… with n fields.
func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"f%d":%d`, i, i)
	}
	return b.String()
}

// TestManyPreconditions: the preconditions of a commit are bounded by the
// message size alone, not by the bound on a message's fields.
func TestManyPreconditions(t *testing.T) {
	m, err := protocol.DecodeClientMessage([]byte(`{"type":"commit","id":"1","collection":"c","ops":[],"if":{"a":0` + manyFields(3000) + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ifs := m.(*protocol.CommitMessage).If; len(ifs) != 3001 || ifs["f2999"] != 2999 {
		t.Fatalf("decoded %d preconditions", len(ifs))
	}
	_, err = protocol.DecodeClientMessage([]byte(`{"type":"commit","id":"1","collection":"c","ops":[],"if":{"a":0` + manyFields(3000) + `,"f17":1}}`))
	if err == nil || !strings.Contains(err.Error(), `duplicate field "f17"`) {
		t.Fatalf("duplicate precondition: error %v", err)
	}
}

func TestDecodeClientMessageErrors(t *testing.T) {
	for _, tt := range badClientMessages {
		t.Run(tt.name, func(t *testing.T) {
			m, err := protocol.DecodeClientMessage([]byte(tt.in))
			if err == nil {
				t.Fatalf("decoded %s to %#v, want an error", tt.in, m)
			}
			checkDecodeError(t, []byte(tt.in), err)
			var me *protocol.MessageError
			errors.As(err, &me)
			if me.ID.String() != tt.id {
				t.Errorf("error id %s, want %s (error: %v)", me.ID, tt.id, err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("error %v does not wrap %v", err, tt.also)
			}
		})
	}
}

// checkDecodeError checks what every decoding error must be.
func checkDecodeError(t *testing.T, in []byte, err error) {
	t.Helper()
	var me *protocol.MessageError
	if !errors.As(err, &me) {
		t.Fatalf("DecodeClientMessage(%q) error %v (%T) is not a *MessageError", in, err, err)
	}
	if !errors.Is(err, protocol.ErrBadMessage) {
		t.Fatalf("DecodeClientMessage(%q) error %v does not wrap ErrBadMessage", in, err)
	}
	if code := viewsync.ErrorCode(err); code != protocol.CodeBadRequest {
		t.Fatalf("ErrorCode(%v) = %q, want bad_request", err, code)
	}
	if !me.ID.IsZero() && (!bytes.Contains(in, []byte(me.ID.String())) || checkID(me.ID) != nil) {
		t.Fatalf("DecodeClientMessage(%q) error carries id %s it cannot have read", in, me.ID)
	}
	if msg := err.Error(); msg == "" || !utf8.ValidString(msg) {
		t.Fatalf("error message %q is empty or not UTF-8", msg)
	}
}

func TestDecodeServerMessage(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC)
	b := []byte(`{"type":"commit","collection":"c","epoch":"E","version":5,"at":"2025-01-02T03:04:05.006Z","ops":[{"op":"delete","id":"a"}],"future":1}`)
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != protocol.TypeCommit || m.Version != 5 || !m.At.Equal(at) || len(m.Ops) != 1 || m.Ops[0].Op != protocol.OpDelete {
		t.Errorf("decoded %+v", m)
	}
	for _, in := range []string{`{"type":"subscribe","collection":"c"}`, `{}`, `[`, `null`} {
		if _, err := protocol.DecodeServerMessage([]byte(in)); !errors.Is(err, protocol.ErrBadMessage) {
			t.Errorf("DecodeServerMessage(%s) error %v, want ErrBadMessage", in, err)
		}
	}
}

// FuzzDecodeClientMessage checks that the decoder never panics, that every
// refusal is a bad_request *MessageError, that every message it accepts
// is valid and encodes to text that decodes to the same message, and that
// the id of a call or commit is a string or number within the bounds that
// results and errors echo byte for byte.
func FuzzDecodeClientMessage(f *testing.F) {
	for _, tt := range validClientMessages {
		f.Add([]byte(tt.in))
	}
	for _, tt := range badClientMessages {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		m, err := protocol.DecodeClientMessage(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("DecodeClientMessage modified its input")
		}
		if err != nil {
			if m != nil {
				t.Fatalf("DecodeClientMessage(%q) returned %#v with error %v", in, m, err)
			}
			checkDecodeError(t, in, err)
			return
		}
		if !utf8.Valid(in) || !json.Valid(in) {
			t.Fatalf("DecodeClientMessage accepted %q, which is not UTF-8 JSON", in)
		}
		if err := refValue(in, protocol.MaxValueDepth+3); err != nil {
			t.Fatalf("DecodeClientMessage accepted %q, which breaks a value rule: %v", in, err)
		}
		checkValid(t, in, m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("encoding %#v: %v", m, err)
		}
		again, err := protocol.DecodeClientMessage(b)
		if err != nil {
			t.Fatalf("%q decoded to %#v, whose encoding %s does not decode: %v", in, m, b, err)
		}
		b2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("%q: encoding is not stable: %s then %s", in, b, b2)
		}
	})
}

// checkValid checks the guarantees of a decoded message.
func checkValid(t *testing.T, in []byte, m protocol.ClientMessage) {
	t.Helper()
	validID := func(id protocol.MessageID) {
		if err := checkID(id); err != nil {
			t.Fatalf("%q: accepted id %s: %v", in, id, err)
		}
		if !bytes.Contains(in, []byte(id.String())) {
			t.Fatalf("%q: id %s is not as sent", in, id)
		}
		// The answers echo the id byte for byte.
		res, err := protocol.EncodeResult(id, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{res, protocol.EncodeError(id, "", protocol.CodeBadRequest, "x")} {
			if !bytes.Contains(b, []byte(`,"id":`+id.String()+`,`)) {
				t.Fatalf("%q: id %s answered as %s", in, id, b)
			}
			if sm, err := protocol.DecodeServerMessage(b); err != nil || sm.ID != id {
				t.Fatalf("%q: answer %s decodes to id %s, %v; want %s", in, b, sm.ID, err, id)
			}
		}
	}
	validColl := func(c string) {
		if err := protocol.ValidateCollection(c); err != nil {
			t.Fatalf("%q: accepted collection: %v", in, err)
		}
	}
	switch m := m.(type) {
	case *protocol.SubscribeMessage:
		validColl(m.Collection)
		if err := protocol.ValidateEpoch(m.Epoch); err != nil {
			t.Fatalf("%q: accepted epoch: %v", in, err)
		}
		if m.Epoch != "" && m.After == nil {
			t.Fatalf("%q: accepted an epoch without after", in)
		}
	case *protocol.UnsubscribeMessage:
		validColl(m.Collection)
	case *protocol.CallMessage:
		validID(m.ID)
		if err := protocol.ValidateCallName(m.Name); err != nil {
			t.Fatalf("%q: accepted call name: %v", in, err)
		}
		if !json.Valid(m.Arg) {
			t.Fatalf("%q: arg %q is not JSON", in, m.Arg)
		}
	case *protocol.CommitMessage:
		validID(m.ID)
		validColl(m.Collection)
		if m.Ops == nil {
			t.Fatalf("%q: accepted a commit without ops", in)
		}
		for _, op := range m.Ops {
			if len(op.Value) > 0 && !json.Valid(op.Value) {
				t.Fatalf("%q: op value %q is not JSON", in, op.Value)
			}
		}
	case *protocol.AckMessage:
		validColl(m.Collection)
	default:
		t.Fatalf("%q decoded to unknown message %T", in, m)
	}
}

// checkID is the rules of a message id read plainly: a JSON string of
// 1–MaxStringIDLen bytes once decoded, or a JSON number of at most
// MaxNumberIDLen bytes of text.
func checkID(id protocol.MessageID) error {
	raw := id.String()
	if strings.TrimSpace(raw) != raw {
		return errors.New("space around the id")
	}
	d := json.NewDecoder(strings.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return err
	}
	switch v := v.(type) {
	case string:
		if v == "" || len(v) > protocol.MaxStringIDLen {
			return fmt.Errorf("a string of %d bytes", len(v))
		}
	case json.Number:
		if len(raw) > protocol.MaxNumberIDLen {
			return fmt.Errorf("a number of %d bytes", len(raw))
		}
	default:
		return fmt.Errorf("a %T", v)
	}
	return nil
}

// TestMessageID: ids made in Go, read from JSON and refused.
func TestMessageID(t *testing.T) {
	for _, tt := range []struct {
		id   protocol.MessageID
		want string
	}{
		{protocol.StringID("a"), `"a"`},
		{protocol.StringID(`q"<`), `"q\"\u003c"`},
		{protocol.IntID(-42), `-42`},
		{rawID(`"\u0061"`), `"\u0061"`},
		{rawID(`1.0E+2`), `1.0E+2`},
		{rawID(`null`), ``},
		{protocol.MessageID{}, ``},
	} {
		if got := tt.id.String(); got != tt.want {
			t.Errorf("id %s, want %s", got, tt.want)
		}
		if tt.id.IsZero() != (tt.want == "") {
			t.Errorf("id %s: IsZero %v", tt.id, tt.id.IsZero())
		}
		b, err := json.Marshal(tt.id)
		if want := cmp.Or(tt.want, "null"); err != nil || string(b) != want {
			t.Errorf("id %s marshals to %s, %v; want %s", tt.id, b, err, want)
		}
	}
	if rawID(`"a"`) != protocol.StringID("a") || rawID(`7`) != protocol.IntID(7) || rawID(`7.0`) == protocol.IntID(7) {
		t.Error("ids compare by their JSON text")
	}
	for _, in := range []string{`""`, `true`, `{}`, `[]`, `"` + strings.Repeat("x", protocol.MaxStringIDLen+1) + `"`,
		`1` + strings.Repeat("0", protocol.MaxNumberIDLen), `"\ud800"`, `1e400`} {
		var id protocol.MessageID
		if err := json.Unmarshal([]byte(in), &id); err == nil || !errors.Is(err, protocol.ErrBadMessage) {
			t.Errorf("id %s read as %s, %v; want ErrBadMessage", in, id, err)
		}
	}
}
