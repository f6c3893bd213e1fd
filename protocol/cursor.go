package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxEpochLen bounds the length of an epoch string.
const MaxEpochLen = 64

// ErrBadCursor is returned (wrapped) for a cursor that cannot be parsed.
var ErrBadCursor = errors.New("bad cursor")

// Cursor is a position in one history of a collection, written EPOCH:VERSION.
// An empty Epoch means "the current epoch".
type Cursor struct {
	Epoch   string
	Version uint64
}

// String formats the cursor as EPOCH:VERSION.
func (c Cursor) String() string {
	return c.Epoch + ":" + strconv.FormatUint(c.Version, 10)
}

// AppendTo appends the cursor's text form to b without allocating.
func (c Cursor) AppendTo(b []byte) []byte {
	b = append(b, c.Epoch...)
	b = append(b, ':')
	return strconv.AppendUint(b, c.Version, 10)
}

// ParseCursor parses EPOCH:VERSION. The epoch may be empty (":42" or "42"
// both mean version 42 of the current epoch).
func ParseCursor(s string) (Cursor, error) {
	epoch, ver := "", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		epoch, ver = s[:i], s[i+1:]
	}
	if err := ValidateEpoch(epoch); err != nil {
		return Cursor{}, err
	}
	v, err := ParseVersion(ver)
	if err != nil {
		return Cursor{}, err
	}
	return Cursor{Epoch: epoch, Version: v}, nil
}

// ParseVersion parses a decimal uint64 version: digits only, no sign, no
// surrounding space.
func ParseVersion(s string) (uint64, error) {
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("%w: version %q is not a decimal number", ErrBadCursor, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: version %q is not a decimal number", ErrBadCursor, s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: version %q out of range", ErrBadCursor, s)
	}
	return v, nil
}

// ValidateEpoch reports whether s can be an epoch: empty, or up to
// MaxEpochLen characters from [A-Za-z0-9_-].
func ValidateEpoch(s string) error {
	if len(s) > MaxEpochLen {
		return fmt.Errorf("%w: epoch longer than %d bytes", ErrBadCursor, MaxEpochLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: epoch %q has a character outside [A-Za-z0-9_-]", ErrBadCursor, s)
		}
	}
	return nil
}
