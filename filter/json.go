package filter

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The one JSON reader of the package, for filters and records alike. It
// reads the text once into a tree, then lays the tree out in canonical
// order: every object's members sorted by key, every number and string in
// one spelling. The result is a single string holding the decoded keys,
// strings and number digits followed by the canonical encoding of the
// whole value, and a flat slice of nodes whose spans point into that
// string; the canonical encoding of any value inside is then a substring,
// and an object's members are contiguous nodes sorted by key.
//
// The canonical encoding of a value:
//   - an object's members are sorted by key (bytes of the decoded key);
//   - a string escapes '"', '\\' and the control characters (as \b \f \n
//     \r \t, others as \u00xx), nothing else;
//   - a number is written as JavaScript's Number.prototype.toString would
//     write its exact decimal value: 1, 1.0, 1e0 and 10e-1 are all "1";
//     -0 is "0"; 1e21 is "1e+21", 1e-7 "1e-7", 0.000001 "0.000001".
// Two JSON values are equal (objects key-order-insensitively, arrays in
// order, numbers by value) exactly when their canonical encodings are.

// kind is the type of a JSON value.
type kind uint8

const (
	kindNull kind = iota + 1
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindArray
	kindObject
)

// scalar reports whether k is neither an array nor an object.
func (k kind) scalar() bool { return k != kindArray && k != kindObject }

// maxNesting bounds the nesting of arrays and objects the scanner reads,
// as encoding/json does.
const maxNesting = 10000

// maxInput bounds the text the scanner reads, so that every offset into
// its output fits in an int32.
const maxInput = 1 << 28

// maxExponent bounds a number's decimal exponent.
const maxExponent = 1 << 30

// node is a value of a laid out tree.
type node struct {
	kind kind
	// neg is set on negative numbers.
	neg bool
	// pos is a number's decimal exponent: its value is 0.DIGITS × 10^pos.
	pos int32
	// start and end span the value's canonical encoding.
	start, end int32
	// k0 and k1 span the decoded key of an object's member.
	k0, k1 int32
	// A string's decoded bytes or a number's significant digits (none
	// for zero) span a to b. An array's or object's members are the
	// nodes a to a+b.
	a, b int32
}

// tnode is a value of the tree being read.
type tnode struct {
	kind   kind
	neg    bool
	pos    int32
	k0, k1 int32
	a, b   int32
	// A container's members are first and its next siblings, n of them.
	first, last, next int32
	n                 int32
}

// scanner reads one JSON text. Its buffers are reused (see scanners).
type scanner struct {
	in []byte
	i  int
	// strict refuses a repeated key and a lone surrogate escape ("\ud800"),
	// which a record's reading tolerates.
	strict bool
	depth  int
	// buf holds the decoded strings, then the canonical encoding.
	buf   []byte
	t     []tnode
	stack []int32
	free  int32
	// err is the first problem found; empty while there is none.
	err string
}

var scanners = sync.Pool{New: func() any { return new(scanner) }}

// getScanner returns a scanner, from the pool, to read in.
func getScanner(in []byte, strict bool) *scanner {
	s := scanners.Get().(*scanner)
	s.in, s.i, s.strict, s.depth, s.free, s.err = in, 0, strict, 0, 0, ""
	s.buf, s.t, s.stack = s.buf[:0], s.t[:0], s.stack[:0]
	return s
}

// putScanner returns s to the pool, unless it grew large.
func putScanner(s *scanner) {
	if cap(s.buf) > 1<<16 || cap(s.t) > 1<<12 {
		return
	}
	s.in = nil
	scanners.Put(s)
}

// read reads the whole input as one JSON value and lays it out. It
// returns the nodes, the first being the value, or nil with s.err set.
func (s *scanner) read() []node {
	if len(s.in) > maxInput {
		s.fail("text too large")
		return nil
	}
	root := s.value()
	if root < 0 {
		return nil
	}
	s.space()
	if s.i < len(s.in) {
		s.failf("data after the value, at offset %d", s.i)
		return nil
	}
	nodes := make([]node, len(s.t))
	s.free = 1
	if !s.layout(root, 0, nodes) {
		return nil
	}
	return nodes
}

