package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MergePatch applies a JSON merge patch (RFC 7396) to target and returns the
// compact result. A nil or empty target is treated as null. Numbers keep
// their exact text.
func MergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	p, err := decodeNumbers(patch)
	if err != nil {
		return nil, fmt.Errorf("%w: patch: %v", ErrBadValue, err)
	}
	var t any
	if len(target) > 0 {
		if t, err = decodeNumbers(target); err != nil {
			return nil, fmt.Errorf("%w: target: %v", ErrBadValue, err)
		}
	}
	out, err := json.Marshal(mergeValue(t, p))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadValue, err)
	}
	return out, nil
}

// mergeValue is the MergePatch algorithm of RFC 7396, section 2.
func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = make(map[string]any, len(pm))
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

// decodeNumbers decodes one JSON value, keeping numbers as json.Number.
func decodeNumbers(b []byte) (any, error) {
	if !json.Valid(b) {
		return nil, fmt.Errorf("not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
