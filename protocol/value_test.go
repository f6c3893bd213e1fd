package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/viewsync/viewsync/protocol"
)

// nest returns v inside n arrays.
func nest(n int, v string) string {
	return strings.Repeat("[", n) + v + strings.Repeat("]", n)
}

// nestObjects returns v inside n objects, each with one key "k".
func nestObjects(n int, v string) string {
	return strings.Repeat(`{"k":`, n) + v + strings.Repeat("}", n)
}

func TestCheckValue(t *testing.T) {
	manyKeys := func(n int, last string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(`"` + last + `":0}`)
		return b.String()
	}
	tests := []struct {
		name  string
		in    string
		depth int
		size  int
		want  string // the compact value; "" for an error
		err   error  // the error's sentinel
		msg   string // part of the error's message
	}{
		{name: "scalar", in: `1`, want: `1`},
		{name: "compacted", in: ` { "a" : [ 1 , 2 ] } `, want: `{"a":[1,2]}`},
		{name: "same key in sibling objects", in: `[{"a":1},{"a":2}]`, want: `[{"a":1},{"a":2}]`},
		{name: "same key in nested objects", in: `{"a":{"a":{"a":1}}}`, want: `{"a":{"a":{"a":1}}}`},
		{name: "keys differing in case", in: `{"a":1,"A":2}`, want: `{"a":1,"A":2}`},
		{name: "key after a closed object", in: `{"a":{"b":1},"b":2}`, want: `{"a":{"b":1},"b":2}`},
		{name: "many keys", in: manyKeys(40, "x"), want: manyKeys(40, "x")},
		{name: "surrogate pair", in: `"\ud83d\ude00"`, want: `"\ud83d\ude00"`},
		{name: "upper-case surrogate pair", in: `"\uD83D\uDE00"`, want: `"\uD83D\uDE00"`},
		{name: "escaped backslash before u", in: `"\\ud800"`, want: `"\\ud800"`},
		{name: "largest float64", in: `1.7976931348623157e308`, want: `1.7976931348623157e308`},
		{name: "underflow to zero", in: `1e-400`, want: `1e-400`},
		{name: "zero with a huge exponent", in: `0e999999999`, want: `0e999999999`},
		{name: "308 digits", in: strings.Repeat("9", 308), want: strings.Repeat("9", 308)},
		{name: "big integer kept as text", in: `12345678901234567890`, want: `12345678901234567890`},
		{name: "depth at the limit", in: nest(4, "1"), depth: 4, want: nest(4, "1")},
		{name: "objects at the limit", in: nestObjects(4, "{}"), depth: 5, want: nestObjects(4, "{}")},
		{name: "depth at the ceiling", in: nest(protocol.MaxValueDepth, ""), want: nest(protocol.MaxValueDepth, "")},
		{name: "size at the limit", in: ` "abc" `, size: 5, want: `"abc"`},

		{name: "empty", in: ``, err: protocol.ErrBadValue},
		{name: "not JSON", in: `{"a":}`, err: protocol.ErrBadValue, msg: "not valid JSON"},
		{name: "trailing data", in: `1 2`, err: protocol.ErrBadValue, msg: "data after the value"},
		{name: "not UTF-8", in: "\"\xff\"", err: protocol.ErrBadValue, msg: "UTF-8"},
		{name: "duplicate key", in: `{"a":1,"a":2}`, err: protocol.ErrBadValue, msg: `duplicate field "a"`},
		{name: "duplicate key after unescaping", in: `{"a":1,"\u0061":2}`, err: protocol.ErrBadValue, msg: `duplicate field "a"`},
		{name: "duplicate key deep inside", in: `[1,{"x":{"y":[{"z":1,"z":1}]}}]`, err: protocol.ErrBadValue, msg: `duplicate field "z"`},
		{name: "duplicate among many keys", in: manyKeys(40, "k33"), err: protocol.ErrBadValue, msg: `duplicate field "k33"`},
		{name: "lone high surrogate", in: `"\ud800"`, err: protocol.ErrBadValue, msg: `lone UTF-16 surrogate \ud800`},
		{name: "lone low surrogate", in: `"x\uDC00y"`, err: protocol.ErrBadValue, msg: `lone UTF-16 surrogate \uDC00`},
		{name: "reversed pair", in: `"\ude00\ud83d"`, err: protocol.ErrBadValue, msg: "lone UTF-16 surrogate"},
		{name: "high surrogate then a letter", in: `"\ud800\u0041"`, err: protocol.ErrBadValue, msg: "lone UTF-16 surrogate"},
		{name: "lone surrogate in a key", in: `{"\ud800":1}`, err: protocol.ErrBadValue, msg: "lone UTF-16 surrogate"},
		{name: "number over float64", in: `[1e400]`, err: protocol.ErrBadValue, msg: "number 1e400 is out of the range of float64"},
		{name: "negative number over float64", in: `{"n":-1.8e308}`, err: protocol.ErrBadValue, msg: "out of the range of float64"},
		{name: "309 digits over float64", in: "2" + strings.Repeat("0", 308), err: protocol.ErrBadValue, msg: "out of the range of float64"},
		{name: "one level too deep", in: nest(5, "1"), depth: 4, err: protocol.ErrTooDeep, msg: "more than 4 levels"},
		{name: "objects too deep", in: nestObjects(5, "1"), depth: 4, err: protocol.ErrTooDeep, msg: "more than 4 levels"},
		{name: "over the ceiling", in: nest(protocol.MaxValueDepth+1, ""), err: protocol.ErrTooDeep, msg: fmt.Sprintf("more than %d levels", protocol.MaxValueDepth)},
		{name: "limit above the ceiling", in: nest(protocol.MaxValueDepth+1, ""), depth: 10 * protocol.MaxValueDepth, err: protocol.ErrTooDeep},
		{name: "encoding/json's deepest", in: nest(10000, ""), err: protocol.ErrTooDeep},
		{name: "over the size limit", in: `"abcd"`, size: 5, err: protocol.ErrTooLarge, msg: "value is 6 bytes, limit 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := protocol.Limits{MaxValueBytes: tt.size, MaxValueDepth: tt.depth}
			got, err := l.CheckValue(json.RawMessage(tt.in))
			if tt.err == nil {
				if err != nil || string(got) != tt.want {
					t.Fatalf("CheckValue(%.80q) = %.80q, %v; want %.80q", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("CheckValue(%.80q) error %v; want %v with %q", tt.in, err, tt.err, tt.msg)
			}
			if tt.err == protocol.ErrTooDeep && !errors.Is(err, protocol.ErrBadValue) {
				t.Fatalf("ErrTooDeep does not match ErrBadValue")
			}
		})
	}
}

func TestLimitsNormalizeOp(t *testing.T) {
	l := protocol.Limits{MaxIDBytes: 4, MaxValueBytes: 8, MaxValueDepth: 2}
	for _, tt := range []struct {
		op   protocol.Op
		want string
		err  error
	}{
		{op: putOp("a", `[ [1] ]`), want: `[[1]]`},
		{op: protocol.Op{Op: protocol.OpDelete, ID: "abcd"}},
		{op: putOp("a", `[[[1]]]`), err: protocol.ErrTooDeep},
		{op: putOp("a", `{"a":1,"a":1}`), err: protocol.ErrBadValue},
		{op: putOp("a", `"123456789"`), err: protocol.ErrTooLarge},
		{op: putOp("abcde", `1`), err: protocol.ErrBadID},
		{op: protocol.Op{Op: protocol.OpDelete, ID: "a", Value: json.RawMessage(`1`)}, err: protocol.ErrBadOp},
	} {
		got, err := l.NormalizeOp(tt.op)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("NormalizeOp(%s %q %s) error %v, want %v", tt.op.Op, tt.op.ID, tt.op.Value, err, tt.err)
			}
			continue
		}
		if err != nil || string(got.Value) != tt.want {
			t.Errorf("NormalizeOp(%s %q %s) = %s, %v; want %s", tt.op.Op, tt.op.ID, tt.op.Value, got.Value, err, tt.want)
		}
	}
	// The package-level NormalizeOp bounds nesting by the ceiling.
	if _, err := protocol.NormalizeOp(putOp("a", nest(protocol.MaxValueDepth+1, "")), 0, 0); !errors.Is(err, protocol.ErrTooDeep) {
		t.Errorf("NormalizeOp of a value over MaxValueDepth: %v", err)
	}
}

