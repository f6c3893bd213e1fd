// Package errcode holds the errors that viewsync's packages share — the
// hub's, the transports' and package auth's — and Of, the one mapping from
// an error to the wire error code of the HTTP API contract.
//
// The root package re-exports each name (viewsync.ErrUnauthorized,
// viewsync.ErrorCode, …); code outside this module uses those.
package errcode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Sentinel errors callers test with errors.Is.
var (
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
	// ErrReadOnly: the collection is fed from a source outside viewsync,
	// which alone writes it. Errors carrying it match ErrForbidden too.
	ErrReadOnly = errors.New("collection is read-only")
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

// CallError is an error a call handler returns to choose the wire error
// code.
type CallError struct {
	Code    protocol.Code
	Message string
}

// Error implements error.
func (e *CallError) Error() string { return string(e.Code) + ": " + e.Message }

// Of maps an error to the wire error code of the HTTP API contract. It is
// the one place where that mapping lives; every transport and package auth
// use it.
func Of(err error) protocol.Code {
	var ce *CallError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		if ce.Code == "" || ce.Code.Status() == http.StatusInternalServerError {
			return protocol.CodeInternal // unknown codes are not relayed
		}
		return ce.Code
	case errors.Is(err, idem.ErrBadKey):
		return protocol.CodeBadIdempotencyKey
	case errors.Is(err, idem.ErrKeyReused):
		return protocol.CodeIdempotencyKeyReused
	case errors.Is(err, idem.ErrInFlight):
		return protocol.CodeIdempotencyInFlight
	case errors.Is(err, ErrUnauthorized):
		return protocol.CodeUnauthorized
	case errors.Is(err, ErrForbidden):
		return protocol.CodeForbidden
	case errors.Is(err, ErrRateLimited):
		return protocol.CodeRateLimited
	case errors.Is(err, protocol.ErrTooLarge):
		return protocol.CodeTooLarge
	case errors.Is(err, ErrInvalid), errors.Is(err, store.ErrEmptyCommit),
		errors.Is(err, protocol.ErrBadCursor), errors.Is(err, protocol.ErrBadName),
		errors.Is(err, protocol.ErrBadID), errors.Is(err, protocol.ErrBadValue),
		errors.Is(err, protocol.ErrBadOp), errors.Is(err, protocol.ErrBadCallName), errors.Is(err, protocol.ErrBadMessage),
		errors.Is(err, protocol.ErrBadQuery):
		return protocol.CodeBadRequest
	case errors.Is(err, store.ErrNotFound):
		return protocol.CodeNotFound
	case errors.Is(err, store.ErrPrecondition):
		return protocol.CodePreconditionFailed
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrUnavailable), errors.Is(err, limit.ErrBusy):
		return protocol.CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.CodeTimeout
	default:
		return protocol.CodeInternal
	}
}
