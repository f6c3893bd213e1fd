package protocol

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits of the contract.
const (
	// MaxCollectionLen is the longest collection name.
	MaxCollectionLen = 64
	// MaxIDLen is the longest record id, in bytes.
	MaxIDLen = 256
)

// ErrBadName is returned (wrapped) for an invalid collection name.
var ErrBadName = errors.New("bad collection name")

// ErrBadID is returned (wrapped) for an invalid record id.
var ErrBadID = errors.New("bad record id")

// ErrBadValue is returned (wrapped) for a value that is not JSON.
var ErrBadValue = errors.New("bad value")

// ErrBadOp is returned (wrapped) for a malformed op.
var ErrBadOp = errors.New("bad op")

// ValidateCollection checks name against ^[a-z0-9][a-z0-9_.-]{0,63}$.
func ValidateCollection(name string) error {
	if name == "" || len(name) > MaxCollectionLen {
		return fmt.Errorf("%w: %q must be 1-%d characters", ErrBadName, name, MaxCollectionLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-')
		if !ok {
			return fmt.Errorf("%w: %q must match ^[a-z0-9][a-z0-9_.-]{0,63}$", ErrBadName, name)
		}
	}
	return nil
}

// ValidateID checks a record id: 1 to maxLen bytes (at most MaxIDLen) of
// UTF-8 without control characters. maxLen <= 0 means MaxIDLen.
func ValidateID(id string, maxLen int) error {
	if maxLen <= 0 || maxLen > MaxIDLen {
		maxLen = MaxIDLen
	}
	if id == "" || len(id) > maxLen {
		return fmt.Errorf("%w: must be 1-%d bytes, got %d", ErrBadID, maxLen, len(id))
	}
	for i := 0; i < len(id); {
		r, size := utf8.DecodeRuneInString(id[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Errorf("%w: not valid UTF-8", ErrBadID)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: contains control character %U", ErrBadID, r)
		}
		i += size
	}
	return nil
}

// IsCompact reports whether valid JSON v has no whitespace outside strings:
// a cheap scan, for encoders that copy values as they are.
func IsCompact(v []byte) bool { return isCompact(v) }

// isCompact reports whether valid JSON v has no whitespace outside strings.
func isCompact(v []byte) bool {
	inString, escaped := false, false
	for _, c := range v {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}

// NormalizeOp validates op and compacts its value. maxID bounds the id
// length (see ValidateID); maxValue bounds the value size in bytes (0: no
// bound here); the value's nesting is bounded by MaxValueDepth. It is
// Limits.NormalizeOp with those limits.
func NormalizeOp(op Op, maxID, maxValue int) (Op, error) {
	return Limits{MaxIDBytes: maxID, MaxValueBytes: maxValue}.NormalizeOp(op)
}

// ErrTooLarge is returned (wrapped) for input over a size limit.
var ErrTooLarge = errors.New("too large")

// ErrBadCallName is returned (wrapped) for an invalid call name.
var ErrBadCallName = errors.New("bad call name")

// ValidateCallName checks a call name: 1-64 characters of [A-Za-z0-9_.-].
func ValidateCallName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: %q must be 1-64 characters", ErrBadCallName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%w: %q must match ^[A-Za-z0-9_.-]{1,64}$", ErrBadCallName, name)
		}
	}
	return nil
}

// MaxSubIDLen bounds a subscription id.
const MaxSubIDLen = 64

// ValidateSubID checks a WebSocket subscription id: 1 to MaxSubIDLen
// characters of a-z, A-Z, 0-9, '_', '.', ':' and '-'.
func ValidateSubID(s string) error {
	if s == "" || len(s) > MaxSubIDLen {
		return fmt.Errorf("%w: a subscription id has 1 to %d characters", ErrBadMessage, MaxSubIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return fmt.Errorf("%w: a subscription id has only a-z, A-Z, 0-9, _ . : and -, not %q", ErrBadMessage, c)
		}
	}
	return nil
}