// TestLogEntry: a log entry carries, beside its commit, each op's previous
// value, telling a record that did not exist from one whose value is null;
// an entry written without them reads back with none.
func TestLogEntry(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ops := []protocol.Op{putOp("a", `{"n":1}`), putOp("b", `null`), {Op: protocol.OpDelete, ID: "a"}}
	prev := []json.RawMessage{nil, json.RawMessage(`null`), json.RawMessage(`{"n":1}`)}
	b := protocol.AppendLogEntry(nil, 9, at, protocol.AppendOps(nil, ops), prev)
	if !json.Valid(b) {
		t.Fatalf("AppendLogEntry wrote %s, not JSON", b)
	}
	c, got, err := protocol.DecodeLogEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 9 || !c.At.Equal(at) || len(c.Ops) != 3 || string(c.Ops[1].Value) != "null" {
		t.Fatalf("DecodeLogEntry(%s) read commit %+v", b, c)
	}
	if len(got) != 3 || got[0] != nil || string(got[1]) != "null" || string(got[2]) != `{"n":1}` {
		t.Fatalf("DecodeLogEntry(%s) read prev %q", b, got)
	}
	if alone, err := protocol.DecodeCommit(b); err != nil || len(alone.Ops) != 3 {
		t.Fatalf("DecodeCommit of a log entry = %+v, %v", alone, err)
	}
	old := protocol.AppendCommit(nil, c)
	if _, none, err := protocol.DecodeLogEntry(old); err != nil || none != nil {
		t.Fatalf("DecodeLogEntry(%s) = prev %q, %v; want none", old, none, err)
	}
	for _, bad := range []string{
		`{"version":1,"ops":[{"op":"delete","id":"a"}],"prev":[]}`,
		`{"version":1,"ops":[{"op":"delete","id":"a"}],"prev":[null]}`,
		`{"version":1,"ops":[{"op":"delete","id":"a"}],"prev":[[1,2]]}`,
		`{"version":1,"ops":[],"prev":{}}`,
	} {
		if _, _, err := protocol.DecodeLogEntry([]byte(bad)); !errors.Is(err, protocol.ErrBadValue) {
			t.Errorf("DecodeLogEntry(%s) = %v, want ErrBadValue", bad, err)
		}
	}
}

