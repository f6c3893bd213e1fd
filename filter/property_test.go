package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The property tests check random filters against random records with a
// reference matcher: the semantics of the package documentation written
// over encoding/json's reading of both, with numbers as big.Rat.

// spellings are values, each with its ways of spelling it.
var spellings = [][]string{
	{`1`, `1.0`, `1e0`, `10e-1`},
	{`2`, `2.00`, `0.2e1`},
	{`-1`, `-1.0`},
	{`0`, `-0`, `0.0`},
	{`1.5`, `15e-1`},
	{`9007199254740993`},
	{`9007199254740992`, `9007199254740992.0`},
	{`1e21`, `1000000000000000000000`},
	{`"a"`, `"\u0061"`},
	{`"b"`},
	{`"1"`},
	{`""`},
	{`"é"`, `"\u00e9"`},
	{`"p1"`},
	{`null`}, {`true`}, {`false`},
	{`[]`}, {`[1,2]`, `[1.0,2]`}, {`[2,1]`},
	{`{}`}, {`{"x":1,"y":"a"}`, `{"y":"a","x":1.0}`},
}

// ordered are the spellings $lt and the like take.
var ordered = [][]string{spellings[0], spellings[1], spellings[2], spellings[3], spellings[4], spellings[5], spellings[6], spellings[7],
	spellings[8], spellings[9], spellings[10], spellings[11], spellings[12]}

type gen struct{ r *rand.Rand }

func (g gen) pick(vs [][]string) string {
	v := vs[g.r.IntN(len(vs))]
	return v[g.r.IntN(len(v))]
}

// doc returns a random record value: mostly an object with members a, b,
// c, some of them objects with members x, y, z; sometimes another value or
// none.
func (g gen) doc() string {
	switch g.r.IntN(12) {
	case 0:
		return ""
	case 1:
		return g.pick(spellings)
	}
	return g.object([]string{"a", "b", "c"}, true)
}

func (g gen) object(keys []string, nest bool) string {
	var members []string
	for _, k := range keys {
		if g.r.IntN(3) == 0 {
			continue
		}
		v := g.pick(spellings)
		if nest && k != "c" && g.r.IntN(2) == 0 {
			v = g.object([]string{"x", "y", "z"}, false)
		}
		members = append(members, fmt.Sprintf("%q:%s", k, v))
	}
	g.r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	return "{" + strings.Join(members, ",") + "}"
}

var genPaths = []string{"a", "b", "c", "a.x", "a.y", "b.z", "$id"}

// filter returns a random filter, nested at most depth more $and or $or.
func (g gen) filter(depth int) string {
	var members []string
	keys := slices.Clone(genPaths)
	if depth > 0 {
		keys = append(keys, "$and", "$or")
	}
	for _, k := range keys {
		if g.r.IntN(len(keys)) > 1 {
			continue
		}
		switch k {
		case "$and", "$or":
			n := 1 + g.r.IntN(3)
			elems := make([]string, n)
			for i := range elems {
				elems[i] = g.filter(depth - 1)
			}
			if n > 1 && g.r.IntN(4) == 0 {
				elems[1] = elems[0] // a repeat
			}
			members = append(members, fmt.Sprintf("%q:[%s]", k, strings.Join(elems, ",")))
		default:
			members = append(members, fmt.Sprintf("%q:%s", k, g.conditions(k)))
		}
	}
	g.r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	return "{" + strings.Join(members, ",") + "}"
}

func (g gen) value(path string) string {
	if path == "$id" && g.r.IntN(2) == 0 {
		return fmt.Sprintf(`"p%d"`, 1+g.r.IntN(3))
	}
	return g.pick(spellings)
}

func (g gen) conditions(path string) string {
	if g.r.IntN(3) == 0 {
		v := g.value(path)
		if strings.HasPrefix(v, "{") {
			return `{"$eq":` + v + `}`
		}
		return v
	}
	ops := slices.Clone(opNames[:])
	g.r.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	ops = ops[:1+g.r.IntN(3)]
	members := make([]string, len(ops))
	for i, op := range ops {
		var v string
		switch op {
		case "$eq", "$ne":
			v = g.value(path)
		case "$lt", "$lte", "$gt", "$gte":
			v = g.pick(ordered)
			if path == "$id" && g.r.IntN(2) == 0 {
				v = g.value(path)
				if !strings.HasPrefix(v, `"`) {
					v = `"p2"`
				}
			}
		case "$in", "$nin":
			vs := make([]string, g.r.IntN(5))
			for j := range vs {
				vs[j] = g.value(path)
			}
			v = "[" + strings.Join(vs, ",") + "]"
		case "$exists":
			v = []string{"true", "false"}[g.r.IntN(2)]
		}
		members[i] = fmt.Sprintf("%q:%s", op, v)
	}
	return "{" + strings.Join(members, ",") + "}"
}

