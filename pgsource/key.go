package pgsource

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadKey: a record id that EncodeKey did not make.
var ErrBadKey = errors.New("bad key encoding")

// EncodeKey returns the record id of a row whose primary key columns, in
// the key's order, have the text forms parts: each part with '%', ',' and
// the control characters (below U+0020, and U+007F) escaped as %XX (upper
// case hex), the parts joined by ','. A one-column key of plain text (an
// integer, a uuid, a name without those characters) is its text as is:
// 42 → "42"; (7, 'a,b') → "7,a%2Cb".
func EncodeKey(parts []string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			if c == '%' || c == ',' || c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, "%%%02X", c)
				continue
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// DecodeKey returns the parts of a record id EncodeKey made: the text
// forms of the primary key's columns, in the key's order. An id that
// EncodeKey cannot have made fails with ErrBadKey.
func DecodeKey(id string) ([]string, error) {
	parts := []string{}
	var cur []byte
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c == ',':
			parts = append(parts, string(cur))
			cur = cur[:0]
		case c == '%':
			if i+2 >= len(id) {
				return nil, fmt.Errorf("%w: %q: %% at %d not followed by two hex digits", ErrBadKey, id, i)
			}
			hi, ok1 := unhex(id[i+1])
			lo, ok2 := unhex(id[i+2])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%w: %q: %% at %d not followed by two upper case hex digits", ErrBadKey, id, i)
			}
			v := hi<<4 | lo
			if v != '%' && v != ',' && v >= 0x20 && v != 0x7f {
				return nil, fmt.Errorf("%w: %q: %%%02X escapes a character that is never escaped", ErrBadKey, id, v)
			}
			cur = append(cur, v)
			i += 2
		case c < 0x20 || c == 0x7f:
			return nil, fmt.Errorf("%w: %q: unescaped control character at %d", ErrBadKey, id, i)
		default:
			cur = append(cur, c)
		}
	}
	return append(parts, string(cur)), nil
}

// unhex decodes an upper case hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
