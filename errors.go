package viewsync

import (
	"errors"
	"fmt"
	"time"

	"github.com/viewsync/viewsync/internal/errcode"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Sentinel errors callers test with errors.Is. Most come from package store.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = store.ErrNotFound
	// ErrPrecondition: a record is not at the version a write required.
	ErrPrecondition = store.ErrPrecondition
	// ErrEmptyCommit: a commit without ops.
	ErrEmptyCommit = store.ErrEmptyCommit
	// ErrClosed: the hub or its store is closed.
	ErrClosed = store.ErrClosed
	// ErrUnavailable: the store cannot write for now (its disk is full
	// or read-only, say); the same write may succeed later.
	ErrUnavailable = store.ErrUnavailable
	// ErrTooLarge: a commit, id or value over a limit.
	ErrTooLarge = protocol.ErrTooLarge
	// ErrInvalid: malformed input (bad name, id, op or value).
	ErrInvalid = errcode.ErrInvalid
	// ErrUnauthorized: the request carries no valid credentials (a
	// missing, malformed, expired or wrongly signed token).
	ErrUnauthorized = errcode.ErrUnauthorized
	// ErrForbidden: the credentials are valid but do not grant the right
	// the request needs.
	ErrForbidden = errcode.ErrForbidden
	// ErrRateLimited: the caller is over a rate or connection limit. A
	// *RateLimitError says when to retry.
	ErrRateLimited = errcode.ErrRateLimited
)

// RateLimitError is returned when a caller is over a limit, with the
// limit's name and how long to wait. It matches ErrRateLimited.
type RateLimitError = errcode.RateLimitError

// RetryAfter returns how long to wait before retrying after err: the delay
// of a *RateLimitError in it, in whole seconds rounded up (at least 1), or
// 0 when err is not a rate-limit error.
func RetryAfter(err error) time.Duration { return errcode.RetryAfter(err) }

// ErrorCode maps an error returned by this package (or by the transports
// and package auth) to the wire error code of the HTTP API contract. It is
// the one mapping every transport uses.
func ErrorCode(err error) protocol.Code { return errcode.Of(err) }

// Redact returns the error of a write as it may be told to a caller who
// may write the collection but not read it. A failed precondition keeps its
// meaning (it is still ErrPrecondition, 412) but names no record and no
// version: the record's current version, whether it exists, and which of a
// commit's preconditions failed are what a reader would learn. Other errors
// are returned as they are.
func Redact(err error) error {
	if errors.Is(err, ErrPrecondition) {
		return errRedactedPrecondition
	}
	return err
}

// errRedactedPrecondition is what Redact makes of a failed precondition.
var errRedactedPrecondition = fmt.Errorf("%w: a record is not at the version the write required", ErrPrecondition)

// invalid wraps err as ErrInvalid unless it already is a typed input error.
func invalid(err error) error {
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}