// decode reads JSON text with numbers as json.Number.
func decode(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// refMatch is the reference matcher: filter f (decoded) on the record id
// with value v (decoded; absent when !exists).
func refMatch(f map[string]any, id string, v any, exists bool) bool {
	if !exists {
		return false
	}
	for k, fv := range f {
		switch k {
		case "$and", "$or":
			some, all := false, true
			for _, e := range fv.([]any) {
				m := refMatch(e.(map[string]any), id, v, true)
				some = some || m
				all = all && m
			}
			if k == "$and" && !all || k == "$or" && !some {
				return false
			}
			continue
		}
		var val any
		var present bool
		if k == "$id" {
			val, present = id, true
		} else {
			obj, ok := v.(map[string]any)
			if !ok {
				return false // not an object: no condition on a path holds
			}
			val, present = refAt(obj, strings.Split(k, "."))
		}
		ops, isObj := fv.(map[string]any)
		if !isObj || !hasDollar(ops) {
			if !present || !refEqual(val, fv) {
				return false
			}
			continue
		}
		for op, arg := range ops {
			if !refOp(op, arg, val, present) {
				return false
			}
		}
	}
	return true
}

func hasDollar(m map[string]any) bool {
	for k := range m {
		if strings.HasPrefix(k, "$") {
			return true
		}
	}
	return false
}

func refAt(obj map[string]any, segs []string) (any, bool) {
	var v any = obj
	for _, s := range segs {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = o[s]; !ok {
			return nil, false
		}
	}
	return v, true
}

func refOp(op string, arg, val any, present bool) bool {
	switch op {
	case "$eq":
		return present && refEqual(val, arg)
	case "$ne":
		return !present || !refEqual(val, arg)
	case "$in", "$nin":
		in := present && slices.ContainsFunc(arg.([]any), func(a any) bool { return refEqual(val, a) })
		if op == "$in" {
			return in
		}
		return !present || !in
	case "$exists":
		return present == arg.(bool)
	}
	if !present {
		return false
	}
	var c int
	switch a := arg.(type) {
	case json.Number:
		n, ok := val.(json.Number)
		if !ok {
			return false
		}
		c = rat(n).Cmp(rat(a))
	case string:
		s, ok := val.(string)
		if !ok {
			return false
		}
		c = strings.Compare(s, a)
	default:
		panic("bad operand")
	}
	switch op {
	case "$lt":
		return c < 0
	case "$lte":
		return c <= 0
	case "$gt":
		return c > 0
	case "$gte":
		return c >= 0
	}
	panic("bad operator " + op)
}

func rat(n json.Number) *big.Rat {
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		panic("bad number " + n)
	}
	return r
}

func refEqual(x, y any) bool {
	switch x := x.(type) {
	case json.Number:
		y, ok := y.(json.Number)
		return ok && rat(x).Cmp(rat(y)) == 0
	case []any:
		y, ok := y.([]any)
		return ok && slices.EqualFunc(x, y, refEqual)
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !refEqual(xv, yv) {
				return false
			}
		}
		return true
	}
	return x == y
}

var generous = Limits{MaxBytes: 1 << 20, MaxDepth: 1000, MaxTerms: 1 << 20}

type record struct {
	id     string
	value  string
	doc    *Doc
	ref    any
	exists bool
}

func records(t testing.TB, g gen, n int) []record {
	recs := make([]record, n)
	for i := range recs {
		r := &recs[i]
		r.id = fmt.Sprintf("p%d", 1+g.r.IntN(3))
		r.value = g.doc()
		r.doc = NewDoc(r.id, json.RawMessage(r.value))
		if r.exists = r.value != ""; r.exists {
			r.ref = decode(t, r.value)
		}
	}
	return recs
}

