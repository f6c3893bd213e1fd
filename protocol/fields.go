package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// The functions below read JSON text that scanJSON has already checked:
// they only find boundaries (where a value, a string, an object ends), and
// need not, and do not, validate again.

// field is one key and raw value of a JSON object.
type field struct {
	key string
	val json.RawMessage
}

// fieldList is a JSON object's fields in order, keys unique.
type fieldList []field

func (l fieldList) get(key string) (json.RawMessage, bool) {
	for _, f := range l {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

// objectFields splits a valid JSON value, which must be an object, into
// its fields, refusing duplicate keys and more than max fields (max <= 0:
// no bound). The values share b's memory.
func objectFields(b []byte, max int) (fieldList, error) {
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var fields fieldList
	var seen map[string]struct{}
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		end := endOfString(b, i)
		key, err := unquote(b[i:end])
		if err != nil {
			return nil, err
		}
		if max > 0 && len(fields) >= max {
			return nil, fmt.Errorf("more than %d fields", max)
		}
		// Few fields: compare; many: index them.
		dup := false
		if seen == nil && len(fields) < 16 {
			for _, f := range fields {
				dup = dup || f.key == key
			}
		} else {
			if seen == nil {
				seen = make(map[string]struct{}, 2*len(fields))
				for _, f := range fields {
					seen[f.key] = struct{}{}
				}
			}
			_, dup = seen[key]
			seen[key] = struct{}{}
		}
		if dup {
			return nil, fmt.Errorf("duplicate field %q", truncate(key))
		}
		i = skipSpace(b, skipSpace(b, end)+1) // past the colon
		vend := endOfValue(b, i)
		fields = append(fields, field{key: key, val: b[i:vend]})
		i = skipSpace(b, vend)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return fields, nil
}

// arrayElems splits a valid JSON value, which must be an array, into its
// elements. They share raw's memory.
func arrayElems(raw []byte) ([][]byte, error) {
	i := skipSpace(raw, 0)
	if raw[i] != '[' {
		return nil, errors.New("not an array")
	}
	var elems [][]byte
	i = skipSpace(raw, i+1)
	for raw[i] != ']' {
		end := endOfValue(raw, i)
		elems = append(elems, raw[i:end])
		i = skipSpace(raw, end)
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string starting at b[i].
func endOfString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// endOfValue returns the index just past the value starting at b[i].
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = endOfString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) && !(b[i] == ',' || b[i] == '}' || b[i] == ']' || b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
		return i
	}
}

// unquote returns the text of a valid JSON string, refusing one with a
// lone surrogate escape, which has no text to return.
func unquote(q []byte) (string, error) {
	if bytes.IndexByte(q, '\\') < 0 {
		return string(q[1 : len(q)-1]), nil
	}
	sc := scanner{b: q, strict: true}
	if _, _, err := sc.str(0); err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", err
	}
	return s, nil
}

// decodeString decodes a field that must be a string.
func decodeString(raw []byte) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", errors.New("not a string")
	}
	return unquote(raw)
}

// decodeUint accepts a JSON number that is an integer in uint64 range,
// written without fraction or exponent.
func decodeUint(raw json.RawMessage) (uint64, error) {
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return 0, errors.New("not a non-negative integer")
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, errors.New("not an integer in the range of uint64")
	}
	return v, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
