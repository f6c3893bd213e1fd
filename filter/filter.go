// Package filter selects records by their values: a filter is a JSON
// object in the style of MongoDB's queries, over a record's value (any
// JSON value) and its id.
//
//	{"category": "lamp", "price": {"$lt": 50}, "owner.id": "u1"}
//
// Each key of a filter object is a dotted path into the record's value
// ("owner.id" is the member "id" of the member "owner"; arrays are not
// indexed), and its conditions must all hold. A path's value is either a
// JSON value, which the record's value at the path must equal, or an
// object of operators, all of which must hold:
//
//	$eq v        the value at the path equals v
//	$ne v        the value is absent, or does not equal v
//	$in [v...]   the value equals one of the vs
//	$nin [v...]  the value is absent, or equals none of the vs
//	$lt v, $lte v, $gt v, $gte v
//	             the value is of v's type, a number or a string, and
//	             compares so: numbers by their exact decimal values,
//	             strings by their bytes
//	$exists b    the value is present (b true) or absent (b false)
//
// Values are equal when they are of one type and equal as JSON values:
// numbers by value (1, 1.0 and 1e0 are equal; 9007199254740993 and
// 9007199254740992 are not), objects whatever the order of their members,
// arrays element by element. Values of different types never match:
// {"a":{"$lt":5}} does not match {"a":"3"}, and null matches only null,
// not an absent member. An object without "$" keys is a value to compare
// with; one with only "$" keys is an object of operators; one with both is
// an error. The object {} matches every record.
//
// Beside paths, a filter object may hold "$and" and "$or", each a
// non-empty array of filter objects all of which (or one of which) must
// match, and "$id", a path that is the record's id, a string:
// {"$id": {"$in": ["p1", "p2"]}}. Every other path holds only in a
// record whose value is an object: one whose value is a string, a number,
// an array or null matches a filter only through conditions on "$id", and
// no condition on another path holds for it, not even $ne, $nin or
// $exists false. A deleted record matches no filter, not even {}.
//
// Parse reads a filter strictly and within Limits; Filter.Key is its
// canonical spelling, the same for filters equal by construction. A Doc is
// a record read once, to be matched against many filters.
package filter

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits bound a filter as parsed from outside input. Zero fields mean the
// defaults.
type Limits struct {
	// MaxBytes bounds the filter's JSON text. Default DefaultMaxBytes.
	MaxBytes int
	// MaxDepth bounds the nesting of the filter's objects and arrays
	// ($and and $or arrays and their filter objects, operator objects,
	// $in and $nin arrays; not the values compared with): {"a":1} is at
	// depth 1, {"a":{"$in":[1]}} at 3, {"$or":[{"a":1}]} at 3. Default
	// DefaultMaxDepth.
	MaxDepth int
	// MaxTerms bounds the conditions in total, each comparison and each
	// value of an $in or $nin counting one. Default DefaultMaxTerms.
	MaxTerms int
}

// The default Limits.
const (
	DefaultMaxBytes = 4096
	DefaultMaxDepth = 8
	DefaultMaxTerms = 256
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxTerms <= 0 {
		l.MaxTerms = DefaultMaxTerms
	}
	return l
}

// ErrInvalid is matched (errors.Is) by every error of Parse. The error's
// message names the problem and, where there is one, the path:
// `filter: "price": unknown operator "$regex"`.
var ErrInvalid = errors.New("invalid filter")

// invalidError is an error of Parse.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return "filter: " + e.msg }

func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// idPath is the path of the record's id.
const idPath = "$id"

// Filter is a parsed filter. It is immutable and safe for concurrent use.
// A nil *Filter is the filter {}: it matches every record that exists.
type Filter struct {
	root *and
	eqs  []Equality
}

func newFilter(root *and) *Filter {
	return &Filter{root: root, eqs: equalities(root)}
}

