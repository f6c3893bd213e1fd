package viewsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/viewsync/viewsync/limit"
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
	ErrInvalid = errors.New("invalid input")
	// ErrUnauthorized: the request carries no valid credentials (a
	// missing, malformed, expired or wrongly signed token).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the credentials are valid but do not grant the right
	// the request needs.
	ErrForbidden = errors.New("forbidden")
	// ErrRateLimited: the caller is over a rate or connection limit. A
	// *RateLimitError says when to retry.
	ErrRateLimited = errors.New("rate limited")
)

// RateLimitError is returned when a caller is over a limit. It matches
// ErrRateLimited.
type RateLimitError struct {
	// Limit names what was exceeded, such as "commits per second".
	Limit string
	// RetryAfter is how long the caller should wait before trying again.
	RetryAfter time.Duration
}

// Error implements error.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limited: over the limit of %s; retry after %s", e.Limit, e.RetryAfter.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// RetryAfter returns how long to wait before retrying after err: the delay
// of a *RateLimitError in it, in whole seconds rounded up (at least 1), or
// 0 when err is not a rate-limit error.
func RetryAfter(err error) time.Duration {
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		if errors.Is(err, ErrRateLimited) {
			return time.Second
		}
		return 0
	}
	return max(time.Second, (rl.RetryAfter + time.Second - 1).Truncate(time.Second))
}

// ErrorCode maps an error returned by this package to the wire error code of
// the HTTP API contract. It is the one place where that mapping lives; every
// transport uses it.
func ErrorCode(err error) protocol.Code {
	var ce *CallError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		if ce.Code == "" || ce.Code.Status() == http.StatusInternalServerError {
			return protocol.CodeInternal // unknown codes are not relayed
		}
		return ce.Code
	case errors.Is(err, ErrUnauthorized):
		return protocol.CodeUnauthorized
	case errors.Is(err, ErrForbidden):
		return protocol.CodeForbidden
	case errors.Is(err, ErrRateLimited):
		return protocol.CodeRateLimited
	case errors.Is(err, ErrTooLarge):
		return protocol.CodeTooLarge
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrEmptyCommit),
		errors.Is(err, protocol.ErrBadCursor), errors.Is(err, protocol.ErrBadName),
		errors.Is(err, protocol.ErrBadID), errors.Is(err, protocol.ErrBadValue),
		errors.Is(err, protocol.ErrBadOp), errors.Is(err, protocol.ErrBadCallName), errors.Is(err, protocol.ErrBadMessage),
		errors.Is(err, protocol.ErrBadQuery):
		return protocol.CodeBadRequest
	case errors.Is(err, ErrNotFound):
		return protocol.CodeNotFound
	case errors.Is(err, ErrPrecondition):
		return protocol.CodePreconditionFailed
	case errors.Is(err, ErrClosed), errors.Is(err, ErrUnavailable), errors.Is(err, limit.ErrBusy):
		return protocol.CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.CodeTimeout
	default:
		return protocol.CodeInternal
	}
}

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
