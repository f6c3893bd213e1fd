package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The value rules. A value written (a record's value, a merge patch, a
// call's argument) must be one JSON value that every client library decodes
// to what was sent, inside any answer that carries it:
//
//   - UTF-8, and valid JSON with nothing after the value;
//   - no object, at any depth, repeats a key (keys compare after
//     unescaping): decoders disagree on which of two to keep;
//   - no string, key or value, holds a lone UTF-16 surrogate escape
//     ("\ud800" without its pair): decoders replace it, so it cannot be
//     read back as sent;
//   - every number is within the range of float64 (1e400 is not): clients
//     such as JavaScript's cannot decode one outside it;
//   - arrays and objects nest at most MaxValueDepth levels deep, or less
//     as a Limits says: an answer wraps a value in a few more levels, and
//     decoders have depth limits of their own (encoding/json 10,000;
//     System.Text.Json 64, Ruby's JSON 100, serde_json 128 by default).

// MaxValueDepth is the deepest nesting of arrays and objects any value may
// have, whatever a Limits says: a scalar is at depth 0, [] and {} at 1,
// [[]] at 2.
const MaxValueDepth = 512

// ErrTooDeep is returned (wrapped) for a value whose arrays and objects
// nest deeper than the limit. It matches ErrBadValue.
var ErrTooDeep = fmt.Errorf("%w: nested too deep", ErrBadValue)

// Limits bounds the ops of a write. A zero field means the contract's
// bound: MaxIDLen for an id, no bound on a value's size, MaxValueDepth for
// its nesting.
type Limits struct {
	// MaxIDBytes bounds a record id, at most MaxIDLen.
	MaxIDBytes int
	// MaxValueBytes bounds a value, compact.
	MaxValueBytes int
	// MaxValueDepth bounds the nesting of a value, at most MaxValueDepth.
	MaxValueDepth int
}

// depth returns the nesting bound in force.
func (l Limits) depth() int {
	if l.MaxValueDepth <= 0 || l.MaxValueDepth > MaxValueDepth {
		return MaxValueDepth
	}
	return l.MaxValueDepth
}

// CheckValue checks v against the value rules within l and returns it
// without insignificant whitespace (v itself when it is already compact).
// A value over MaxValueBytes fails with ErrTooLarge, one nested too deep
// with ErrTooDeep, any other with ErrBadValue; the message names the rule
// or the limit.
func (l Limits) CheckValue(v json.RawMessage) (json.RawMessage, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadValue)
	}
	if err := scanJSON(v, l.depth(), true); err != nil {
		return nil, err
	}
	if !isCompact(v) {
		var buf bytes.Buffer
		buf.Grow(len(v))
		if err := json.Compact(&buf, v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadValue, err)
		}
		v = buf.Bytes()
	}
	if l.MaxValueBytes > 0 && len(v) > l.MaxValueBytes {
		return nil, fmt.Errorf("%w: value is %d bytes, limit %d", ErrTooLarge, len(v), l.MaxValueBytes)
	}
	return v, nil
}

// NormalizeOp validates op within l, its value by the value rules (see
// CheckValue), and compacts the value.
func (l Limits) NormalizeOp(op Op) (Op, error) {
	if err := ValidateID(op.ID, l.MaxIDBytes); err != nil {
		return op, err
	}
	switch op.Op {
	case OpPut:
		v, err := l.CheckValue(op.Value)
		if err != nil {
			return op, fmt.Errorf("put %q: %w", op.ID, err)
		}
		op.Value = v
	case OpDelete:
		if len(op.Value) != 0 {
			return op, fmt.Errorf("%w: delete %q carries a value", ErrBadOp, op.ID)
		}
	default:
		return op, fmt.Errorf("%w: unknown op %q (want put or delete)", ErrBadOp, op.Op)
	}
	return op, nil
}

// scanError is an error of scanJSON. A syntax error means the text is not
// JSON; any other breaks a value rule in text that may still be JSON.
type scanError struct {
	syntax bool
	err    error
}

func (e *scanError) Error() string { return e.err.Error() }
func (e *scanError) Unwrap() error { return e.err }

// isSyntaxError reports whether err is a scanJSON error saying that the
// text is not JSON at all.
func isSyntaxError(err error) bool {
	var se *scanError
	return errors.As(err, &se) && se.syntax
}

// keyIndex is how many keys an object may have before its keys are
// indexed in a map rather than compared one by one.
const keyIndex = 16

// openObject is an open object whose keys a strict scan tracks.
type openObject struct {
	// keys is where the object's keys start in scanner.keys.
	keys int
	// set indexes the keys of an object with more than keyIndex.
	set map[string]struct{}
}