// Parse reads a filter: a JSON object of at most lim.MaxBytes bytes, in
// UTF-8, with nothing after it, no object repeating a key and no lone
// surrogate escape ("\ud800"), within lim's depth and terms. Every error
// matches ErrInvalid.
// MustParse is Parse of a filter written in code, within the default
// Limits, such as an embedding application's auth.Func puts in row
// rights. It panics if the filter does not parse.
func MustParse(s string) *Filter {
	f, err := Parse([]byte(s), Limits{})
	if err != nil {
		panic(err)
	}
	return f
}

func Parse(b []byte, lim Limits) (*Filter, error) {
	lim = lim.withDefaults()
	if len(b) > lim.MaxBytes {
		return nil, invalidf("more than %d bytes", lim.MaxBytes)
	}
	s := getScanner(b, true)
	nodes := s.read()
	if nodes == nil {
		err := invalidf("%s", s.err)
		putScanner(s)
		return nil, err
	}
	p := &parser{lim: lim, s: string(s.buf), nodes: nodes}
	putScanner(s)
	if nodes[0].kind != kindObject {
		return nil, invalidf("not a JSON object")
	}
	root, err := p.and(0, 1)
	if err != nil {
		return nil, err
	}
	return newFilter(root), nil
}

// parser turns a filter's laid out JSON into its conditions.
type parser struct {
	lim   Limits
	s     string
	nodes []node
	terms int
}

func (p *parser) key(n int32) string { return p.s[p.nodes[n].k0:p.nodes[n].k1] }

func (p *parser) count(terms int) error {
	p.terms += terms
	if p.terms > p.lim.MaxTerms {
		return invalidf("more than %d terms", p.lim.MaxTerms)
	}
	return nil
}

func (p *parser) deeper(depth int) error {
	if depth > p.lim.MaxDepth {
		return invalidf("nested deeper than %d levels", p.lim.MaxDepth)
	}
	return nil
}

// and reads the filter object n, at the given depth.
func (p *parser) and(n int32, depth int) (*and, error) {
	if err := p.deeper(depth); err != nil {
		return nil, err
	}
	var conds []*cond
	var ors []*or
	nd := p.nodes[n]
	for m := nd.a; m < nd.a+nd.b; m++ {
		key := p.key(m)
		switch {
		case key == "$and" || key == "$or":
			elems, err := p.list(m, key, depth)
			if err != nil {
				return nil, err
			}
			if key == "$and" {
				for _, e := range elems {
					conds = append(conds, e.conds...)
					ors = append(ors, e.ors...)
				}
				break
			}
			o, one, all := newOr(elems)
			switch {
			case all:
			case one != nil:
				conds = append(conds, one.conds...)
				ors = append(ors, one.ors...)
			default:
				ors = append(ors, o)
			}
		case key == idPath:
			cs, err := p.field(idPath, nil, m, depth)
			if err != nil {
				return nil, err
			}
			conds = append(conds, cs...)
		case strings.HasPrefix(key, "$"):
			return nil, invalidf("unknown operator %q (a filter object's keys are paths, $and, $or and $id)", key)
		default:
			segs, err := splitPath(key)
			if err != nil {
				return nil, err
			}
			cs, err := p.field(key, segs, m, depth)
			if err != nil {
				return nil, err
			}
			conds = append(conds, cs...)
		}
	}
	return newAnd(conds, ors), nil
}

// list reads the array of filter objects of $and or $or, node m.
func (p *parser) list(m int32, name string, depth int) ([]*and, error) {
	nd := p.nodes[m]
	if nd.kind != kindArray || nd.b == 0 {
		return nil, invalidf("%q: want a non-empty array of filter objects", name)
	}
	elems := make([]*and, 0, nd.b)
	for i := range nd.b {
		e := nd.a + i
		if p.nodes[e].kind != kindObject {
			return nil, invalidf("%q: element %d is not an object", name, i)
		}
		a, err := p.and(e, depth+2)
		if err != nil {
			return nil, err
		}
		elems = append(elems, a)
	}
	return elems, nil
}