// TestDecodeCommit: DecodeCommit reads what AppendCommit writes as
// encoding/json does, and also a commit whose value is as deep as
// encoding/json accepts a value alone, which encoding/json cannot read in
// its commit.
func TestDecodeCommit(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, c := range []protocol.Commit{
		{Version: 7, At: at, Ops: []protocol.Op{putOp("a", `{"x":[1,"<&>"]}`), {Op: protocol.OpDelete, ID: "b\u00e9\"\\"}}},
		{Version: 1, At: at.Truncate(time.Second), Ops: []protocol.Op{putOp("a", `null`)}},
		{Version: 18446744073709551615, At: at, Ops: []protocol.Op{}},
	} {
		b := protocol.AppendCommit(nil, c)
		got, err := protocol.DecodeCommit(b)
		if err != nil {
			t.Fatalf("DecodeCommit(%s): %v", b, err)
		}
		var want protocol.Commit
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !commitsEqual(got, want) {
			t.Fatalf("DecodeCommit(%s) = %+v, encoding/json gives %+v", b, got, want)
		}
		// encoding/json's own encoding too.
		j, _ := json.Marshal(c)
		if err := json.Unmarshal(j, &want); err != nil {
			t.Fatal(err)
		}
		if got, err := protocol.DecodeCommit(j); err != nil || !commitsEqual(got, want) {
			t.Fatalf("DecodeCommit(%s) = %+v, %v", j, got, err)
		}
	}

	deep := nest(10000, "")
	if !json.Valid([]byte(deep)) {
		t.Fatal("encoding/json no longer accepts a value 10,000 deep")
	}
	c := protocol.Commit{Version: 3, At: at, Ops: []protocol.Op{putOp("a", deep)}}
	b := protocol.AppendCommit(nil, c)
	var viaJSON protocol.Commit
	if err := json.Unmarshal(b, &viaJSON); err == nil {
		t.Fatal("encoding/json reads a commit holding a value 10,000 deep: DecodeCommit may not be needed any more")
	}
	got, err := protocol.DecodeCommit(b)
	if err != nil || !commitsEqual(got, c) {
		t.Fatalf("DecodeCommit of a commit holding a value 10,000 deep: %v", err)
	}

	for _, bad := range []string{``, `[]`, `{"version":-1}`, `{"version":1,"at":"yesterday"}`, `{"ops":{}}`, `{"version":1`, `{"ops":[{"op":"put"}]}`} {
		if _, err := protocol.DecodeCommit([]byte(bad)); !errors.Is(err, protocol.ErrBadValue) {
			t.Errorf("DecodeCommit(%s) error %v, want ErrBadValue", bad, err)
		}
	}
}

