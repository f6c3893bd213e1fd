package filter

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"testing"
	"unicode/utf8"
)

var fuzzFilters = []string{
	`{}`,
	`{"a":1}`,
	`{"a":{"$lt":5,"$gte":-1.5e3},"b.c":"x","$id":{"$in":["p1","p2"]}}`,
	`{"$or":[{"a":null},{"b":{"$exists":false}}],"$and":[{"c":{"$nin":[1,"1",true]}}]}`,
	`{"a":{"$ne":{"y":[1,2],"x":{}}}}`,
	`{"a":{"$eq":{"$x":1}}}`,
	`{"$and":[{"a":{"$gt":1}},{"a":{"$gt":2}}],"$or":[{"b":1},{"c":2}]}`,
	`{"s":"\u00e9\ud83d\ude00\n"}`,
	`{"n":9007199254740993,"m":1e21,"k":-0.0}`,
	`{"a":{"$regex":"x"}}`,
	`{"a":1,"a":2}`,
	`{"a..b":1}`,
	`{"$or":[]}`,
}

var fuzzValues = []string{
	``,
	`{"a":1,"b":{"c":"x"},"s":"é😀\n","n":9007199254740993,"m":1e21,"k":0}`,
	`{"a":[1,2],"b":null,"c":true}`,
	`{"a":{"y":[1,2],"x":{}}}`,
	`"text"`,
	`12.5e-3`,
	`[{"a":1}]`,
	`{"a":1,"a":2}`,
	`{"a":"\ud800"}`,
	"{\"a\":\"\xff\"}",
}

// FuzzParse reads arbitrary bytes as a filter. It must never panic, every
// error must match ErrInvalid, and a filter read must read back from its
// Key to the same Key, matching the same records.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzFilters {
		f.Add([]byte(s))
	}
	docs := make([]*Doc, len(fuzzValues))
	for i, v := range fuzzValues {
		docs[i] = NewDoc("p1", json.RawMessage(v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		flt, err := Parse(b, Limits{})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): %v does not match ErrInvalid", b, err)
			}
			if flt != nil {
				t.Fatalf("Parse(%q) returned a filter with its error", b)
			}
			return
		}
		key := flt.Key()
		if !json.Valid([]byte(key)) {
			t.Fatalf("Key(%q) = %s, not JSON", b, key)
		}
		again, err := Parse([]byte(key), generous)
		if err != nil {
			t.Fatalf("Parse(Key(%q)) = Parse(%s): %v", b, key, err)
		}
		if again.Key() != key {
			t.Fatalf("Key(%q) = %s, but its Key is %s", b, key, again.Key())
		}
		for i, d := range docs {
			if flt.MatchDoc(d) != again.MatchDoc(d) {
				t.Fatalf("%q and its Key %s disagree on %s", b, key, fuzzValues[i])
			}
		}
	})
}

// bigExponent finds numbers that big.Rat would take long to build.
var bigExponent = regexp.MustCompile(`[eE][+-]?0*[0-9]{4,}`)

// FuzzMatch matches arbitrary filters against arbitrary values. It must
// never panic; a value read must have a canonical encoding that is JSON
// equal to the value, and that reads back to itself; the filter and its
// Key must agree; and the filter's Equalities must hold of every record
// it matches.
func FuzzMatch(f *testing.F) {
	for _, flt := range fuzzFilters {
		for _, v := range fuzzValues {
			f.Add([]byte(flt), []byte(v))
		}
	}
	f.Fuzz(func(t *testing.T, fb, value []byte) {
		d := NewDoc("p1", value)
		if d.exists() {
			canon := d.s[d.nodes[0].start:d.nodes[0].end]
			if !json.Valid(value) || !utf8.Valid(value) || !json.Valid([]byte(canon)) {
				t.Fatalf("NewDoc(%q): canonical %q; valid JSON: value %v, canonical %v", value, canon, json.Valid(value), json.Valid([]byte(canon)))
			}
			again := NewDoc("p1", json.RawMessage(canon))
			if !again.exists() || again.s[again.nodes[0].start:again.nodes[0].end] != canon {
				t.Fatalf("canonical %q of %q does not read back to itself", canon, value)
			}
			if !bigExponent.Match(value) && !refEqual(decode(t, string(value)), decode(t, canon)) {
				t.Fatalf("canonical %q of %q is another value", canon, value)
			}
		} else if len(value) > 0 && json.Valid(value) && utf8.Valid(value) && !bigExponent.Match(value) && !dupOrSurrogate.Match(value) {
			t.Fatalf("NewDoc(%q) refused valid JSON", value)
		}
		flt, err := Parse(fb, Limits{})
		if err != nil {
			return
		}
		m := flt.MatchDoc(d)
		if again, err := Parse([]byte(flt.Key()), generous); err != nil || again.MatchDoc(d) != m {
			t.Fatalf("%q matches %q: %v, but its Key %s does not agree (%v)", fb, value, m, flt.Key(), err)
		}
		if !m {
			return
		}
		for _, e := range flt.Equalities() {
			if v, ok := d.At(e.Path); !ok || !slices.Contains(e.Values, v) {
				t.Fatalf("%q matches %q, whose %q is %q, %v: not in its equality %q", fb, value, e.Path, v, ok, e.Values)
			}
		}
	})
}

// dupOrSurrogate finds what may be a repeated key (any object with two
// members) or an escape, which make valid JSON that NewDoc may refuse
// (encoding/json also takes invalid UTF-8 in strings, which NewDoc
// refuses).
var dupOrSurrogate = regexp.MustCompile(`,\s*"|\\u`)