// splitPath splits a dotted path into its members' names.
func splitPath(path string) ([]string, error) {
	if path == "" {
		return nil, invalidf("empty path")
	}
	segs := strings.Split(path, ".")
	for _, seg := range segs {
		if seg == "" {
			return nil, invalidf("%q: empty path segment", path)
		}
		if seg[0] == '$' {
			return nil, invalidf("%q: a path segment may not start with \"$\"", path)
		}
	}
	return segs, nil
}

// field reads the conditions on path, node m of a filter object at depth.
func (p *parser) field(path string, segs []string, m int32, depth int) ([]*cond, error) {
	nd := p.nodes[m]
	if !p.operators(m) {
		if err := p.count(1); err != nil {
			return nil, err
		}
		return []*cond{newCond(path, segs, opEq, p.lit(m), nil, false)}, nil
	}
	if err := p.deeper(depth + 1); err != nil {
		return nil, err
	}
	for o := nd.a; o < nd.a+nd.b; o++ {
		if name := p.key(o); !strings.HasPrefix(name, "$") {
			return nil, invalidf("%q: %q beside operators: an object is either operators or a value", path, name)
		}
	}
	conds := make([]*cond, 0, nd.b)
	for o := nd.a; o < nd.a+nd.b; o++ {
		c, err := p.operator(path, segs, p.key(o), o, depth+1)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// operators reports whether node m is an object of operators: an object
// with a key starting with "$".
func (p *parser) operators(m int32) bool {
	nd := p.nodes[m]
	if nd.kind != kindObject {
		return false
	}
	for o := nd.a; o < nd.a+nd.b; o++ {
		if strings.HasPrefix(p.key(o), "$") {
			return true
		}
	}
	return false
}

// operator reads the operator name on path, with operand node o, in an
// operator object at depth.
func (p *parser) operator(path string, segs []string, name string, o int32, depth int) (*cond, error) {
	op, ok := opByName[name]
	if !ok {
		return nil, invalidf("%q: unknown operator %q", path, name)
	}
	nd := p.nodes[o]
	switch op {
	case opEq, opNe:
		if err := p.count(1); err != nil {
			return nil, err
		}
		return newCond(path, segs, op, p.lit(o), nil, false), nil
	case opLt, opLte, opGt, opGte:
		if nd.kind != kindNumber && nd.kind != kindString {
			return nil, invalidf("%q: %s takes a number or a string", path, name)
		}
		if err := p.count(1); err != nil {
			return nil, err
		}
		return newCond(path, segs, op, p.lit(o), nil, false), nil
	case opIn, opNin:
		if nd.kind != kindArray {
			return nil, invalidf("%q: %s takes an array of values", path, name)
		}
		if err := p.deeper(depth + 1); err != nil {
			return nil, err
		}
		if err := p.count(max(1, int(nd.b))); err != nil {
			return nil, err
		}
		set := make([]lit, nd.b)
		for i := range nd.b {
			set[i] = p.lit(nd.a + i)
		}
		return newCond(path, segs, op, lit{}, set, false), nil
	default: // opExists
		if nd.kind != kindTrue && nd.kind != kindFalse {
			return nil, invalidf("%q: $exists takes true or false", path)
		}
		if err := p.count(1); err != nil {
			return nil, err
		}
		return newCond(path, segs, op, lit{}, nil, nd.kind == kindTrue), nil
	}
}

// lit returns the value at node n.
func (p *parser) lit(n int32) lit {
	nd := p.nodes[n]
	l := lit{kind: nd.kind, neg: nd.neg, pos: nd.pos, canon: p.s[nd.start:nd.end]}
	switch nd.kind {
	case kindString, kindNumber:
		l.str = p.s[nd.a:nd.b]
	case kindObject:
		l.dollar = p.operators(n)
	}
	return l
}

// op is a comparison. Its values are in the order of the operators' names.
type op uint8

const (
	opEq op = iota
	opExists
	opGt
	opGte
	opIn
	opLt
	opLte
	opNe
	opNin
)

var opNames = [...]string{"$eq", "$exists", "$gt", "$gte", "$in", "$lt", "$lte", "$ne", "$nin"}

var opByName = func() map[string]op {
	m := make(map[string]op, len(opNames))
	for i, name := range opNames {
		m[name] = op(i)
	}
	return m
}()

// lit is a value a filter compares with.
type lit struct {
	kind kind
	neg  bool
	pos  int32
	// dollar is set on an object with a key starting with "$".
	dollar bool
	// canon is the value's canonical encoding.
	canon string
	// str is a string's decoded bytes, or a number's digits.
	str string
}

// cond is one comparison of the value at a path.
type cond struct {
	path string
	// segs are the path's members' names; nil for "$id".
	segs []string
	op   op
	// val is the operand of $eq, $ne, $lt, $lte, $gt, $gte.
	val lit
	// set is the operand of $in and $nin, sorted by canonical encoding,
	// without repeats; canons are their encodings.
	set    []lit
	canons []string
	// exists is the operand of $exists.
	exists bool
	// operand is the canonical encoding of the operand.
	operand string
	// key is the condition alone, as a filter's canonical spelling.
	key string
}

// newCond returns the condition op on path with its operand: val, set or
// exists, by op. An $in or $nin of one value is the $eq or $ne of it.
func newCond(path string, segs []string, op op, val lit, set []lit, exists bool) *cond {
	c := &cond{path: path, segs: segs, op: op, val: val, exists: exists}
	switch op {
	case opIn, opNin:
		set = slices.Clone(set)
		slices.SortFunc(set, func(x, y lit) int { return strings.Compare(x.canon, y.canon) })
		set = slices.CompactFunc(set, func(x, y lit) bool { return x.canon == y.canon })
		if len(set) == 1 {
			c.op, c.val = opEq, set[0]
			if op == opNin {
				c.op = opNe
			}
			break
		}
		c.set = set
		c.canons = make([]string, len(set))
		for i, v := range set {
			c.canons[i] = v.canon
		}
	}
	switch c.op {
	case opIn, opNin:
		c.operand = "[" + strings.Join(c.canons, ",") + "]"
	case opExists:
		c.operand = "false"
		if c.exists {
			c.operand = "true"
		}
	default:
		c.operand = c.val.canon
	}
	c.key = "{" + quote(path) + ":" + c.spelling() + "}"
	return c
}

// spelling is how the condition is spelt alone on its path: the value of
// an $eq, when it cannot be taken for operators, or else an operator
// object.
func (c *cond) spelling() string {
	if c.op == opEq && !c.val.dollar {
		return c.operand
	}
	return "{" + c.member() + "}"
}

// member is the condition as a member of an operator object.
func (c *cond) member() string { return `"` + opNames[c.op] + `":` + c.operand }

func quote(s string) string { return string(appendQuoted(nil, s)) }

// and is a conjunction, normalized: its conditions and disjunctions
// sorted by their spelling, without repeats; no disjunction of one
// filter, or with {} among its filters.
type and struct {
	conds []*cond
	ors   []*or
	key   string
}

// or is a disjunction of at least two conjunctions, normalized: sorted by
// their spelling, without repeats, none {} and none a lone disjunction.
type or struct {
	elems []*and
	// list is the canonical spelling of the conjunctions, a JSON array.
	list string
	key  string
}

func newAnd(conds []*cond, ors []*or) *and {
	conds = slices.Clone(conds)
	slices.SortFunc(conds, func(x, y *cond) int { return strings.Compare(x.key, y.key) })
	conds = slices.CompactFunc(conds, func(x, y *cond) bool { return x.key == y.key })
	ors = slices.Clone(ors)
	slices.SortFunc(ors, func(x, y *or) int { return strings.Compare(x.key, y.key) })
	ors = slices.CompactFunc(ors, func(x, y *or) bool { return x.key == y.key })
	a := &and{conds: conds, ors: ors}
	a.key = a.spelling()
	return a
}

// newOr returns the disjunction of elems, normalized: all when one of
// them is {} (the disjunction matches every record), else one when it
// comes down to one conjunction, else o.
func newOr(elems []*and) (o *or, one *and, all bool) {
	var flat []*and
	for _, e := range elems {
		switch {
		case len(e.conds) == 0 && len(e.ors) == 0:
			return nil, nil, true
		case len(e.conds) == 0 && len(e.ors) == 1:
			flat = append(flat, e.ors[0].elems...)
		default:
			flat = append(flat, e)
		}
	}
	slices.SortFunc(flat, func(x, y *and) int { return strings.Compare(x.key, y.key) })
	flat = slices.CompactFunc(flat, func(x, y *and) bool { return x.key == y.key })
	if len(flat) == 1 {
		return nil, flat[0], false
	}
	keys := make([]string, len(flat))
	for i, e := range flat {
		keys[i] = e.key
	}
	o = &or{elems: flat, list: "[" + strings.Join(keys, ",") + "]"}
	o.key = `{"$or":` + o.list + "}"
	return o, nil, false
}

// spelling returns the canonical spelling of the conjunction: one object,
// its keys sorted, when no path has one operator twice and there is at
// most one disjunction; else an $and of the conditions and disjunctions,
// each alone, sorted.
func (a *and) spelling() string {
	byPath := slices.Clone(a.conds)
	slices.SortFunc(byPath, func(x, y *cond) int {
		return cmp.Or(strings.Compare(x.path, y.path), cmp.Compare(x.op, y.op))
	})
	one := len(a.ors) <= 1
	for i := 1; i < len(byPath) && one; i++ {
		one = byPath[i].path != byPath[i-1].path || byPath[i].op != byPath[i-1].op
	}
	var b strings.Builder
	if !one {
		items := make([]string, 0, len(a.conds)+len(a.ors))
		for _, c := range a.conds {
			items = append(items, c.key)
		}
		for _, o := range a.ors {
			items = append(items, o.key)
		}
		slices.Sort(items)
		b.WriteString(`{"$and":[`)
		b.WriteString(strings.Join(items, ","))
		b.WriteString("]}")
		return b.String()
	}
	type member struct{ key, value string }
	members := make([]member, 0, len(byPath)+1)
	for i := 0; i < len(byPath); {
		j := i + 1
		for j < len(byPath) && byPath[j].path == byPath[i].path {
			j++
		}
		if j == i+1 {
			members = append(members, member{byPath[i].path, byPath[i].spelling()})
		} else {
			ops := make([]string, 0, j-i)
			for _, c := range byPath[i:j] {
				ops = append(ops, c.member())
			}
			members = append(members, member{byPath[i].path, "{" + strings.Join(ops, ",") + "}"})
		}
		i = j
	}
	if len(a.ors) == 1 {
		members = append(members, member{"$or", a.ors[0].list})
	}
	slices.SortFunc(members, func(x, y member) int { return strings.Compare(x.key, y.key) })
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quote(m.key))
		b.WriteByte(':')
		b.WriteString(m.value)
	}
	b.WriteByte('}')
	return b.String()
}

