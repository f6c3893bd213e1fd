package protocol

import (
	"encoding/json"
	"net/http"
)

// Code is a machine-readable error code of the contract.
type Code string

// The error codes of the HTTP API v1 contract, with the HTTP status each goes
// with (see Status).
const (
	CodeBadRequest           Code = "bad_request"
	CodeUnauthorized         Code = "unauthorized"
	CodeForbidden            Code = "forbidden"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodePreconditionFailed   Code = "precondition_failed"
	CodeTooLarge             Code = "too_large"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeRateLimited          Code = "rate_limited"
	CodeInternal             Code = "internal"
	CodeBadGateway           Code = "bad_gateway"
	CodeUnavailable          Code = "unavailable"
	CodeTimeout              Code = "timeout"
	// The idempotency keys' codes: a malformed Idempotency-Key (400), a
	// key used again with another request (422), a key whose first
	// request is still running when the retry's time ran out (409).
	CodeBadIdempotencyKey    Code = "bad_idempotency_key"
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	CodeIdempotencyInFlight  Code = "idempotency_in_flight"
)

// Status returns the HTTP status that goes with the code.
func (c Code) Status() int {
	switch c {
	case CodeBadRequest, CodeBadIdempotencyKey:
		return http.StatusBadRequest
	case CodeIdempotencyKeyReused:
		return http.StatusUnprocessableEntity
	case CodeIdempotencyInFlight:
		return http.StatusConflict
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodePreconditionFailed:
		return http.StatusPreconditionFailed
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeBadGateway:
		return http.StatusBadGateway
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// Error is the contract's error: {"error":{"code":…,"message":…}}.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Error implements the error interface.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// ErrorBody is the JSON envelope of an error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// MarshalError encodes the error envelope.
func MarshalError(code Code, message string) []byte {
	b, _ := json.Marshal(ErrorBody{Error: &Error{Code: code, Message: message}})
	return b
}