func TestProperties(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(1, 2))}
	recs := records(t, g, 60)
	keys := map[string]string{} // Key → a filter with that Key
	var filters []*Filter
	var refs []map[string]any
	for range 3000 {
		text := g.filter(2)
		f, err := Parse([]byte(text), generous)
		if err != nil {
			t.Fatalf("Parse(%s): %v", text, err)
		}
		ref := decode(t, text).(map[string]any)
		key := f.Key()
		again, err := Parse([]byte(key), generous)
		if err != nil {
			t.Fatalf("Parse(Key(%s)) = Parse(%s): %v", text, key, err)
		}
		if again.Key() != key {
			t.Fatalf("Key(%s) = %s, but its Key is %s", text, key, again.Key())
		}
		keys[key] = text
		for _, r := range recs {
			want := refMatch(ref, r.id, r.ref, r.exists)
			if got := f.MatchDoc(r.doc); got != want {
				t.Fatalf("%s .MatchDoc(%q, %s) = %v, want %v", text, r.id, r.value, got, want)
			}
			if got := again.MatchDoc(r.doc); got != want {
				t.Fatalf("%s (Key of %s) .MatchDoc(%q, %s) = %v, want %v", key, text, r.id, r.value, got, want)
			}
			if !want {
				continue
			}
			for _, e := range f.Equalities() {
				if v, ok := r.doc.At(e.Path); !ok || !slices.Contains(e.Values, v) {
					t.Fatalf("%s matches (%q, %s), whose %q is %q, %v: not in its equality %q", text, r.id, r.value, e.Path, v, ok, e.Values)
				}
			}
		}
		filters = append(filters, f)
		refs = append(refs, ref)
	}
	if len(keys) < 2000 {
		t.Errorf("only %d distinct filters of 3000", len(keys))
	}
	// And and Or mean the conjunction and the disjunction.
	for i := 0; i+2 < len(filters); i += 3 {
		fs, rs := filters[i:i+3], refs[i:i+3]
		and, or := And(fs...), Or(fs...)
		for _, f := range []*Filter{and, or} {
			if again, err := Parse([]byte(f.Key()), generous); err != nil || again.Key() != f.Key() {
				t.Fatalf("Key %s reads back as %v, %v", f.Key(), again, err)
			}
		}
		for _, r := range recs {
			m := []bool{refMatch(rs[0], r.id, r.ref, r.exists), refMatch(rs[1], r.id, r.ref, r.exists), refMatch(rs[2], r.id, r.ref, r.exists)}
			if got, want := and.MatchDoc(r.doc), m[0] && m[1] && m[2]; got != want {
				t.Fatalf("And(%s, %s, %s) = %s .MatchDoc(%q, %s) = %v, want %v", fs[0], fs[1], fs[2], and, r.id, r.value, got, want)
			}
			if got, want := or.MatchDoc(r.doc), m[0] || m[1] || m[2]; got != want {
				t.Fatalf("Or(%s, %s, %s) = %s .MatchDoc(%q, %s) = %v, want %v", fs[0], fs[1], fs[2], or, r.id, r.value, got, want)
			}
		}
	}
}

// TestCanonicalProperty checks that the canonical encodings of random
// values are equal exactly when the values are.
func TestCanonicalProperty(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(3, 4))}
	var values []string
	for range 400 {
		v := g.doc()
		if v != "" {
			values = append(values, v)
		}
	}
	for _, s := range spellings {
		values = append(values, s...)
	}
	for _, x := range values {
		dx := NewDoc("", json.RawMessage(x))
		cx := dx.s[dx.nodes[0].start:dx.nodes[0].end]
		if !json.Valid([]byte(cx)) || !bytes.Equal(compact(t, cx), []byte(cx)) {
			t.Fatalf("canonical %s = %s: not compact JSON", x, cx)
		}
		for _, y := range values {
			dy := NewDoc("", json.RawMessage(y))
			cy := dy.s[dy.nodes[0].start:dy.nodes[0].end]
			if got, want := cx == cy, refEqual(decode(t, x), decode(t, y)); got != want {
				t.Fatalf("canonical %s = %s, canonical %s = %s; the values are equal: %v", x, cx, y, cy, want)
			}
		}
	}
}

func compact(t testing.TB, s string) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