// And returns the conjunction of fs: a filter matching the records that
// all of them match. Nil arguments (meaning {}) are skipped; it returns nil
// when all are nil, and the one non-nil argument itself when there is one.
func And(fs ...*Filter) *Filter {
	var conds []*cond
	var ors []*or
	var last *Filter
	n := 0
	for _, f := range fs {
		if f == nil {
			continue
		}
		conds = append(conds, f.root.conds...)
		ors = append(ors, f.root.ors...)
		last = f
		n++
	}
	if n <= 1 {
		return last
	}
	return newFilter(newAnd(conds, ors))
}

// Or returns the disjunction of fs: a filter matching the records that any
// of them matches. It returns nil (meaning every record) when an argument
// is nil, the argument itself when there is one, and a filter matching no
// record when there is none.
func Or(fs ...*Filter) *Filter {
	switch {
	case len(fs) == 0:
		return newFilter(newAnd([]*cond{newCond(idPath, nil, opIn, lit{}, nil, false)}, nil))
	case slices.Contains(fs, nil):
		return nil
	case len(fs) == 1:
		return fs[0]
	}
	elems := make([]*and, len(fs))
	for i, f := range fs {
		elems[i] = f.root
	}
	o, one, all := newOr(elems)
	switch {
	case all:
		return newFilter(newAnd(nil, nil))
	case one != nil:
		return newFilter(one)
	}
	return newFilter(newAnd(nil, []*or{o}))
}

