package idem

import (
	"encoding/binary"
	"errors"
	"net/http"
)

// Answer is what a keyed request was answered, as a transport writes it:
// an HTTP status, the headers that matter, the JSON body. The WebSocket
// transport answers from the same: a result, or an error with the body's
// code and message.
type Answer struct {
	// Status is the HTTP status.
	Status int
	// ETag is the ETag header, empty when none.
	ETag string
	// Body is the JSON body: the result, or the contract's error body.
	Body []byte
}

// size is what the answer takes in memory, roughly.
func (a Answer) size() int64 { return int64(len(a.ETag) + len(a.Body) + 64) }

// Remembered reports whether an answer of status is a result, kept for
// retries: every 2xx, and every 4xx but 401, 403, 408 and 429 (the
// credentials, rights or rates may change; a retry must be judged again).
// 5xx answers are not: the outcome is unknown, and a retry runs again.
func Remembered(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return status >= 200 && status < 500
}

// answerFormat is the first byte of an encoded answer.
const answerFormat = 1

// AppendBinary appends the answer's encoding, which ParseAnswer reads:
// a format byte, the status (2 bytes), the ETag's length (uvarint), the
// ETag, the body.
func (a Answer) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, answerFormat)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Status))
	b = binary.AppendUvarint(b, uint64(len(a.ETag)))
	b = append(b, a.ETag...)
	return append(b, a.Body...), nil
}

// ErrBadAnswer: bytes that are no answer's encoding.
var ErrBadAnswer = errors.New("idem: bad answer encoding")

// ParseAnswer reads an answer AppendBinary wrote. The body shares b's
// memory.
func ParseAnswer(b []byte) (Answer, error) {
	if len(b) < 3 || b[0] != answerFormat {
		return Answer{}, ErrBadAnswer
	}
	a := Answer{Status: int(binary.BigEndian.Uint16(b[1:3]))}
	n, k := binary.Uvarint(b[3:])
	if k <= 0 || uint64(len(b)-3-k) < n {
		return Answer{}, ErrBadAnswer
	}
	off := 3 + k
	a.ETag = string(b[off : off+int(n)])
	a.Body = b[off+int(n):]
	return a, nil
}
