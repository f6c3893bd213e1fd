package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// CheckObject checks that b is one JSON object in UTF-8, with nothing after
// it but whitespace, in which no object, at any depth, repeats a key (keys
// compare after unescaping, case-sensitively). encoding/json silently keeps
// the last of repeated keys; CheckObject refuses what two decoders could
// read differently, for input such as a token's claims that is decoded
// with encoding/json afterwards. An error names the repeated key and the
// path to it, such as `field "viewsync": duplicate field "read"`.
func CheckObject(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	if !json.Valid(b) {
		return errors.New("not one valid JSON value")
	}
	if i := skipSpace(b, 0); b[i] != '{' {
		return errors.New("not a JSON object")
	}
	return checkValue(b)
}

// checkValue refuses repeated keys in the valid JSON value b and in every
// value it holds.
func checkValue(b []byte) error {
	switch b[skipSpace(b, 0)] {
	case '{':
		fields, err := objectFields(b, 0)
		if err != nil {
			return err
		}
		for _, f := range fields {
			if err := checkValue(f.val); err != nil {
				return fmt.Errorf("field %q: %w", truncate(f.key), err)
			}
		}
	case '[':
		elems, err := arrayElems(b)
		if err != nil {
			return err
		}
		for i, e := range elems {
			if err := checkValue(e); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	}
	return nil
}