// Key returns the filter's canonical spelling, compact JSON that Parse
// reads back to the same filter. Filters equal by construction have the
// same Key: members in another order, numbers spelt otherwise (1, 1.0,
// 1e0), strings escaped otherwise, conditions repeated, $and and $or of
// one filter, $and nested in $and, $or in $or, $in and $nin in any order
// or with repeats. Key of a nil *Filter is "{}".
func (f *Filter) Key() string {
	if f == nil {
		return "{}"
	}
	return f.root.key
}

// String returns f.Key().
func (f *Filter) String() string { return f.Key() }

// MarshalJSON returns f.Key().
func (f *Filter) MarshalJSON() ([]byte, error) { return []byte(f.Key()), nil }

// Match reports whether the record id with the given value matches f: a
// convenience for f.MatchDoc(NewDoc(id, value)).
func (f *Filter) Match(id string, value json.RawMessage) bool {
	return f.MatchDoc(NewDoc(id, value))
}

// MatchDoc reports whether the record d matches f.
func (f *Filter) MatchDoc(d *Doc) bool {
	if !d.exists() {
		return false
	}
	return f == nil || f.root.match(d)
}

func (a *and) match(d *Doc) bool {
	for _, c := range a.conds {
		if !c.match(d) {
			return false
		}
	}
	for _, o := range a.ors {
		if !o.match(d) {
			return false
		}
	}
	return true
}

