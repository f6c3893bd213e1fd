package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
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
