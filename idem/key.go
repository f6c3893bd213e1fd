package idem

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// DefaultMaxKeyBytes bounds a key by default.
const DefaultMaxKeyBytes = 255

// ErrBadKey: a key that is empty, too long, or not printable ASCII.
var ErrBadKey = errors.New("bad idempotency key")

// ParseKey checks a key as a client sends it: 1–max bytes (max <= 0:
// DefaultMaxKeyBytes) of printable ASCII (0x20–0x7E), neither starting
// nor ending with a space (HTTP would strip it). It returns the key, or
// an error wrapping ErrBadKey that says what is wrong.
func ParseKey(s string, max int) (string, error) {
	if max <= 0 {
		max = DefaultMaxKeyBytes
	}
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrBadKey)
	case len(s) > max:
		return "", fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadKey, len(s), max)
	case s[0] == ' ' || s[len(s)-1] == ' ':
		return "", fmt.Errorf("%w: starts or ends with a space", ErrBadKey)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("%w: byte %d is 0x%02x, not printable ASCII", ErrBadKey, i, c)
		}
	}
	return s, nil
}

// Scope names whose keys these are: a principal's subject, or the one
// scope of every anonymous request.
func Scope(subject string, anonymous bool) string {
	if anonymous {
		return "anonymous"
	}
	return "subject:" + subject
}

// ID returns the id under which the key of scope for target is kept: the
// hex SHA-256 of the three, each length-prefixed so that no two
// different triples meet. It is a valid store.Key ID.
func ID(scope, target, key string) string {
	return hashParts([]byte(scope), []byte(target), []byte(key))
}

// Fingerprint returns the fingerprint of a request given as parts (its
// method or kind, target, preconditions, canonical body, …): the hex
// SHA-256 of them, each length-prefixed.
func Fingerprint(parts ...[]byte) string { return hashParts(parts...) }

func hashParts(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}