// scanner checks JSON text without recursion, in one pass. An open array
// or object costs it one bit, and an open object a few words more when
// strict.
type scanner struct {
	b        []byte
	maxDepth int
	strict   bool
	// depth is how many arrays and objects are open; bit i of kinds is set
	// when the one at depth i+1 is an object.
	depth int
	kinds []uint64
	// objects are the open objects, innermost last, when strict.
	objects []openObject
	// keys are the keys of the open objects, innermost last; they share
	// b's memory unless they held escapes.
	keys [][]byte
}

// push opens an array or object.
func (s *scanner) push(object bool) {
	w, bit := s.depth/64, uint64(1)<<(s.depth%64)
	if w == len(s.kinds) {
		s.kinds = append(s.kinds, 0)
	}
	if object {
		s.kinds[w] |= bit
		if s.strict {
			s.objects = append(s.objects, openObject{keys: len(s.keys)})
		}
	} else {
		s.kinds[w] &^= bit
	}
	s.depth++
}

// inObject reports whether the innermost open array or object is an
// object.
func (s *scanner) inObject() bool {
	d := s.depth - 1
	return s.kinds[d/64]&(1<<(d%64)) != 0
}

// pop closes the innermost array or object.
func (s *scanner) pop() {
	if s.strict && s.inObject() {
		top := s.objects[len(s.objects)-1]
		clear(s.keys[top.keys:])
		s.keys = s.keys[:top.keys]
		s.objects = s.objects[:len(s.objects)-1]
	}
	s.depth--
}

// scanJSON checks that b is one JSON value in UTF-8 with nothing after it
// but whitespace, nested at most maxDepth deep (maxDepth <= 0: no bound).
// With strict, it also refuses what the value rules do: repeated keys,
// lone surrogate escapes and numbers out of the range of float64. Errors
// wrap ErrBadValue (ErrTooDeep for the depth).
func scanJSON(b []byte, maxDepth int, strict bool) error {
	if !utf8.Valid(b) {
		return &scanError{syntax: true, err: fmt.Errorf("%w: not valid UTF-8", ErrBadValue)}
	}
	s := scanners.Get().(*scanner)
	*s = scanner{b: b, maxDepth: maxDepth, strict: strict, kinds: s.kinds[:0], objects: s.objects[:0], keys: s.keys[:0]}
	err := s.run()
	// Keep no reference to b, and no large buffer.
	clear(s.keys)
	clear(s.objects[:cap(s.objects)])
	s.b = nil
	if cap(s.kinds) <= 16 && cap(s.objects) <= 64 && cap(s.keys) <= 256 {
		scanners.Put(s)
	}
	return err
}

// scanners keeps scanners' buffers from one scan to the next.
var scanners = sync.Pool{New: func() any { return new(scanner) }}

func (s *scanner) syntaxf(i int, format string, args ...any) error {
	return &scanError{syntax: true, err: fmt.Errorf("%w: not valid JSON: "+format+" at byte %d", append(append([]any{ErrBadValue}, args...), i)...)}
}

