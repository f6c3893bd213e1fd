package protocol_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestCodeStatus(t *testing.T) {
	tests := []struct {
		code protocol.Code
		want int
	}{
		{protocol.CodeBadRequest, http.StatusBadRequest},
		{protocol.CodeUnauthorized, http.StatusUnauthorized},
		{protocol.CodeForbidden, http.StatusForbidden},
		{protocol.CodeNotFound, http.StatusNotFound},
		{protocol.CodeMethodNotAllowed, http.StatusMethodNotAllowed},
		{protocol.CodePreconditionFailed, http.StatusPreconditionFailed},
		{protocol.CodeTooLarge, http.StatusRequestEntityTooLarge},
		{protocol.CodeUnsupportedMediaType, http.StatusUnsupportedMediaType},
		{protocol.CodeRateLimited, http.StatusTooManyRequests},
		{protocol.CodeInternal, http.StatusInternalServerError},
		{protocol.CodeBadGateway, http.StatusBadGateway},
		{protocol.CodeUnavailable, http.StatusServiceUnavailable},
		{protocol.CodeTimeout, http.StatusGatewayTimeout},
		{"no_such_code", http.StatusInternalServerError},
		{"", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		if got := tt.code.Status(); got != tt.want {
			t.Errorf("Code(%q).Status() = %d, want %d", tt.code, got, tt.want)
		}
	}
}

// TestCodeNames pins the wire spelling of every code of the contract.
func TestCodeNames(t *testing.T) {
	want := map[protocol.Code]string{
		protocol.CodeBadRequest:           "bad_request",
		protocol.CodeUnauthorized:         "unauthorized",
		protocol.CodeForbidden:            "forbidden",
		protocol.CodeNotFound:             "not_found",
		protocol.CodeMethodNotAllowed:     "method_not_allowed",
		protocol.CodePreconditionFailed:   "precondition_failed",
		protocol.CodeTooLarge:             "too_large",
		protocol.CodeUnsupportedMediaType: "unsupported_media_type",
		protocol.CodeRateLimited:          "rate_limited",
		protocol.CodeInternal:             "internal",
		protocol.CodeBadGateway:           "bad_gateway",
		protocol.CodeUnavailable:          "unavailable",
		protocol.CodeTimeout:              "timeout",
	}
	for code, name := range want {
		if string(code) != name {
			t.Errorf("code %q, want %q", code, name)
		}
	}
}

func TestMarshalError(t *testing.T) {
	msg := "record \"a\" is at version 3, not 2\n<tab>\t"
	b := protocol.MarshalError(protocol.CodePreconditionFailed, msg)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("MarshalError = %s: %v", b, err)
	}
	if body.Error.Code != "precondition_failed" || body.Error.Message != msg {
		t.Fatalf("MarshalError decodes to %+v", body)
	}
	e := &protocol.Error{Code: protocol.CodeNotFound, Message: "gone"}
	if got := e.Error(); got != "not_found: gone" {
		t.Fatalf("Error() = %q", got)
	}
}