func (s *scanner) fail(msg string) int32 {
	if s.err == "" {
		s.err = msg
	}
	return -1
}

func (s *scanner) failf(format string, args ...any) int32 {
	return s.fail(fmt.Sprintf(format, args...))
}

func (s *scanner) space() {
	for s.i < len(s.in) {
		switch s.in[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) add(t tnode) int32 {
	s.t = append(s.t, t)
	return int32(len(s.t) - 1)
}

// link appends member m to container c.
func (s *scanner) link(c, m int32) {
	s.t[m].next = -1
	if s.t[c].last < 0 {
		s.t[c].first = m
	} else {
		s.t[s.t[c].last].next = m
	}
	s.t[c].last = m
	s.t[c].n++
}

// value reads a value and returns its index in s.t, or -1.
func (s *scanner) value() int32 {
	s.space()
	if s.i >= len(s.in) {
		return s.fail("unexpected end of the text")
	}
	switch c := s.in[s.i]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		a, ok := s.str()
		if !ok {
			return -1
		}
		return s.add(tnode{kind: kindString, a: a, b: int32(len(s.buf))})
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true", kindTrue)
	case c == 'f':
		return s.literal("false", kindFalse)
	case c == 'n':
		return s.literal("null", kindNull)
	default:
		return s.failf("unexpected %s at offset %d", quoteByte(c), s.i)
	}
}

func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte %#x", c)
}

func (s *scanner) literal(word string, k kind) int32 {
	if !bytes.HasPrefix(s.in[s.i:], []byte(word)) {
		return s.failf("unexpected %s at offset %d", quoteByte(s.in[s.i]), s.i)
	}
	s.i += len(word)
	return s.add(tnode{kind: k})
}

func (s *scanner) enter() bool {
	s.depth++
	if s.depth > maxNesting {
		s.failf("arrays and objects nested more than %d deep", maxNesting)
		return false
	}
	return true
}

func (s *scanner) object() int32 {
	if !s.enter() {
		return -1
	}
	s.i++ // '{'
	obj := s.add(tnode{kind: kindObject, first: -1, last: -1})
	s.space()
	if s.i < len(s.in) && s.in[s.i] == '}' {
		s.i++
		s.depth--
		return obj
	}
	for {
		s.space()
		if s.i >= len(s.in) || s.in[s.i] != '"' {
			if s.i >= len(s.in) {
				return s.fail("unexpected end of the text")
			}
			return s.failf("expected a string key at offset %d", s.i)
		}
		k0, ok := s.str()
		if !ok {
			return -1
		}
		k1 := int32(len(s.buf))
		s.space()
		if s.i >= len(s.in) || s.in[s.i] != ':' {
			return s.failf("expected ':' at offset %d", s.i)
		}
		s.i++
		m := s.value()
		if m < 0 {
			return -1
		}
		s.t[m].k0, s.t[m].k1 = k0, k1
		s.link(obj, m)
		s.space()
		if s.i >= len(s.in) {
			return s.fail("unexpected end of the text")
		}
		switch s.in[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return obj
		default:
			return s.failf("expected ',' or '}' at offset %d", s.i)
		}
	}
}

func (s *scanner) array() int32 {
	if !s.enter() {
		return -1
	}
	s.i++ // '['
	arr := s.add(tnode{kind: kindArray, first: -1, last: -1})
	s.space()
	if s.i < len(s.in) && s.in[s.i] == ']' {
		s.i++
		s.depth--
		return arr
	}
	for {
		m := s.value()
		if m < 0 {
			return -1
		}
		s.link(arr, m)
		s.space()
		if s.i >= len(s.in) {
			return s.fail("unexpected end of the text")
		}
		switch s.in[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return arr
		default:
			return s.failf("expected ',' or ']' at offset %d", s.i)
		}
	}
}