func (s *scanner) rulef(sentinel error, format string, args ...any) error {
	return &scanError{err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// unexpected describes the byte at i, or the end of the input.
func (s *scanner) unexpected(i int, want string) error {
	if i >= len(s.b) {
		return s.syntaxf(i, "unexpected end of input, want %s", want)
	}
	return s.syntaxf(i, "unexpected %q, want %s", s.b[i], want)
}

func (s *scanner) run() error {
	b := s.b
	i := skipSpace(b, 0)
	value := true // a value starts at i; else one just ended before i
	for {
		if value {
			if i >= len(b) {
				return s.unexpected(i, "a value")
			}
			var err error
			switch c := b[i]; {
			case c == '{' || c == '[':
				if s.maxDepth > 0 && s.depth >= s.maxDepth {
					return s.rulef(ErrTooDeep, "arrays and objects nest more than %d levels deep, the limit", s.maxDepth)
				}
				s.push(c == '{')
				i = skipSpace(b, i+1)
				if i < len(b) && (c == '{' && b[i] == '}' || c == '[' && b[i] == ']') {
					s.pop()
					i++
					value = false
					continue
				}
				if c == '{' {
					if i, err = s.key(i); err != nil {
						return err
					}
				}
				continue
			case c == '"':
				i, _, err = s.str(i)
			case c == '-' || c >= '0' && c <= '9':
				i, err = s.number(i)
			case c == 't':
				i, err = s.literal(i, "true")
			case c == 'f':
				i, err = s.literal(i, "false")
			case c == 'n':
				i, err = s.literal(i, "null")
			default:
				return s.unexpected(i, "a value")
			}
			if err != nil {
				return err
			}
			value = false
		}
		i = skipSpace(b, i)
		if s.depth == 0 {
			if i != len(b) {
				return s.syntaxf(i, "data after the value")
			}
			return nil
		}
		object := s.inObject()
		switch {
		case i >= len(b):
			return s.unexpected(i, "',' or the end of the array or object")
		case b[i] == ',':
			i = skipSpace(b, i+1)
			if object {
				var err error
				if i, err = s.key(i); err != nil {
					return err
				}
			}
			value = true
		case object && b[i] == '}', !object && b[i] == ']':
			s.pop()
			i++
		case object:
			return s.unexpected(i, "',' or '}'")
		default:
			return s.unexpected(i, "',' or ']'")
		}
	}
}

// key reads an object's key and its colon at i, refusing a key the object
// already has, and returns where the value starts.
func (s *scanner) key(i int) (int, error) {
	b := s.b
	if i >= len(b) || b[i] != '"' {
		return 0, s.unexpected(i, "a string key")
	}
	end, escaped, err := s.str(i)
	if err != nil {
		return 0, err
	}
	if s.strict {
		k := b[i+1 : end-1]
		if escaped {
			var str string
			if err := json.Unmarshal(b[i:end], &str); err != nil {
				return 0, s.syntaxf(i, "%v", err)
			}
			k = []byte(str)
		}
		if err := s.addKey(k); err != nil {
			return 0, err
		}
	}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return 0, s.unexpected(i, "':' after an object key")
	}
	return skipSpace(b, i+1), nil
}

// addKey records k as a key of the innermost object, refusing a repeat.
func (s *scanner) addKey(k []byte) error {
	top := &s.objects[len(s.objects)-1]
	dup := false
	if top.set != nil {
		_, dup = top.set[string(k)]
		if !dup {
			top.set[string(k)] = struct{}{}
		}
	} else {
		for _, o := range s.keys[top.keys:] {
			if bytes.Equal(o, k) {
				dup = true
				break
			}
		}
		if !dup && len(s.keys)-top.keys >= keyIndex {
			top.set = make(map[string]struct{}, 2*keyIndex)
			for _, o := range s.keys[top.keys:] {
				top.set[string(o)] = struct{}{}
			}
			top.set[string(k)] = struct{}{}
		}
	}
	if dup {
		return s.rulef(ErrBadValue, "duplicate field %q in an object", truncate(string(k)))
	}
	if top.set == nil {
		s.keys = append(s.keys, k)
	}
	return nil
}

// str reads the string starting at b[i] == '"' and returns the index just
// past it and whether it holds escapes.
func (s *scanner) str(i int) (end int, escaped bool, err error) {
	b := s.b
	for j := i + 1; j < len(b); {
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c < 0x20:
			return 0, false, s.syntaxf(j, "control character %U in a string", rune(c))
		case c != '\\':
			j++
			continue
		}
		escaped = true
		if j+1 >= len(b) {
			break
		}
		switch b[j+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			j += 2
			continue
		case 'u':
		default:
			return 0, false, s.syntaxf(j, "invalid escape %q in a string", b[j:j+2])
		}
		r, ok := hex4(b, j+2)
		if !ok {
			return 0, false, s.syntaxf(j, "invalid \\u escape in a string")
		}
		j += 6
		if !s.strict || r < 0xD800 || r >= 0xE000 {
			continue
		}
		if r < 0xDC00 && j+1 < len(b) && b[j] == '\\' && b[j+1] == 'u' {
			if lo, ok := hex4(b, j+2); ok && lo >= 0xDC00 && lo < 0xE000 {
				j += 6
				continue
			}
		}
		return 0, false, s.rulef(ErrBadValue, "lone UTF-16 surrogate %s in a string (at byte %d): it cannot be decoded as sent", b[j-6:j], j-6)
	}
	return 0, false, s.unexpected(len(b), "the end of a string")
}

// hex4 decodes the four hex digits at b[i:i+4].
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

// number reads the number starting at b[i] and returns the index just
// past it. Strict, it refuses one outside the range of float64.
func (s *scanner) number(i int) (int, error) {
	b := s.b
	j := i
	if b[j] == '-' {
		j++
	}
	digits := func() int {
		n := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
			n++
		}
		return n
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		digits()
	default:
		return 0, s.unexpected(j, "a digit")
	}
	intEnd := j
	if j < len(b) && b[j] == '.' {
		j++
		if digits() == 0 {
			return 0, s.unexpected(j, "a digit after '.'")
		}
	}
	exp := j < len(b) && (b[j] == 'e' || b[j] == 'E')
	if exp {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return 0, s.unexpected(j, "a digit in an exponent")
		}
	}
	// Without an exponent, fewer than 309 digits before the point stay
	// below 1e308, inside the range.
	if s.strict && (exp || intEnd-i > 308) {
		if _, err := strconv.ParseFloat(string(b[i:j]), 64); err != nil {
			return 0, s.rulef(ErrBadValue, "number %s is out of the range of float64", truncate(string(b[i:j])))
		}
	}
	return j, nil
}

// literal reads true, false or null at b[i].
func (s *scanner) literal(i int, lit string) (int, error) {
	if !bytes.HasPrefix(s.b[i:], []byte(lit)) {
		return 0, s.syntaxf(i, "invalid literal, want %s", lit)
	}
	return i + len(lit), nil
}
