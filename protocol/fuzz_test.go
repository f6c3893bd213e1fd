package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/viewsync/viewsync/protocol"
)

// FuzzParseCursor checks that ParseCursor never accepts what it cannot
// print back: a cursor that parses formats to text that parses to the same
// cursor.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{
		"E1:42", ":42", "42", "0", ":", "", "E:", "a:b:3", "E:-1", "E:+1",
		"E:18446744073709551615", "E:18446744073709551616", "E:007",
		"bad epoch!:3", "x_-Y9:1", " 1", "1 ", "é:1", "E:１",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := protocol.ParseCursor(s)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadCursor) {
				t.Fatalf("ParseCursor(%q) error %v does not wrap ErrBadCursor", s, err)
			}
			return
		}
		if err := protocol.ValidateEpoch(c.Epoch); err != nil {
			t.Fatalf("ParseCursor(%q) = %+v with an invalid epoch: %v", s, c, err)
		}
		text := c.String()
		if got := string(c.AppendTo(nil)); got != text {
			t.Fatalf("AppendTo = %q, String = %q", got, text)
		}
		again, err := protocol.ParseCursor(text)
		if err != nil {
			t.Fatalf("ParseCursor(%q) = %+v, but its String %q does not parse: %v", s, c, text, err)
		}
		if again != c {
			t.Fatalf("ParseCursor(%q) = %+v, String %q parses to %+v", s, c, text, again)
		}
	})
}