func (o *or) match(d *Doc) bool {
	for _, e := range o.elems {
		if e.match(d) {
			return true
		}
	}
	return false
}

func (c *cond) match(d *Doc) bool {
	if c.segs == nil {
		return c.matchID(d)
	}
	if !d.object() {
		return false
	}
	n := d.lookup(c.segs)
	if n < 0 {
		return c.op == opNe || c.op == opNin || c.op == opExists && !c.exists
	}
	nd := &d.nodes[n]
	switch c.op {
	case opEq:
		return d.s[nd.start:nd.end] == c.val.canon
	case opNe:
		return d.s[nd.start:nd.end] != c.val.canon
	case opIn:
		_, ok := slices.BinarySearch(c.canons, d.s[nd.start:nd.end])
		return ok
	case opNin:
		_, ok := slices.BinarySearch(c.canons, d.s[nd.start:nd.end])
		return !ok
	case opExists:
		return c.exists
	}
	if nd.kind != c.val.kind {
		return false
	}
	var r int
	if nd.kind == kindString {
		r = strings.Compare(d.s[nd.a:nd.b], c.val.str)
	} else {
		r = cmpNumbers(nd.neg, nd.pos, d.s[nd.a:nd.b], c.val.neg, c.val.pos, c.val.str)
	}
	return c.holds(r)
}

// matchID matches the condition on "$id", a string always present.
func (c *cond) matchID(d *Doc) bool {
	switch c.op {
	case opEq:
		return c.val.kind == kindString && c.val.str == d.id
	case opNe:
		return c.val.kind != kindString || c.val.str != d.id
	case opIn:
		_, ok := slices.BinarySearch(c.canons, d.s[d.idAt:])
		return ok
	case opNin:
		_, ok := slices.BinarySearch(c.canons, d.s[d.idAt:])
		return !ok
	case opExists:
		return c.exists
	}
	if c.val.kind != kindString {
		return false
	}
	return c.holds(strings.Compare(d.id, c.val.str))
}

// holds reports whether the ordering operator holds of a value comparing
// r (-1, 0, +1) to the operand.
func (c *cond) holds(r int) bool {
	switch c.op {
	case opLt:
		return r < 0
	case opLte:
		return r <= 0
	case opGt:
		return r > 0
	default: // opGte
		return r >= 0
	}
}
