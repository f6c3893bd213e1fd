package filter

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustParse(t testing.TB, s string) *Filter {
	t.Helper()
	f, err := Parse([]byte(s), Limits{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return f
}

func TestMatch(t *testing.T) {
	const order = `{"id":"o1","status":"open","price":42.5,"qty":3,"tags":["a","b"],` +
		`"owner":{"id":"u1","name":"Ana","meta":{"vip":true}},"note":null,"big":9007199254740993,"empty":{},"s":"b"}`
	tests := []struct {
		filter string
		id     string // "o1" when empty
		value  string
		want   bool
	}{
		// Equality, and several keys ANDed.
		{filter: `{}`, value: order, want: true},
		{filter: `{"status":"open"}`, value: order, want: true},
		{filter: `{"status":"closed"}`, value: order, want: false},
		{filter: `{"status":"open","qty":3}`, value: order, want: true},
		{filter: `{"status":"open","qty":4}`, value: order, want: false},
		{filter: `{"missing":"x"}`, value: order, want: false},
		// Numbers compare by value, exactly.
		{filter: `{"qty":3.0}`, value: order, want: true},
		{filter: `{"qty":3e0}`, value: order, want: true},
		{filter: `{"qty":0.3e1}`, value: order, want: true},
		{filter: `{"qty":3.0000000000000001}`, value: order, want: false},
		{filter: `{"price":42.50}`, value: order, want: true},
		{filter: `{"price":4250e-2}`, value: order, want: true},
		{filter: `{"big":9007199254740993}`, value: order, want: true},
		{filter: `{"big":9007199254740992}`, value: order, want: false},
		{filter: `{"big":{"$gt":9007199254740992}}`, value: order, want: true},
		{filter: `{"big":{"$lt":9007199254740994}}`, value: order, want: true},
		{filter: `{"big":{"$lt":9007199254740993}}`, value: order, want: false},
		{filter: `{"big":{"$lte":9007199254740993.0}}`, value: order, want: true},
		{filter: `{"n":0}`, value: `{"n":-0}`, want: true},
		{filter: `{"n":-0.0}`, value: `{"n":0e10}`, want: true},
		{filter: `{"n":{"$lt":0}}`, value: `{"n":-1e-300}`, want: true},
		{filter: `{"n":{"$gt":-1e-300}}`, value: `{"n":0}`, want: true},
		{filter: `{"n":{"$gt":1e300}}`, value: `{"n":1.0000000000000000001e300}`, want: true},
		{filter: `{"n":{"$lt":-2}}`, value: `{"n":-10}`, want: true},
		{filter: `{"n":{"$lt":-10}}`, value: `{"n":-2}`, want: false},
		{filter: `{"n":{"$gt":0.5}}`, value: `{"n":0.05}`, want: false},
		{filter: `{"n":{"$gt":5}}`, value: `{"n":10}`, want: true},
		// Strings compare by bytes; escapes are decoded.
		{filter: `{"s":"\u0062"}`, value: order, want: true},
		{filter: `{"s":{"$gt":"a"}}`, value: order, want: true},
		{filter: `{"s":{"$gt":"b"}}`, value: order, want: false},
		{filter: `{"s":{"$gte":"b"}}`, value: order, want: true},
		{filter: `{"s":{"$lt":"ba"}}`, value: order, want: true},
		{filter: `{"s":{"$lte":"B"}}`, value: order, want: false},
		{filter: `{"s":{"$lt":"é"}}`, value: `{"s":"z"}`, want: true},
		{filter: `{"s":"a\nb"}`, value: `{"s":"a\u000ab"}`, want: true},
		{filter: `{"s":"😀"}`, value: `{"s":"\ud83d\ude00"}`, want: true},
		// Types never mix.
		{filter: `{"qty":"3"}`, value: order, want: false},
		{filter: `{"a":{"$lt":5}}`, value: `{"a":"3"}`, want: false},
		{filter: `{"a":{"$gt":"3"}}`, value: `{"a":5}`, want: false},
		{filter: `{"a":{"$lt":5}}`, value: `{"a":null}`, want: false},
		{filter: `{"a":{"$lt":5}}`, value: `{"a":[1]}`, want: false},
		{filter: `{"a":true}`, value: `{"a":1}`, want: false},
		{filter: `{"a":1}`, value: `{"a":true}`, want: false},
		{filter: `{"a":[1]}`, value: `{"a":1}`, want: false},
		{filter: `{"a":1}`, value: `{"a":[1]}`, want: false},
		// null matches null only.
		{filter: `{"note":null}`, value: order, want: true},
		{filter: `{"missing":null}`, value: order, want: false},
		{filter: `{"note":{"$ne":null}}`, value: order, want: false},
		{filter: `{"missing":{"$ne":null}}`, value: order, want: true},
		{filter: `{"status":{"$ne":null}}`, value: order, want: true},
		{filter: `{"note":{"$in":[null,1]}}`, value: order, want: true},
		{filter: `{"note":false}`, value: order, want: false},
		// $eq, $ne.
		{filter: `{"status":{"$eq":"open"}}`, value: order, want: true},
		{filter: `{"status":{"$ne":"open"}}`, value: order, want: false},
		{filter: `{"status":{"$ne":"closed"}}`, value: order, want: true},
		{filter: `{"missing":{"$ne":"closed"}}`, value: order, want: true},
		// $in, $nin.
		{filter: `{"status":{"$in":["open","closed"]}}`, value: order, want: true},
		{filter: `{"status":{"$in":["closed"]}}`, value: order, want: false},
		{filter: `{"status":{"$in":[]}}`, value: order, want: false},
		{filter: `{"qty":{"$in":[1,3.0,"3"]}}`, value: order, want: true},
		{filter: `{"missing":{"$in":[null]}}`, value: order, want: false},
		{filter: `{"status":{"$nin":["open","closed"]}}`, value: order, want: false},
		{filter: `{"status":{"$nin":["closed"]}}`, value: order, want: true},
		{filter: `{"status":{"$nin":[]}}`, value: order, want: true},
		{filter: `{"missing":{"$nin":["x"]}}`, value: order, want: true},
		{filter: `{"tags":{"$in":[["a","b"],["c"]]}}`, value: order, want: true},
		{filter: `{"owner":{"$in":[{"name":"Ana","meta":{"vip":true},"id":"u1"}]}}`, value: order, want: true},
		// Ranges, several operators ANDed.
		{filter: `{"price":{"$gt":40,"$lt":50}}`, value: order, want: true},
		{filter: `{"price":{"$gt":40,"$lt":42.5}}`, value: order, want: false},
		{filter: `{"price":{"$gte":42.5,"$lte":42.5}}`, value: order, want: true},
		{filter: `{"price":{"$gt":42.5}}`, value: order, want: false},
		{filter: `{"missing":{"$lt":1}}`, value: order, want: false},
		{filter: `{"missing":{"$gte":1}}`, value: order, want: false},
		// $exists.
		{filter: `{"status":{"$exists":true}}`, value: order, want: true},
		{filter: `{"status":{"$exists":false}}`, value: order, want: false},
		{filter: `{"missing":{"$exists":false}}`, value: order, want: true},
		{filter: `{"missing":{"$exists":true}}`, value: order, want: false},
		{filter: `{"note":{"$exists":true}}`, value: order, want: true},
		{filter: `{"owner.meta.vip":{"$exists":true}}`, value: order, want: true},
		{filter: `{"status.x":{"$exists":false}}`, value: order, want: true},
		// Dotted paths.
		{filter: `{"owner.id":"u1"}`, value: order, want: true},
		{filter: `{"owner.meta.vip":true}`, value: order, want: true},
		{filter: `{"owner.meta.vip":false}`, value: order, want: false},
		{filter: `{"owner.missing":"u1"}`, value: order, want: false},
		{filter: `{"status.length":4}`, value: order, want: false},
		{filter: `{"tags.0":"a"}`, value: order, want: false},
		{filter: `{"a.b":1}`, value: `{"a.b":1}`, want: false},
		// Deep equality of objects and arrays.
		{filter: `{"owner":{"name":"Ana","id":"u1","meta":{"vip":true}}}`, value: order, want: true},
		{filter: `{"owner":{"name":"Ana","id":"u1"}}`, value: order, want: false},
		{filter: `{"owner.meta":{"vip":true}}`, value: order, want: true},
		{filter: `{"owner.meta":{"$eq":{"vip":true}}}`, value: order, want: true},
		{filter: `{"empty":{}}`, value: order, want: true},
		{filter: `{"owner":{}}`, value: order, want: false},
		{filter: `{"tags":["a","b"]}`, value: order, want: true},
		{filter: `{"tags":["b","a"]}`, value: order, want: false},
		{filter: `{"tags":["a"]}`, value: order, want: false},
		{filter: `{"m":{"$eq":{"$x":1.0}}}`, value: `{"m":{"$x":1}}`, want: true},
		{filter: `{"m":{"$ne":{"$x":1}}}`, value: `{"m":{"$x":2}}`, want: true},
		// $and, $or.
		{filter: `{"$and":[{"status":"open"},{"qty":3}]}`, value: order, want: true},
		{filter: `{"$and":[{"status":"open"},{"qty":4}]}`, value: order, want: false},
		{filter: `{"$or":[{"status":"closed"},{"qty":3}]}`, value: order, want: true},
		{filter: `{"$or":[{"status":"closed"},{"qty":4}]}`, value: order, want: false},
		{filter: `{"$or":[{"status":"closed"},{}]}`, value: order, want: true},
		{filter: `{"status":"open","$or":[{"qty":4},{"$and":[{"price":{"$lt":50}},{"owner.id":"u1"}]}]}`, value: order, want: true},
		{filter: `{"status":"closed","$or":[{"qty":3},{"price":{"$lt":50}}]}`, value: order, want: false},
		// $id.
		{filter: `{"$id":"o1"}`, value: order, want: true},
		{filter: `{"$id":"o2"}`, value: order, want: false},
		{filter: `{"$id":{"$in":["o1","o2"]}}`, value: order, want: true},
		{filter: `{"$id":{"$in":["o2","o3"]}}`, value: order, want: false},
		{filter: `{"$id":{"$nin":["o2","o3"]}}`, value: order, want: true},
		{filter: `{"$id":{"$ne":"o1"}}`, value: order, want: false},
		{filter: `{"$id":{"$gt":"o0","$lt":"o2"}}`, value: order, want: true},
		{filter: `{"$id":{"$gte":"o2"}}`, value: order, want: false},
		{filter: `{"$id":{"$exists":true}}`, value: order, want: true},
		{filter: `{"$id":1}`, id: "1", value: order, want: false},
		{filter: `{"$id":{"$lt":5}}`, id: "1", value: order, want: false},
		{filter: `{"$id":"a\"b"}`, id: `a"b`, value: order, want: true},
		{filter: `{"$id":{"$in":["a\"b","x"]}}`, id: `a"b`, value: order, want: true},
		{filter: `{"$or":[{"$id":"o1"},{"status":"closed"}]}`, value: order, want: true},
		{filter: `{"id":"o1"}`, id: "zz", value: order, want: true},
		// A value that is not an object: only conditions on $id hold.
		{filter: `{}`, value: `"text"`, want: true},
		{filter: `{"$id":"o1"}`, value: `42`, want: true},
		{filter: `{"$id":{"$in":["o1"]}}`, value: `[1,2]`, want: true},
		{filter: `{"a":1}`, value: `[1,2]`, want: false},
		{filter: `{"a":{"$ne":1}}`, value: `null`, want: false},
		{filter: `{"a":{"$nin":[1]}}`, value: `true`, want: false},
		{filter: `{"a":{"$exists":false}}`, value: `"a"`, want: false},
		{filter: `{"$id":"o1","a":{"$exists":false}}`, value: `"a"`, want: false},
		{filter: `{"$or":[{"$id":"o1"},{"a":{"$exists":false}}]}`, value: `"a"`, want: true},
		// A deleted record, or a value that is not JSON: nothing matches.
		{filter: `{}`, value: ``, want: false},
		{filter: `{"$id":"o1"}`, value: ``, want: false},
		{filter: `{"a":{"$exists":false}}`, value: ``, want: false},
		{filter: `{}`, value: `{"a":1`, want: false},
		{filter: `{}`, value: `{"a":1,"a":2}`, want: false},
		{filter: `{}`, value: `{} x`, want: false},
		{filter: `{}`, value: "\"\xff\"", want: false},
		// Whitespace in the value is insignificant.
		{filter: `{"a":{"b":[1,2]}}`, value: " {\n\t\"a\" : { \"b\" : [ 1 , 2.0 ] } } ", want: true},
	}
	for _, tt := range tests {
		id := tt.id
		if id == "" {
			id = "o1"
		}
		f := mustParse(t, tt.filter)
		if got := f.Match(id, json.RawMessage(tt.value)); got != tt.want {
			t.Errorf("%s .Match(%q, %s) = %v, want %v", tt.filter, id, tt.value, got, tt.want)
		}
		// The canonical spelling means the same.
		g := mustParse(t, f.Key())
		if got := g.Match(id, json.RawMessage(tt.value)); got != tt.want {
			t.Errorf("%s (Key of %s) .Match(%q, %s) = %v, want %v", g.Key(), tt.filter, id, tt.value, got, tt.want)
		}
	}
}

func TestNilFilter(t *testing.T) {
	var f *Filter
	if !f.Match("a", json.RawMessage(`{"x":1}`)) || !f.Match("a", json.RawMessage(`1`)) {
		t.Error("a nil filter does not match an existing record")
	}
	if f.Match("a", nil) {
		t.Error("a nil filter matches a deleted record")
	}
	if f.Key() != "{}" || f.String() != "{}" || f.Equalities() != nil {
		t.Errorf("nil filter: Key %q, String %q, Equalities %v", f.Key(), f.String(), f.Equalities())
	}
	if b, err := f.MarshalJSON(); err != nil || string(b) != "{}" {
		t.Errorf("nil filter: MarshalJSON = %s, %v", b, err)
	}
}

func TestKey(t *testing.T) {
	// Each group holds spellings of one filter: their Keys must be equal
	// (to the first, the canonical spelling), and differ from every other
	// group's.
	groups := [][]string{
		{`{}`, ` { } `, `{"$and":[{}]}`, `{"$or":[{"a":1},{}]}`, `{"$and":[{},{}]}`},
		{`{"a":1}`, `{"a":1.0}`, `{"a":1e0}`, `{"a":10e-1}`, `{"a":0.1e1}`, `{"a":{"$eq":1}}`, `{"a":{"$in":[1]}}`, `{"a":{"$in":[1,1.0]}}`,
			`{"$and":[{"a":1}]}`, `{"$or":[{"a":1}]}`, `{"$or":[{"a":1},{"a":1.00}]}`, `{"$and":[{"a":1},{"a":1}]}`, `{"a":1,"$and":[{"a":1}]}`,
			`{"$and":[{"$and":[{"a":1}]}]}`, `{"$or":[{"$or":[{"a":1}]}]}`, "{\n \"a\" : 1 }", `{"\u0061":1}`},
		{`{"a":"x"}`, `{"a":"\u0078"}`, `{"a":{"$eq":"x"}}`},
		{`{"a":"1"}`},
		{`{"a":100}`, `{"a":1e2}`, `{"a":1E+2}`, `{"a":100.00}`, `{"a":0.001e5}`},
		{`{"a":0}`, `{"a":-0}`, `{"a":0.0e-5}`, `{"a":-0.0}`},
		{`{"a":1e+21}`, `{"a":1000000000000000000000}`, `{"a":10e20}`},
		{`{"a":100000000000000000000}`, `{"a":1e20}`},
		{`{"a":1e-7}`, `{"a":0.0000001}`},
		{`{"a":0.000001}`, `{"a":1e-6}`},
		{`{"a":-1.5}`, `{"a":-15e-1}`},
		{`{"a":9007199254740993}`},
		{`{"a":9007199254740992}`},
		{`{"a":1,"b":2}`, `{"b":2,"a":1}`, `{"$and":[{"a":1},{"b":2}]}`, `{"$and":[{"b":2},{"a":1}]}`, `{"b":2,"$and":[{"a":1}]}`,
			`{"$and":[{"$and":[{"b":2}]},{"a":1}]}`},
		{`{"a":{"$gt":1,"$lt":5}}`, `{"a":{"$lt":5,"$gt":1}}`, `{"$and":[{"a":{"$gt":1}},{"a":{"$lt":5}}]}`},
		{`{"$and":[{"a":{"$gt":1}},{"a":{"$gt":2}}]}`, `{"$and":[{"a":{"$gt":2}},{"a":{"$gt":1}}]}`, `{"a":{"$gt":2},"$and":[{"a":{"$gt":1.0}}]}`},
		{`{"a":{"$in":[1,2,3]}}`, `{"a":{"$in":[3,2,1]}}`, `{"a":{"$in":[3,2,1,2,3.0]}}`},
		{`{"a":{"$nin":[1,2]}}`, `{"a":{"$nin":[2,1,1]}}`},
		{`{"a":{"$ne":1}}`, `{"a":{"$nin":[1]}}`},
		{`{"a":{"$in":[]}}`},
		{`{"a":{"$nin":[]}}`},
		{`{"a":{"x":1,"y":[1,{"p":1,"q":2}]}}`, `{"a":{"x":1,"y":[1,{"q":2,"p":1}]}}`, `{"a":{"y":[1.0,{"p":1,"q":2}],"x":1}}`, `{"a":{"$eq":{"y":[1,{"p":1,"q":2}],"x":1}}}`},
		{`{"a":{"x":1,"y":[{"p":1,"q":2},1]}}`},
		{`{"a":{}}`, `{"a":{"$eq":{}}}`},
		{`{"a":{"$eq":{"$x":1}}}`, `{"a":{"$in":[{"$x":1.0}]}}`},
		{`{"a":[1,2]}`, `{"a":[1.0,2]}`},
		{`{"a":[2,1]}`},
		{`{"a":null}`, `{"a":{"$eq":null}}`},
		{`{"a":{"$exists":true}}`},
		{`{"a":{"$exists":false}}`},
		{`{"a.b":1}`},
		{`{"a":{"b":1}}`},
		{`{"$id":"p1"}`, `{"$id":{"$eq":"p1"}}`, `{"$id":{"$in":["p1"]}}`},
		{`{"$id":{"$in":["p1","p2"]}}`, `{"$id":{"$in":["p2","p1","p1"]}}`},
		{`{"$or":[{"a":1},{"b":2}]}`, `{"$or":[{"b":2},{"a":1}]}`, `{"$or":[{"b":2.0},{"a":1},{"b":2}]}`,
			`{"$or":[{"$or":[{"b":2},{"a":1}]}]}`, `{"$or":[{"a":1},{"$or":[{"b":2}]}]}`, `{"$or":[{"a":1},{"$or":[{"b":2},{"a":1}]}]}`,
			`{"$and":[{"$or":[{"a":1},{"b":2}]}]}`},
		{`{"$or":[{"a":1},{"b":2}],"c":3}`, `{"c":3,"$or":[{"b":2},{"a":1}]}`, `{"$and":[{"c":3},{"$or":[{"a":1},{"b":2}]}]}`},
		{`{"$and":[{"$or":[{"a":1},{"b":2}]},{"$or":[{"c":1},{"d":2}]}]}`, `{"$and":[{"$or":[{"d":2},{"c":1}]},{"$or":[{"b":2},{"a":1}]}]}`,
			`{"$or":[{"c":1},{"d":2}],"$and":[{"$or":[{"a":1},{"b":2}]}]}`},
		{`{"$or":[{"a":1,"b":2},{"c":3}]}`, `{"$or":[{"c":3},{"b":2,"a":1}]}`, `{"$or":[{"c":3},{"$and":[{"b":2},{"a":1}]}]}`},
		{`{"s":"a\"b\\c\n\u0001é😀"}`, `{"s":"a\u0022b\u005cc\u000a\u0001\u00e9\ud83d\ude00"}`},
	}
	seen := map[string]int{}
	for gi, group := range groups {
		want := mustParse(t, group[0]).Key()
		if want != group[0] && gi > 0 {
			t.Errorf("Key(%s) = %s; the group's first filter should be spelt canonically", group[0], want)
		}
		if prev, ok := seen[want]; ok {
			t.Errorf("groups %d and %d have the same Key %s", prev, gi, want)
		}
		seen[want] = gi
		for _, s := range group {
			f := mustParse(t, s)
			if got := f.Key(); got != want {
				t.Errorf("Key(%s) = %s, want %s", s, got, want)
			}
			if f.String() != f.Key() {
				t.Errorf("String(%s) = %s, not its Key", s, f.String())
			}
			if b, err := json.Marshal(f); err != nil || string(b) != want {
				t.Errorf("json.Marshal(%s) = %s, %v; want %s", s, b, err, want)
			}
			if g := mustParse(t, f.Key()); g.Key() != f.Key() {
				t.Errorf("Key(Parse(%s)) = %s, want %s", f.Key(), g.Key(), f.Key())
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		filter string
		lim    Limits
		want   string // the whole message
	}{
		{filter: ``, want: `filter: unexpected end of the text`},
		{filter: `[]`, want: `filter: not a JSON object`},
		{filter: `"a"`, want: `filter: not a JSON object`},
		{filter: `null`, want: `filter: not a JSON object`},
		{filter: `{"a":1} {}`, want: `filter: data after the value, at offset 8`},
		{filter: `{"a":1`, want: `filter: unexpected end of the text`},
		{filter: `{"a":01}`, want: `filter: expected ',' or '}' at offset 6`},
		{filter: `{"a":1.}`, want: `filter: bad number at offset 5`},
		{filter: `{"a":1e999999999999}`, want: `filter: number out of range at offset 5`},
		{filter: `{a:1}`, want: `filter: expected a string key at offset 1`},
		{filter: `{"a":tru}`, want: `filter: unexpected 't' at offset 5`},
		{filter: "{\"a\":\"\xff\"}", want: `filter: invalid UTF-8 at offset 6`},
		{filter: "{\"a\":\"\x01\"}", want: `filter: control character U+0001 in a string at offset 6`},
		{filter: `{"a":"\ud800"}`, want: `filter: lone surrogate escape \ud800 in a string at offset 6`},
		{filter: `{"a":"\x"}`, want: `filter: bad escape 'x' at offset 6`},
		{filter: `{"a":1,"a":2}`, want: `filter: duplicate key "a"`},
		{filter: `{"a":{"b":1,"b":1}}`, want: `filter: duplicate key "b"`},
		{filter: `{"\u0061":1,"a":2}`, want: `filter: duplicate key "a"`},
		{filter: `{"price":{"$regex":"^a"}}`, want: `filter: "price": unknown operator "$regex"`},
		{filter: `{"price":{"$where":"1"}}`, want: `filter: "price": unknown operator "$where"`},
		{filter: `{"price":{"$EQ":1}}`, want: `filter: "price": unknown operator "$EQ"`},
		{filter: `{"$nor":[{"a":1}]}`, want: `filter: unknown operator "$nor" (a filter object's keys are paths, $and, $or and $id)`},
		{filter: `{"$where":"x"}`, want: `filter: unknown operator "$where" (a filter object's keys are paths, $and, $or and $id)`},
		{filter: `{"$eq":1}`, want: `filter: unknown operator "$eq" (a filter object's keys are paths, $and, $or and $id)`},
		{filter: `{"a":{"$lt":1,"b":2}}`, want: `filter: "a": "b" beside operators: an object is either operators or a value`},
		{filter: `{"a":{"x":1,"$y":2}}`, want: `filter: "a": "x" beside operators: an object is either operators or a value`},
		{filter: `{"":1}`, want: `filter: empty path`},
		{filter: `{"a..b":1}`, want: `filter: "a..b": empty path segment`},
		{filter: `{".a":1}`, want: `filter: ".a": empty path segment`},
		{filter: `{"a.":1}`, want: `filter: "a.": empty path segment`},
		{filter: `{"a.$id":1}`, want: `filter: "a.$id": a path segment may not start with "$"`},
		{filter: `{"$id.x":1}`, want: `filter: unknown operator "$id.x" (a filter object's keys are paths, $and, $or and $id)`},
		{filter: `{"$and":[]}`, want: `filter: "$and": want a non-empty array of filter objects`},
		{filter: `{"$or":{}}`, want: `filter: "$or": want a non-empty array of filter objects`},
		{filter: `{"$or":[{"a":1},2]}`, want: `filter: "$or": element 1 is not an object`},
		{filter: `{"$and":[{"a":{"$foo":1}}]}`, want: `filter: "a": unknown operator "$foo"`},
		{filter: `{"a":{"$lt":null}}`, want: `filter: "a": $lt takes a number or a string`},
		{filter: `{"a":{"$gte":[1]}}`, want: `filter: "a": $gte takes a number or a string`},
		{filter: `{"a":{"$gt":true}}`, want: `filter: "a": $gt takes a number or a string`},
		{filter: `{"a":{"$lte":{}}}`, want: `filter: "a": $lte takes a number or a string`},
		{filter: `{"a":{"$in":1}}`, want: `filter: "a": $in takes an array of values`},
		{filter: `{"a":{"$nin":"x"}}`, want: `filter: "a": $nin takes an array of values`},
		{filter: `{"a":{"$exists":1}}`, want: `filter: "a": $exists takes true or false`},
		{filter: `{"$id":{"$exists":"yes"}}`, want: `filter: "$id": $exists takes true or false`},
		// Limits.
		{filter: `{"a":"` + strings.Repeat("x", 4096) + `"}`, want: `filter: more than 4096 bytes`},
		{filter: `{"a":"xxxxxx"}`, lim: Limits{MaxBytes: 10}, want: `filter: more than 10 bytes`},
		{filter: `{"a":{"$in":[` + strings.TrimSuffix(strings.Repeat("1,", 257), ",") + `]}}`, want: `filter: more than 256 terms`},
		{filter: `{"a":1,"b":2,"c":3}`, lim: Limits{MaxTerms: 2}, want: `filter: more than 2 terms`},
		{filter: `{"a":{"$gt":1,"$lt":3},"b":{"$in":[1,2]}}`, lim: Limits{MaxTerms: 3}, want: `filter: more than 3 terms`},
		{filter: nest(4), want: `filter: nested deeper than 8 levels`},
		{filter: `{"$or":[{"a":1},{"b":1}]}`, lim: Limits{MaxDepth: 2}, want: `filter: nested deeper than 2 levels`},
		{filter: `{"a":{"$in":[1]}}`, lim: Limits{MaxDepth: 2}, want: `filter: nested deeper than 2 levels`},
		{filter: `{"a":{"$eq":1}}`, lim: Limits{MaxDepth: 1}, want: `filter: nested deeper than 1 levels`},
		{filter: strings.Repeat("[", 10001) + strings.Repeat("]", 10001), lim: Limits{MaxBytes: 1 << 20}, want: `filter: arrays and objects nested more than 10000 deep`},
	}
	for _, tt := range tests {
		f, err := Parse([]byte(tt.filter), tt.lim)
		if err == nil {
			t.Errorf("Parse(%s) = %s, want an error", tt.filter, f)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s): %v does not match ErrInvalid", tt.filter, err)
		}
		if f != nil {
			t.Errorf("Parse(%s) returned a filter with its error", tt.filter)
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%s):\n got %s\nwant %s", truncate(tt.filter), err, tt.want)
		}
	}
}

// nest returns a filter whose $or arrays nest n deep: depth 2n+1.
func nest(n int) string {
	s := `{"a":1}`
	for range n {
		s = `{"$or":[` + s + `,{"b":1}]}`
	}
	return s
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func TestLimitsAccept(t *testing.T) {
	tests := []struct {
		filter string
		lim    Limits
	}{
		{filter: `{"a":"` + strings.Repeat("x", 4096-8) + `"}`},
		{filter: `{"a":{"$in":[` + strings.TrimSuffix(strings.Repeat("1,", 256), ",") + `]}}`},
		{filter: nest(3)}, // depth 7
		{filter: `{"$or":[{"a":{"$in":[1]}},{"b":1}]}`, lim: Limits{MaxDepth: 5}},
		{filter: `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}`}, // a value's nesting does not count
		{filter: `{"a":1,"b":2,"c":3}`, lim: Limits{MaxTerms: 3}},
		{filter: `{"a":{"$in":[]}}`, lim: Limits{MaxTerms: 1}},
	}
	for _, tt := range tests {
		if _, err := Parse([]byte(tt.filter), tt.lim); err != nil {
			t.Errorf("Parse(%s, %+v): %v", truncate(tt.filter), tt.lim, err)
		}
	}
}

func TestAndOr(t *testing.T) {
	a := mustParse(t, `{"a":1}`)
	b := mustParse(t, `{"b":2}`)
	ab := mustParse(t, `{"$or":[{"a":1},{"b":2}]}`)
	tests := []struct {
		name string
		got  *Filter
		want string // Key; "nil" for a nil filter
	}{
		{"And()", And(), "nil"},
		{"And(nil)", And(nil, nil), "nil"},
		{"And(a)", And(a), `{"a":1}`},
		{"And(nil, a, nil)", And(nil, a, nil), `{"a":1}`},
		{"And(a, b)", And(a, b), `{"a":1,"b":2}`},
		{"And(b, a)", And(b, a), `{"a":1,"b":2}`},
		{"And(a, a)", And(a, a), `{"a":1}`},
		{"And(a, ab)", And(a, ab), `{"$or":[{"a":1},{"b":2}],"a":1}`},
		{"And(ab, ab)", And(ab, ab), `{"$or":[{"a":1},{"b":2}]}`},
		{"And(ab, Or(a, {}))", And(ab, mustParse(t, `{"c":{"$gt":1}}`), mustParse(t, `{"c":{"$gt":2}}`)), `{"$and":[{"$or":[{"a":1},{"b":2}]},{"c":{"$gt":1}},{"c":{"$gt":2}}]}`},
		{"Or()", Or(), `{"$id":{"$in":[]}}`},
		{"Or(nil)", Or(nil), "nil"},
		{"Or(a, nil)", Or(a, nil), "nil"},
		{"Or(a)", Or(a), `{"a":1}`},
		{"Or(a, b)", Or(a, b), `{"$or":[{"a":1},{"b":2}]}`},
		{"Or(b, a)", Or(b, a), `{"$or":[{"a":1},{"b":2}]}`},
		{"Or(a, a)", Or(a, a), `{"a":1}`},
		{"Or(a, ab)", Or(a, ab), `{"$or":[{"a":1},{"b":2}]}`},
		{"Or(a, {})", Or(a, mustParse(t, `{}`)), `{}`},
		{"Or(And(a, b), a)", Or(And(a, b), a), `{"$or":[{"a":1,"b":2},{"a":1}]}`},
	}
	for _, tt := range tests {
		got := "nil"
		if tt.got != nil {
			got = tt.got.Key()
			if g := mustParse(t, got); g.Key() != got {
				t.Errorf("%s: Key %s reads back as %s", tt.name, got, g.Key())
			}
		}
		if got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, got, tt.want)
		}
	}
	if And(a) != a || Or(a) != a {
		t.Error("And or Or of one filter is not that filter")
	}
	docs := []string{`{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`, `{}`, `7`, ``}
	for _, v := range docs {
		d := NewDoc("x", json.RawMessage(v))
		if got, want := And(a, b).MatchDoc(d), a.MatchDoc(d) && b.MatchDoc(d); got != want {
			t.Errorf("And(a, b).MatchDoc(%s) = %v, want %v", v, got, want)
		}
		if got, want := Or(a, b).MatchDoc(d), a.MatchDoc(d) || b.MatchDoc(d); got != want {
			t.Errorf("Or(a, b).MatchDoc(%s) = %v, want %v", v, got, want)
		}
		if Or().MatchDoc(d) {
			t.Errorf("Or().MatchDoc(%s) = true", v)
		}
	}
}

func TestEqualities(t *testing.T) {
	tests := []struct {
		filter string
		want   []Equality
	}{
		{`{}`, nil},
		{`{"a":1}`, []Equality{{"a", []string{"1"}}}},
		{`{"a":1.0}`, []Equality{{"a", []string{"1"}}}},
		{`{"a":{"$eq":"x"}}`, []Equality{{"a", []string{`"x"`}}}},
		{`{"a":null,"b":true}`, []Equality{{"a", []string{"null"}}, {"b", []string{"true"}}}},
		{`{"a":{"$in":[3,1,2,1e0]}}`, []Equality{{"a", []string{"1", "2", "3"}}}},
		{`{"a":{"$in":["x",null,false]}}`, []Equality{{"a", []string{`"x"`, "false", "null"}}}},
		{`{"a":{"$in":[]}}`, []Equality{{"a", []string{}}}},
		{`{"a":{"$in":[1,2]},"$and":[{"a":{"$in":[2,3]}}]}`, []Equality{{"a", []string{"2"}}}},
		{`{"a":1,"$and":[{"a":2}]}`, []Equality{{"a", []string{}}}},
		{`{"owner.id":"u1","b":{"$gt":1},"c":{"$ne":2}}`, []Equality{{"owner.id", []string{`"u1"`}}}},
		{`{"$id":{"$in":["p2","p1"]}}`, []Equality{{"$id", []string{`"p1"`, `"p2"`}}}},
		{`{"z":1,"$id":"p","a":2}`, []Equality{{"$id", []string{`"p"`}}, {"a", []string{"2"}}, {"z", []string{"1"}}}},
		// Not scalars, not equality, or inside an $or: none.
		{`{"a":{"x":1}}`, nil},
		{`{"a":[1]}`, nil},
		{`{"a":{"$in":[1,[2]]}}`, nil},
		{`{"a":{"$nin":[1,2]}}`, nil},
		{`{"a":{"$gte":1,"$lte":1}}`, nil},
		{`{"$or":[{"a":1},{"a":2}]}`, nil},
		{`{"$or":[{"a":1},{"b":2}],"c":"x"}`, []Equality{{"c", []string{`"x"`}}}},
		{`{"$or":[{"a":1}]}`, []Equality{{"a", []string{"1"}}}}, // an $or of one filter is that filter
		{`{"$and":[{"a":1},{"$or":[{"b":1},{"c":1}]}]}`, []Equality{{"a", []string{"1"}}}},
	}
	for _, tt := range tests {
		f := mustParse(t, tt.filter)
		got := f.Equalities()
		if !equalEqualities(got, tt.want) {
			t.Errorf("Equalities(%s) = %q, want %q", tt.filter, got, tt.want)
		}
		// The result is the caller's.
		for i := range got {
			got[i].Path = "changed"
		}
		if len(got) > 0 && f.Equalities()[0].Path == "changed" {
			t.Errorf("Equalities(%s) returns the filter's own slice", tt.filter)
		}
	}
	a, b := mustParse(t, `{"a":1}`), mustParse(t, `{"b":{"$in":[1,2]}}`)
	if got, want := And(a, b).Equalities(), []Equality{{"a", []string{"1"}}, {"b", []string{"1", "2"}}}; !equalEqualities(got, want) {
		t.Errorf("And(a, b).Equalities() = %q, want %q", got, want)
	}
	if got := Or(a, b).Equalities(); got != nil {
		t.Errorf("Or(a, b).Equalities() = %q, want none", got)
	}
}

func equalEqualities(x, y []Equality) bool {
	return slices.EqualFunc(x, y, func(a, b Equality) bool { return a.Path == b.Path && slices.Equal(a.Values, b.Values) })
}

func TestDocAt(t *testing.T) {
	d := NewDoc("p\"1", json.RawMessage(`{"b":2.50,"a":{"y":[1,1e2,{"q":null,"p":"\u0041"}],"x":-0},"":1,"s":"x\ny","e":{}}`))
	tests := []struct {
		path string
		want string
		ok   bool
	}{
		{"$id", `"p\"1"`, true},
		{"b", `2.5`, true},
		{"a", `{"x":0,"y":[1,100,{"p":"A","q":null}]}`, true},
		{"a.x", `0`, true},
		{"a.y", `[1,100,{"p":"A","q":null}]`, true},
		{"s", `"x\ny"`, true},
		{"e", `{}`, true},
		{"a.y.0", ``, false},
		{"b.c", ``, false},
		{"missing", ``, false},
		{"a.missing", ``, false},
		{"", ``, false},
		{"a.", ``, false},
		{".a", ``, false},
		{"a..x", ``, false},
	}
	for _, tt := range tests {
		got, ok := d.At(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("At(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
	for _, v := range []string{``, `1`, `"a"`, `[{"a":1}]`, `null`, `{"a":1`} {
		d := NewDoc("i", json.RawMessage(v))
		if got, ok := d.At("a"); ok {
			t.Errorf("NewDoc(%s).At(\"a\") = %q, want none", v, got)
		}
		if got, ok := d.At("$id"); !ok || got != `"i"` {
			t.Errorf("NewDoc(%s).At(\"$id\") = %q, %v", v, got, ok)
		}
	}
}

func TestCanonicalValues(t *testing.T) {
	tests := []struct{ in, want string }{
		{`0`, `0`}, {`-0`, `0`}, {`0.000`, `0`}, {`0e-999`, `0`}, {`-0.0e+5`, `0`},
		{`1`, `1`}, {`-1`, `-1`}, {`1.0`, `1`}, {`1e0`, `1`}, {`1E0`, `1`}, {`0.1e1`, `1`}, {`10e-1`, `1`},
		{`123.456`, `123.456`}, {`-123.4560`, `-123.456`}, {`0.5`, `0.5`}, {`.5`, ``}, {`5.`, ``}, {`05`, ``}, {`-`, ``}, {`+1`, ``},
		{`1e21`, `1e+21`}, {`1e20`, `100000000000000000000`}, {`123e18`, `123000000000000000000`}, {`1.5e21`, `1.5e+21`},
		{`123456789012345678901`, `123456789012345678901`}, {`1234567890123456789012`, `1.234567890123456789012e+21`},
		{`1e-6`, `0.000001`}, {`1e-7`, `1e-7`}, {`1.5e-7`, `1.5e-7`}, {`0.0000015`, `0.0000015`}, {`-12e-8`, `-1.2e-7`},
		{`9007199254740993`, `9007199254740993`}, {`1e308`, `1e+308`}, {`1e400`, `1e+400`}, {`1e-400`, `1e-400`},
		{`"a"`, `"a"`}, {`"\u0041\/"`, `"A/"`}, {`"\"\\\b\f\n\r\t\u0001\u001f\u007f"`, `"\"\\\b\f\n\r\t\u0001\u001f` + "\x7f" + `"`},
		{`"\u00e9\u2028"`, "\"é\u2028\""}, {`"\ud83d\ude00"`, `"😀"`}, {`"\ud800"`, `"�"`}, {`"\udc00x"`, `"�x"`},
		{`true`, `true`}, {`false`, `false`}, {`null`, `null`}, {`nul`, ``}, {`True`, ``},
		{`[]`, `[]`}, {`{}`, `{}`}, {` [ 1 , 2 ] `, `[1,2]`}, {`[1,]`, ``}, {`[`, ``},
		{`{"b":1,"a":2,"":3,"é":4,"B":5}`, `{"":3,"B":5,"a":2,"b":1,"é":4}`},
		{`{"b":{"d":1,"c":2},"a":[{"z":1,"y":2}]}`, `{"a":[{"y":2,"z":1}],"b":{"c":2,"d":1}}`},
		{`{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
		{`{"a":1,"a":1}`, ``}, {`{"a":1,"\u0061":1}`, ``},
		{`{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k0":0}`,
			`{"k0":0,"k1":1,"k10":10,"k11":11,"k12":12,"k13":13,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9}`},
		{`{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k1":0}`, ``},
		{"\"\xff\"", ``}, {"\"\x01\"", ``}, {`"abc`, ``}, {`1 2`, ``},
	}
	for _, tt := range tests {
		d := NewDoc("x", json.RawMessage(tt.in))
		got := ""
		if d.exists() {
			got = d.s[d.nodes[0].start:d.nodes[0].end]
		}
		if got != tt.want {
			t.Errorf("canonical %s = %s, want %s", tt.in, got, tt.want)
		}
		if got != "" {
			if !json.Valid([]byte(got)) {
				t.Errorf("canonical %s = %s, not JSON", tt.in, got)
			}
			again := NewDoc("x", json.RawMessage(got))
			if c := again.s[again.nodes[0].start:again.nodes[0].end]; c != got {
				t.Errorf("canonical %s = %s, but canonical %s = %s", tt.in, got, got, c)
			}
		}
	}
}

func TestCompareNumbers(t *testing.T) {
	// Ascending, equal neighbours marked.
	nums := []struct {
		n     string
		equal bool // to the one before
	}{
		{"-1e400", false}, {"-1e20", false}, {"-9007199254740993", false}, {"-9007199254740992", false},
		{"-100", false}, {"-1e2", true}, {"-99.99", false}, {"-2", false}, {"-1.5", false}, {"-1", false},
		{"-1e-300", false}, {"0", false}, {"-0", true}, {"0.0e5", true}, {"1e-300", false}, {"1e-7", false},
		{"0.1", false}, {"0.1000000000000000000001", false}, {"0.11", false}, {"1", false}, {"1.0", true},
		{"1.5", false}, {"2", false}, {"10", false}, {"10.5", false}, {"11", false}, {"99", false}, {"100", false},
		{"9007199254740992", false}, {"9007199254740993", false}, {"1e20", false}, {"1e400", false},
	}
	num := func(s string) (node, string) {
		d := NewDoc("x", json.RawMessage(s))
		return d.nodes[0], d.s
	}
	for i, x := range nums {
		for j, y := range nums {
			want := 0
			switch {
			case i < j:
				want = -1
				for k := i + 1; k <= j && nums[k].equal; k++ {
					if k == j {
						want = 0
					}
				}
			case i > j:
				want = 1
				for k := j + 1; k <= i && nums[k].equal; k++ {
					if k == i {
						want = 0
					}
				}
			}
			na, sa := num(x.n)
			nb, sb := num(y.n)
			got := cmpNumbers(na.neg, na.pos, sa[na.a:na.b], nb.neg, nb.pos, sb[nb.a:nb.b])
			if got != want {
				t.Errorf("compare %s, %s = %d, want %d", x.n, y.n, got, want)
			}
		}
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse(`{"owner": "a"}`).Key(); got != `{"owner":"a"}` {
		t.Errorf("MustParse key = %s", got)
	}
	defer func() {
		err, _ := recover().(error)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("MustParse of a bad filter panicked with %v, want an ErrInvalid", err)
		}
	}()
	MustParse(`{"a":{"$regex":"x"}}`)
}