// FuzzCompactValue checks that CompactValue accepts exactly the valid
// UTF-8 JSON values that keep the value rules (see refValue) and returns
// them compact, and that it is idempotent.
func FuzzCompactValue(f *testing.F) {
	for _, s := range []string{
		`1`, ` 1 `, `{"a": 1}`, `{"a b":"c  d"}`, `[1, 2,` + "\n" + `3]`, `"\" x"`, `{"a":"\\" , "b":1}`,
		`null`, `{`, `1 2`, `{}{}`, `'a'`, "\"\xff\"", "\ufeff1", `"\u00e9"`, `1.10`, `12345678901234567890`,
		`[[[[[]]]]]`, `{"a":[{"b":null}]}`, "\t\r\n", `{"a":1,"a":1}`, `"\ud800"`, `1e400`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out, err := protocol.CompactValue(in)
		if !bytes.Equal(in, orig) {
			t.Fatalf("CompactValue modified its input: %q became %q", orig, in)
		}
		valid := refValue(in, protocol.MaxValueDepth) == nil
		if err != nil {
			if !errors.Is(err, protocol.ErrBadValue) {
				t.Fatalf("CompactValue(%q) error %v does not wrap ErrBadValue", in, err)
			}
			if valid {
				t.Fatalf("CompactValue(%q) rejected a valid value: %v", in, err)
			}
			return
		}
		if !valid {
			t.Fatalf("CompactValue(%q) = %q, accepted input that is not UTF-8 JSON keeping the value rules", in, out)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("CompactValue(%q) = %q, not valid UTF-8 JSON", in, out)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, in); err != nil {
			t.Fatalf("json.Compact(%q): %v", in, err)
		}
		if !bytes.Equal(out, want.Bytes()) {
			t.Fatalf("CompactValue(%q) = %q, want %q", in, out, want.Bytes())
		}
		again, err := protocol.CompactValue(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("CompactValue not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}

// FuzzMergePatch checks that MergePatch never panics, that it accepts every
// valid patch on every valid target, that its output is compact valid JSON,
// and that applying the same patch twice changes nothing more (RFC 7396
// merge patches are idempotent).
func FuzzMergePatch(f *testing.F) {
	seeds := [][2]string{
		{`{"a":"b"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`},
		{`{"a":["b"]}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`},
		{`{"a":"foo"}`, `null`},
		{`{"a":"foo"}`, `"bar"`},
		{`{"e":null}`, `{"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`},
		{``, `{"n":12345678901234567890,"f":1.10}`},
		{`{"a":"<b>&"}`, `{"c":"\u2028"}`},
		{`{"a":1}`, `{"a":`},
		{"\"\xff\"", `{"a":1}`},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		out, err := protocol.MergePatch(target, patch)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadValue) {
				t.Fatalf("MergePatch(%q, %q) error %v does not wrap ErrBadValue", target, patch, err)
			}
			if json.Valid(patch) && (len(target) == 0 || json.Valid(target)) {
				t.Fatalf("MergePatch(%q, %q) rejected valid input: %v", target, patch, err)
			}
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("MergePatch(%q, %q) = %q, not valid UTF-8 JSON", target, patch, out)
		}
		if !isCompactJSON(out) {
			t.Fatalf("MergePatch(%q, %q) = %q, not compact", target, patch, out)
		}
		twice, err := protocol.MergePatch(out, patch)
		if err != nil {
			t.Fatalf("MergePatch(%q, %q) on its own output %q: %v", target, patch, out, err)
		}
		if !bytes.Equal(twice, out) {
			t.Fatalf("MergePatch not idempotent: target %q patch %q: once %q, twice %q", target, patch, out, twice)
		}
	})
}

// FuzzDecodeCommit checks that DecodeCommit never panics and that a commit
// it reads reads back the same once written out by AppendCommit.
func FuzzDecodeCommit(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, c := range []protocol.Commit{
		{Version: 1, At: at, Ops: []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`{"x":[1,2]}`)}}},
		{Version: 2, At: at, Ops: []protocol.Op{{Op: protocol.OpDelete, ID: "a\u00e9"}}},
		{Version: 3, At: at, Ops: []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`[[[[[[[[]]]]]]]]`)}}},
	} {
		f.Add(protocol.AppendCommit(nil, c))
	}
	for _, s := range []string{``, `{}`, `[]`, `{"version":1,"at":"x"}`, `{"ops":null}`, `{"ops":[{"op":"put","id":"\ud800"}]}`, `{"version":1,"ops":[{"id":"a"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := protocol.DecodeCommit(b)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadValue) {
				t.Fatalf("DecodeCommit(%q) error %v does not wrap ErrBadValue", b, err)
			}
			return
		}
		if !json.Valid(b) && len(b) < 10000 {
			t.Fatalf("DecodeCommit accepted %q, which is not JSON", b)
		}
		again, err := protocol.DecodeCommit(protocol.AppendCommit(nil, c))
		if err != nil || again.Version != c.Version || !again.At.Equal(c.At) || len(again.Ops) != len(c.Ops) {
			t.Fatalf("DecodeCommit(%q) = %+v; written out and read again: %+v, %v", b, c, again, err)
		}
		for i := range c.Ops {
			if again.Ops[i].Op != c.Ops[i].Op || again.Ops[i].ID != c.Ops[i].ID || !bytes.Equal(again.Ops[i].Value, c.Ops[i].Value) {
				t.Fatalf("DecodeCommit(%q): op %d %+v read back as %+v", b, i, c.Ops[i], again.Ops[i])
			}
		}
	})
}

// FuzzDecodeLogEntry checks that DecodeLogEntry never panics, that it
// reads a log entry's commit as DecodeCommit does, and that an entry it
// reads reads back the same once written out by AppendLogEntry.
func FuzzDecodeLogEntry(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ops := []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`{"x":[1,2]}`)}, {Op: protocol.OpDelete, ID: "a"}}
	f.Add(protocol.AppendLogEntry(nil, 4, at, protocol.AppendOps(nil, ops), []json.RawMessage{nil, json.RawMessage(`{"x":[1,2]}`)}))
	f.Add(protocol.AppendLogEntry(nil, 5, at, protocol.AppendOps(nil, ops[:1]), []json.RawMessage{json.RawMessage(`null`)}))
	for _, s := range []string{`{"ops":[],"prev":[]}`, `{"prev":[[1,2]]}`, `{"prev":[null]}`, `{"prev":{}}`, `{"ops":[{"op":"delete","id":"a"}],"prev":[[]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, prev, err := protocol.DecodeLogEntry(b)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadValue) {
				t.Fatalf("DecodeLogEntry(%q) error %v does not wrap ErrBadValue", b, err)
			}
			return
		}
		if prev != nil && len(prev) != len(c.Ops) {
			t.Fatalf("DecodeLogEntry(%q): %d prev values for %d ops", b, len(prev), len(c.Ops))
		}
		if alone, err := protocol.DecodeCommit(b); err != nil || alone.Version != c.Version || len(alone.Ops) != len(c.Ops) {
			t.Fatalf("DecodeCommit(%q) = %+v, %v; DecodeLogEntry read %+v", b, alone, err, c)
		}
		if prev == nil {
			return
		}
		again, prev2, err := protocol.DecodeLogEntry(protocol.AppendLogEntry(nil, c.Version, c.At, protocol.AppendOps(nil, c.Ops), prev))
		if err != nil || again.Version != c.Version || len(prev2) != len(prev) {
			t.Fatalf("DecodeLogEntry(%q) = %+v %q; written out and read again: %+v %q, %v", b, c, prev, again, prev2, err)
		}
		for i := range prev {
			if (prev[i] == nil) != (prev2[i] == nil) || !bytes.Equal(prev[i], prev2[i]) {
				t.Fatalf("DecodeLogEntry(%q): prev %d %q read back as %q", b, i, prev[i], prev2[i])
			}
		}
	})
}

// FuzzCheckObject compares CheckObject with refValue: it accepts exactly
// the JSON objects that keep the value rules, however deep.
func FuzzCheckObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a":[1,{"b":null}]} `, `{"a":1,"a":2}`, `{"a":{"b":1,"\u0062":2}}`, `[{}]`, `"{}"`,
		`{"a":"\ud800"}`, `{"a":1e400}`, `{"a":1} {}`, `{"a":`, "{\"a\":\"\xff\"}", `{"v":[1,{"x":1,"x":1}]}`, `null`, ` 1 `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 10000 {
			return // the reference, encoding/json, stops at 10,000 levels
		}
		err := protocol.CheckObject(in)
		want := refValue(in, len(in))
		if want == nil && bytes.TrimSpace(in)[0] != '{' {
			want = errors.New("not an object")
		}
		if (err == nil) != (want == nil) {
			t.Fatalf("CheckObject(%q) = %v; the reference says %v", in, err, want)
		}
	})
}
