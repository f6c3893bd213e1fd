package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// The one JSON scanner of the package. scanJSON checks text in one pass,
// without recursion: UTF-8, JSON syntax, nesting depth and, when strict,
// the value rules (see Limits.CheckValue). Every input from outside goes
// through it first: values, WebSocket messages, HTTP bodies (CheckObject
// and the Decode functions); the functions of fields.go then only split
// the checked text.

// CheckObject checks that b is one JSON object in UTF-8, with nothing after
// it but whitespace, that keeps the value rules (see Limits.CheckValue)
// everywhere in it, its nesting aside: above all, no object, at any depth,
// repeats a key (keys compare after unescaping, case-sensitively).
// encoding/json silently keeps the last of repeated keys; CheckObject
// refuses what two decoders could read differently, for input such as a
// token's claims that is decoded with encoding/json afterwards. An error
// names the broken rule; for a repeated key, with the path to it, such as
// `field "viewsync": duplicate field "read"`.
func CheckObject(b []byte) error {
	if err := scanJSON(b, 0, true); err != nil {
		return errors.New(err.(*scanError).msg)
	}
	if b[skipSpace(b, 0)] != '{' {
		return errors.New("not a JSON object")
	}
	return nil
}

// scanError is an error of scanJSON. A syntax error means the text is not
// JSON; any other breaks a value rule in text that may still be JSON.
type scanError struct {
	syntax bool
	// sentinel is the error wrapped: ErrBadValue, or ErrTooDeep.
	sentinel error
	// msg says what is wrong.
	msg string
}

func (e *scanError) Error() string { return e.sentinel.Error() + ": " + e.msg }

func (e *scanError) Unwrap() error { return e.sentinel }

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
		return &scanError{syntax: true, sentinel: ErrBadValue, msg: "not valid UTF-8"}
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
	return &scanError{syntax: true, sentinel: ErrBadValue, msg: fmt.Sprintf("not valid JSON: "+format+" at byte %d", append(args, i)...)}
}

func (s *scanner) rulef(sentinel error, format string, args ...any) error {
	return &scanError{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
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
		if err := s.addKey(k, i); err != nil {
			return 0, err
		}
	}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return 0, s.unexpected(i, "':' after an object key")
	}
	return skipSpace(b, i+1), nil
}

// addKey records k, the key at b[at], as a key of the innermost object,
// refusing a repeat.
func (s *scanner) addKey(k []byte, at int) error {
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
		return s.rulef(ErrBadValue, "%sduplicate field %q", pathTo(s.b, at), truncate(string(k)))
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

// pathTo describes where the key at b[end] is, for an error message: the
// fields and elements that lead to the object holding it, each followed
// by ": ", such as `field "a": element 1: `; the outermost and innermost
// few of a long path. b[:end] must have been scanned without error.
func pathTo(b []byte, end int) string {
	type level struct {
		object bool
		key    string // the key whose value is open, in an object
		index  int    // the element open, in an array
	}
	var levels []level
	for i := 0; i < end; {
		switch b[i] {
		case '{', '[':
			levels = append(levels, level{object: b[i] == '{'})
		case '}', ']':
			levels = levels[:len(levels)-1]
		case ',':
			if top := &levels[len(levels)-1]; !top.object {
				top.index++
			}
		case '"':
			j := endOfString(b, i)
			if top := &levels[len(levels)-1]; top.object {
				if k := skipSpace(b, j); k < len(b) && b[k] == ':' {
					key, err := unquote(b[i:j])
					if err != nil {
						key = string(b[i+1 : j-1])
					}
					top.key = key
				}
			}
			i = j
			continue
		}
		i++
	}
	const ends = 4 // levels shown at each end of a long path
	var sb strings.Builder
	outer := levels[:max(len(levels)-1, 0)]
	for n, l := range outer {
		if len(outer) > 2*ends && n >= ends && n < len(outer)-ends {
			if n == ends {
				fmt.Fprintf(&sb, "(%d levels): ", len(outer)-2*ends)
			}
			continue
		}
		if l.object {
			fmt.Fprintf(&sb, "field %q: ", truncate(l.key))
		} else {
			fmt.Fprintf(&sb, "element %d: ", l.index)
		}
	}
	return sb.String()
}