// str reads a string, appending its decoded bytes to s.buf, and returns
// where they start there.
func (s *scanner) str() (int32, bool) {
	s.i++ // '"'
	a := int32(len(s.buf))
	for {
		j := s.i
		for j < len(s.in) {
			c := s.in[j]
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			j++
		}
		s.buf = append(s.buf, s.in[s.i:j]...)
		s.i = j
		if j >= len(s.in) {
			s.fail("unterminated string")
			return 0, false
		}
		switch c := s.in[j]; {
		case c == '"':
			s.i++
			return a, true
		case c == '\\':
			if !s.escape() {
				return 0, false
			}
		case c < 0x20:
			s.failf("control character %U in a string at offset %d", c, j)
			return 0, false
		default:
			r, size := utf8.DecodeRune(s.in[j:])
			if r == utf8.RuneError && size == 1 {
				s.failf("invalid UTF-8 at offset %d", j)
				return 0, false
			}
			s.buf = append(s.buf, s.in[j:j+size]...)
			s.i += size
		}
	}
}

// escape reads the escape sequence at s.i.
func (s *scanner) escape() bool {
	at := s.i
	if at+1 >= len(s.in) {
		s.fail("unterminated string")
		return false
	}
	var c byte
	switch s.in[at+1] {
	case '"', '\\', '/':
		c = s.in[at+1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r, ok := hex4(s.in, at+2)
		if !ok {
			s.failf(`bad \u escape at offset %d`, at)
			return false
		}
		s.i = at + 6
		if utf16.IsSurrogate(r) {
			if r < 0xdc00 && s.i+1 < len(s.in) && s.in[s.i] == '\\' && s.in[s.i+1] == 'u' {
				if r2, ok := hex4(s.in, s.i+2); ok && r2 >= 0xdc00 && r2 < 0xe000 {
					s.buf = utf8.AppendRune(s.buf, utf16.DecodeRune(r, r2))
					s.i += 6
					return true
				}
			}
			if s.strict {
				s.failf(`lone surrogate escape \u%04x in a string at offset %d`, r, at)
				return false
			}
			r = utf8.RuneError
		}
		s.buf = utf8.AppendRune(s.buf, r)
		return true
	default:
		s.failf("bad escape %s at offset %d", quoteByte(s.in[at+1]), at)
		return false
	}
	s.buf = append(s.buf, c)
	s.i = at + 2
	return true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number reads a number, appending its significant digits to s.buf.
func (s *scanner) number() int32 {
	start := s.i
	in := s.in
	neg := false
	if in[s.i] == '-' {
		neg = true
		s.i++
	}
	intStart := s.i
	switch {
	case s.i < len(in) && in[s.i] == '0':
		s.i++
	case s.i < len(in) && in[s.i] >= '1' && in[s.i] <= '9':
		for s.i < len(in) && isDigit(in[s.i]) {
			s.i++
		}
	default:
		return s.failf("bad number at offset %d", start)
	}
	intEnd := s.i
	fracStart, fracEnd := s.i, s.i
	if s.i < len(in) && in[s.i] == '.' {
		s.i++
		fracStart = s.i
		for s.i < len(in) && isDigit(in[s.i]) {
			s.i++
		}
		fracEnd = s.i
		if fracStart == fracEnd {
			return s.failf("bad number at offset %d", start)
		}
	}
	exp := int64(0)
	if s.i < len(in) && (in[s.i] == 'e' || in[s.i] == 'E') {
		s.i++
		expNeg := false
		if s.i < len(in) && (in[s.i] == '+' || in[s.i] == '-') {
			expNeg = in[s.i] == '-'
			s.i++
		}
		expStart := s.i
		for s.i < len(in) && isDigit(in[s.i]) {
			if exp <= maxExponent {
				exp = exp*10 + int64(in[s.i]-'0')
			}
			s.i++
		}
		if s.i == expStart {
			return s.failf("bad number at offset %d", start)
		}
		if expNeg {
			exp = -exp
		}
	}

	// The significant digits: no leading or trailing zeros.
	a := len(s.buf)
	lead := 0
	for _, part := range [2][]byte{in[intStart:intEnd], in[fracStart:fracEnd]} {
		for _, c := range part {
			if c == '0' && len(s.buf) == a {
				lead++
				continue
			}
			s.buf = append(s.buf, c)
		}
	}
	for len(s.buf) > a && s.buf[len(s.buf)-1] == '0' {
		s.buf = s.buf[:len(s.buf)-1]
	}
	if len(s.buf) == a { // zero, whatever its sign and exponent
		return s.add(tnode{kind: kindNumber, a: int32(a), b: int32(a)})
	}
	pos := int64(intEnd-intStart-lead) + exp
	if pos > maxExponent || pos < -maxExponent {
		return s.failf("number out of range at offset %d", start)
	}
	return s.add(tnode{kind: kindNumber, neg: neg, pos: int32(pos), a: int32(a), b: int32(len(s.buf))})
}

// layout writes the canonical encoding of tree node ti to s.buf and lays
// it out as nodes[ni], its members (if any) at s.free on.
func (s *scanner) layout(ti, ni int32, nodes []node) bool {
	t := s.t[ti]
	n := &nodes[ni]
	n.kind, n.neg, n.pos, n.k0, n.k1 = t.kind, t.neg, t.pos, t.k0, t.k1
	start := int32(len(s.buf))
	switch t.kind {
	case kindNull:
		s.buf = append(s.buf, "null"...)
	case kindFalse:
		s.buf = append(s.buf, "false"...)
	case kindTrue:
		s.buf = append(s.buf, "true"...)
	case kindNumber:
		n.a, n.b = t.a, t.b
		s.buf = appendNumber(s.buf, t.neg, s.buf[t.a:t.b], t.pos)
	case kindString:
		n.a, n.b = t.a, t.b
		s.buf = appendQuoted(s.buf, s.buf[t.a:t.b])
	case kindArray:
		n.a, n.b = s.free, t.n
		s.free += t.n
		s.buf = append(s.buf, '[')
		j := n.a
		for m := t.first; m >= 0; m = s.t[m].next {
			if j > n.a {
				s.buf = append(s.buf, ',')
			}
			if !s.layout(m, j, nodes) {
				return false
			}
			j++
		}
		s.buf = append(s.buf, ']')
	case kindObject:
		n.a, n.b = s.free, t.n
		s.free += t.n
		base := len(s.stack)
		for m := t.first; m >= 0; m = s.t[m].next {
			s.stack = append(s.stack, m)
		}
		members := s.stack[base:]
		s.sortMembers(members)
		for j := 1; j < len(members); j++ {
			if bytes.Equal(s.key(members[j-1]), s.key(members[j])) {
				if s.strict {
					s.failf("duplicate key %q", s.key(members[j]))
					return false
				}
				s.fail("duplicate key")
				return false
			}
		}
		s.buf = append(s.buf, '{')
		for j := range t.n {
			m := s.stack[base+int(j)] // s.stack may have moved
			if j > 0 {
				s.buf = append(s.buf, ',')
			}
			mt := s.t[m]
			s.buf = appendQuoted(s.buf, s.buf[mt.k0:mt.k1])
			s.buf = append(s.buf, ':')
			if !s.layout(m, n.a+j, nodes) {
				return false
			}
		}
		s.buf = append(s.buf, '}')
		s.stack = s.stack[:base]
	}
	if len(s.buf) > math.MaxInt32 {
		s.fail("text too large")
		return false
	}
	n.start, n.end = start, int32(len(s.buf))
	return true
}

// key returns the decoded key of tree node m, in s.buf.
func (s *scanner) key(m int32) []byte { return s.buf[s.t[m].k0:s.t[m].k1] }

// sortMembers sorts an object's members by key.
func (s *scanner) sortMembers(ms []int32) {
	if len(ms) <= 12 {
		for i := 1; i < len(ms); i++ {
			for j := i; j > 0 && bytes.Compare(s.key(ms[j]), s.key(ms[j-1])) < 0; j-- {
				ms[j], ms[j-1] = ms[j-1], ms[j]
			}
		}
		return
	}
	slices.SortFunc(ms, func(x, y int32) int { return bytes.Compare(s.key(x), s.key(y)) })
}

// appendQuoted appends the canonical encoding of the string s: '"', '\\'
// and control characters escaped, invalid UTF-8 as U+FFFD, the rest as
// is.
func appendQuoted[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