func commitsEqual(a, b protocol.Commit) bool {
	if a.Version != b.Version || !a.At.Equal(b.At) || len(a.Ops) != len(b.Ops) {
		return false
	}
	for i := range a.Ops {
		if a.Ops[i].Op != b.Ops[i].Op || a.Ops[i].ID != b.Ops[i].ID || !bytes.Equal(a.Ops[i].Value, b.Ops[i].Value) {
			return false
		}
	}
	return true
}

// TestMessageValueRules: the value rules hold everywhere in a WebSocket
// message and an HTTP commit or call body, and a message that breaks one
// is refused with its id, so that the client can tell which request
// failed; an id that cannot be decoded as sent is not echoed.
func TestMessageValueRules(t *testing.T) {
	for _, tt := range []struct {
		name, in, id, msg string
	}{
		{"lone surrogate in an op id", `{"type":"commit","id":"7","collection":"c","ops":[{"op":"put","id":"\ud800","value":1}]}`, "7", "lone UTF-16 surrogate"},
		{"lone surrogate in a value", `{"type":"commit","id":"7","collection":"c","ops":[{"op":"put","id":"a","value":{"s":"\udfff"}}]}`, "7", "lone UTF-16 surrogate"},
		{"lone surrogate in an if key", `{"type":"commit","id":"7","collection":"c","ops":[{"op":"delete","id":"a"}],"if":{"\ud800":1}}`, "7", "lone UTF-16 surrogate"},
		{"lone surrogate in an arg", `{"type":"call","id":"7","name":"f","arg":["\ud800"]}`, "7", "lone UTF-16 surrogate"},
		{"lone surrogate in the id", `{"type":"call","id":"\ud800","name":"f","arg":1}`, "", "lone UTF-16 surrogate"},
		{"duplicate key in a value", `{"type":"commit","id":"7","collection":"c","ops":[{"op":"put","id":"a","value":{"x":1,"x":2}}]}`, "7", `duplicate field "x"`},
		{"duplicate key in an arg", `{"type":"call","id":"7","name":"f","arg":{"x":1,"x":2}}`, "7", `duplicate field "x"`},
		{"number out of range", `{"type":"call","id":"7","name":"f","arg":1e400}`, "7", "out of the range of float64"},
		{"message nested too deep", `{"type":"call","id":"7","name":"f","arg":` + nest(protocol.MaxValueDepth+3, "") + `}`, "7", "nested too deep"},
		{"message deeper than encoding/json reads", `{"type":"commit","id":"7","collection":"c","ops":[{"op":"put","id":"a","value":` + nest(10000, "") + `}]}`, "7", "nested too deep"},
		{"not JSON after a broken rule", `{"type":"call","id":"7","name":"f","arg":{"x":1,"x":2}`, "", "not valid JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := protocol.DecodeClientMessage([]byte(tt.in))
			var me *protocol.MessageError
			if m != nil || !errors.As(err, &me) || !errors.Is(err, protocol.ErrBadMessage) {
				t.Fatalf("DecodeClientMessage = %#v, %v; want a *MessageError", m, err)
			}
			want := protocol.MessageID{}
			if tt.id != "" {
				want = protocol.StringID(tt.id)
			}
			if me.ID != want || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q with id %s; want %q with id %q", err, me.ID, tt.msg, tt.id)
			}
		})
	}
	for _, body := range []string{
		`{"ops":[{"op":"put","id":"\ud800","value":1}]}`,
		`{"ops":[{"op":"put","id":"a","value":{"s":"\ud800x"}}]}`,
		`{"ops":[{"op":"put","id":"a","value":{"a":1,"a":1}}]}`,
		`{"ops":[{"op":"put","id":"a","value":-1e999}]}`,
		`{"ops":[{"op":"delete","id":"a"}],"if":{"\udc00":0}}`,
	} {
		if _, err := protocol.DecodeCommitRequest([]byte(body)); !errors.Is(err, protocol.ErrBadMessage) {
			t.Errorf("DecodeCommitRequest(%s) error %v, want ErrBadMessage", body, err)
		}
	}
}

