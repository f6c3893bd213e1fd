package pgsource

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// appendValue appends the JSON form of a column's text form s (as
// PostgreSQL prints it with DateStyle ISO, TimeZone UTC, bytea_output hex,
// IntervalStyle iso_8601, extra_float_digits 1) of type t.
func appendValue(dst []byte, t *pgType, s string) []byte {
	switch t.kind {
	case kindBool:
		if s == "t" || s == "true" {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case kindNumber:
		return appendNumber(dst, s)
	case kindFloat:
		if !jsonNumber(s) {
			return appendString(dst, s) // NaN, Infinity, -Infinity
		}
		return append(dst, s...)
	case kindJSON:
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(s)); err != nil {
			return appendString(dst, s)
		}
		return append(dst, buf.Bytes()...)
	case kindTimestamptz:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
			if ts, err := time.Parse(layout, s); err == nil {
				return appendString(dst, ts.UTC().Format(time.RFC3339Nano))
			}
		}
		return appendString(dst, s) // infinity, BC, years past 9999
	case kindTimestamp:
		if len(s) > 10 && s[10] == ' ' && s[4] == '-' {
			return appendString(dst, s[:10]+"T"+s[11:])
		}
		return appendString(dst, s)
	case kindBytea:
		if b, err := hex.DecodeString(strings.TrimPrefix(s, `\x`)); err == nil && strings.HasPrefix(s, `\x`) {
			return appendString(dst, base64.StdEncoding.EncodeToString(b))
		}
		return appendString(dst, s)
	case kindArray:
		a, err := parseArray(s, t.delim)
		if err != nil {
			return appendString(dst, s)
		}
		return appendArray(dst, t.elem, a)
	}
	return appendString(dst, s)
}

// appendArray appends a parsed array, its elements of type elem.
func appendArray(dst []byte, elem *pgType, a arrayNode) []byte {
	dst = append(dst, '[')
	for i, k := range a.elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch {
		case k.elems != nil:
			dst = appendArray(dst, elem, k)
		case k.null:
			dst = append(dst, "null"...)
		default:
			dst = appendValue(dst, elem, k.text)
		}
	}
	return append(dst, ']')
}

// appendNumber appends an integer or numeric: a JSON number when a double
// holds its value without loss (the shortest form of the nearest double
// is the same decimal value: 12.50, 0.1, 9007199254740992), else a JSON
// string of its text (12345678901234567891, 0.10000000000000000001; NaN
// and the infinities too).
func appendNumber(dst []byte, s string) []byte {
	if smallInteger(s) || exactDouble(s) {
		return append(dst, s...)
	}
	return appendString(dst, s)
}

// smallInteger reports whether s is an integer in JSON's grammar of at
// most 15 digits, which a double holds exactly: the common case of
// appendNumber, without exactDouble's cost.
func smallInteger(s string) bool {
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > 15 || (d[0] == '0' && len(d) > 1) {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// exactDouble reports whether the decimal s is a valid JSON number whose
// value the nearest double has exactly as its shortest decimal form.
func exactDouble(s string) bool {
	if !jsonNumber(s) {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return false
	}
	want, ok := new(big.Rat).SetString(s)
	if !ok {
		return false
	}
	got, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return ok && want.Cmp(got) == 0
}

// jsonNumber reports whether s is a number in JSON's grammar.
func jsonNumber(s string) bool {
	if s == "" || !(s[0] == '-' || ('0' <= s[0] && s[0] <= '9')) {
		return false
	}
	var v any
	return json.Unmarshal([]byte(s), &v) == nil
}

// appendString appends s as a JSON string, as json.Marshal writes it.
func appendString(dst []byte, s string) []byte {
	if plainString(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

// plainString reports whether s is printable ASCII that json.Marshal
// writes as it is: no quote, backslash, or <, > and & (which it escapes
// for HTML).
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// arrayNode is a parsed array (elems not nil) or element.
type arrayNode struct {
	elems []arrayNode
	null  bool
	text  string
}

// errBadArray: text that is not an array's text form.
var errBadArray = errors.New("not an array's text form")

// parseArray parses PostgreSQL's text form of an array: an optional
// dimensions decoration ("[0:1]="), then {…} of elements separated by
// delim, each an array, a double-quoted string (backslash escapes), NULL,
// or an unquoted string (trimmed, backslash escapes).
func parseArray(s string, delim byte) (arrayNode, error) {
	if strings.HasPrefix(s, "[") {
		i := strings.Index(s, "=")
		if i < 0 {
			return arrayNode{}, errBadArray
		}
		s = s[i+1:]
	}
	p := arrayParser{s: s, delim: delim}
	n, err := p.array(0)
	if err != nil {
		return arrayNode{}, err
	}
	if p.i != len(p.s) {
		return arrayNode{}, errBadArray
	}
	return n, nil
}

// maxArrayDepth bounds an array's nesting (PostgreSQL's MAXDIM is 6).
const maxArrayDepth = 32

type arrayParser struct {
	s     string
	i     int
	delim byte
}

func (p *arrayParser) array(depth int) (arrayNode, error) {
	if depth > maxArrayDepth || p.i >= len(p.s) || p.s[p.i] != '{' {
		return arrayNode{}, errBadArray
	}
	p.i++
	n := arrayNode{elems: []arrayNode{}}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return n, nil
	}
	for {
		p.space()
		if p.i >= len(p.s) {
			return arrayNode{}, errBadArray
		}
		var e arrayNode
		var err error
		switch p.s[p.i] {
		case '{':
			e, err = p.array(depth + 1)
		case '"':
			e, err = p.quoted()
		default:
			e, err = p.unquoted()
		}
		if err != nil {
			return arrayNode{}, err
		}
		n.elems = append(n.elems, e)
		p.space()
		if p.i >= len(p.s) {
			return arrayNode{}, errBadArray
		}
		switch p.s[p.i] {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return n, nil
		default:
			return arrayNode{}, errBadArray
		}
	}
}

func (p *arrayParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *arrayParser) quoted() (arrayNode, error) {
	p.i++ // "
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if p.i >= len(p.s) {
				return arrayNode{}, errBadArray
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case '"':
			return arrayNode{text: b.String()}, nil
		default:
			b.WriteByte(c)
		}
	}
	return arrayNode{}, errBadArray
}

func (p *arrayParser) unquoted() (arrayNode, error) {
	var b strings.Builder
	// trail counts the unescaped spaces at the end of b, which are
	// trimmed.
	trail := 0
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == p.delim || c == '}' {
			break
		}
		if c == '{' || c == '"' {
			return arrayNode{}, errBadArray
		}
		p.i++
		if c == '\\' {
			if p.i >= len(p.s) {
				return arrayNode{}, errBadArray
			}
			b.WriteByte(p.s[p.i])
			p.i++
			trail = 0
			continue
		}
		b.WriteByte(c)
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			trail++
		} else {
			trail = 0
		}
	}
	text := b.String()
	text = text[:len(text)-trail]
	if text == "" {
		return arrayNode{}, errBadArray
	}
	if strings.EqualFold(text, "NULL") {
		return arrayNode{null: true}, nil
	}
	return arrayNode{text: text}, nil
}