func TestDecodeCallRequest(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "": refused
	}{
		{`{"arg":1}`, `1`},
		{` { "arg" : [ 1 , 2 ] } `, `[ 1 , 2 ]`},
		{`{}`, `null`},
		{`{"arg":null}`, `null`},
		{`{"arg":"\ud83d\ude00"}`, `"\ud83d\ude00"`},
		{`{"arg":1,"arg":2}`, ``},
		{`{"\u0061rg":1,"arg":2}`, ``},
		{`{"Arg":1}`, ``},
		{`{"arg":1,"x":2}`, ``},
		{`{"type":"call","arg":1}`, ``},
		{`{"arg":1} {}`, ``},
		{`{"arg":1}x`, ``},
		{`[]`, ``},
		{`null`, ``},
		{``, ``},
		{`{"arg":"\ud800"}`, ``},
		{`{"arg":{"a":1,"a":2}}`, ``},
		{`{"arg":1e400}`, ``},
	} {
		arg, err := protocol.DecodeCallRequest([]byte(tt.in))
		if tt.want == "" {
			if !errors.Is(err, protocol.ErrBadMessage) {
				t.Errorf("DecodeCallRequest(%s) = %s, %v; want ErrBadMessage", tt.in, arg, err)
			}
			continue
		}
		if err != nil || string(arg) != tt.want {
			t.Errorf("DecodeCallRequest(%s) = %s, %v; want %s", tt.in, arg, err, tt.want)
		}
	}
}

// FuzzCheckValue compares Limits.CheckValue with refValue, a plain
// recursive reading of the value rules on top of encoding/json, and checks
// that what it accepts is its input compacted and is accepted again.
func FuzzCheckValue(f *testing.F) {
	for _, s := range []string{
		`1`, `{"a":[1,{"b":null}]}`, ` [ 1 , "x" ] `, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`,
		`"\ud800"`, `"\ud83d\ude00"`, `"\\ud800"`, `"\udc00\ud800"`, `1e400`, `-1e308`, `1e-400`,
		`[[[[[[]]]]]]`, `{"k":{"k":{"k":{}}}}`, `"\u0000"`, `{"a":}`, `[1,]`, `01`, "\"\xff\"",
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k3":3}`,
		`truex`, `nul`, `"a\qb"`, `"\u12"`, `-`, `1.`, `1e`, `1e+`,
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, depth uint8) {
		orig := bytes.Clone(in)
		l := protocol.Limits{MaxValueDepth: int(depth)}
		out, err := l.CheckValue(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("CheckValue modified its input")
		}
		limit := int(depth)
		if limit == 0 {
			limit = protocol.MaxValueDepth
		}
		want := refValue(in, limit)
		if (err == nil) != (want == nil) {
			t.Fatalf("CheckValue(%q, depth %d) = %v; the reference says %v", in, limit, err, want)
		}
		if err != nil {
			if !errors.Is(err, protocol.ErrBadValue) {
				t.Fatalf("CheckValue(%q) error %v does not wrap ErrBadValue", in, err)
			}
			return
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, in); err != nil || !bytes.Equal(out, compact.Bytes()) {
			t.Fatalf("CheckValue(%q) = %q, json.Compact gives %q, %v", in, out, compact.Bytes(), err)
		}
		if again, err := l.CheckValue(out); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("CheckValue(%q) = %q, then %q, %v", in, out, again, err)
		}
	})
}

// refValue is the value rules read plainly: UTF-8 JSON as encoding/json
// reads it, no key repeated (after unescaping) in an object, no lone
// surrogate escape, every number in the range of float64, nesting at most
// depth.
func refValue(b []byte, depth int) error {
	if !utf8.Valid(b) || !json.Valid(b) {
		return errors.New("not UTF-8 JSON")
	}
	if err := refSurrogates(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var walk func(level int) error
	walk = func(level int) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case json.Delim:
			if level+1 > depth {
				return errors.New("too deep")
			}
			keys := map[string]bool{}
			for dec.More() {
				if tok == '{' {
					k, err := dec.Token()
					if err != nil {
						return err
					}
					if keys[k.(string)] {
						return errors.New("duplicate key")
					}
					keys[k.(string)] = true
				}
				if err := walk(level + 1); err != nil {
					return err
				}
			}
			_, err := dec.Token() // the closing delimiter
			return err
		case json.Number:
			if _, err := strconv.ParseFloat(tok.String(), 64); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the value")
	}
	return nil
}

// refSurrogates finds a lone surrogate escape in valid JSON text.
func refSurrogates(b []byte) error {
	inString := false
	var pendingHigh bool
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			continue
		}
		isEscapeU := c == '\\' && b[i+1] == 'u'
		var r uint64
		if isEscapeU {
			r, _ = strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
		}
		if pendingHigh && !(isEscapeU && r >= 0xDC00 && r < 0xE000) {
			return errors.New("lone high surrogate")
		}
		switch {
		case pendingHigh:
			pendingHigh = false
			i += 5
		case isEscapeU && r >= 0xD800 && r < 0xDC00:
			pendingHigh = true
			i += 5
		case isEscapeU && r >= 0xDC00 && r < 0xE000:
			return errors.New("lone low surrogate")
		case c == '\\':
			i++
		case c == '"':
			inString = false
		}
	}
	return nil
}

// putOp returns a put of value under id.
func putOp(id, value string) protocol.Op {
	return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(value)}
}

// BenchmarkCheckValue measures the check every written value gets.
func BenchmarkCheckValue(b *testing.B) {
	v := []byte(`{"id":"p-234","name":"Widget \u00e9 deluxe","price":12.5,"tags":["a","b","c"],"stock":{"eu":12,"us":3,"asia":0},"updated":"2026-01-02T03:04:05Z","active":true,"notes":null,"dims":[1.5,2.25,3e2]}`)
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.CompactValue(v); err != nil {
			b.Fatal(err)
		}
	}
}
