package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// FuzzDecodeCallRequest checks that decodeCallRequest takes exactly the
// JSON objects whose only field is "arg", answering null for a missing arg,
// and refuses everything else as a bad request.
func FuzzDecodeCallRequest(f *testing.F) {
	for _, s := range []string{
		`{"arg":1}`, `{}`, ` { "arg" : [ 1 , {"a":null} ] } `, `{"arg":null}`, `{"arg":"\ud800"}`,
		`{"arg":1,"arg":2}`, `{"\u0061rg":true}`, `{"Arg":1}`, `{"arg":1,"x":2}`, `{"arg":1} {}`,
		`{"arg":1}x`, `null`, `[]`, `1`, ``, `{"arg":`, `{"arg":1e999}`, `{"arg":-0.0}`,
		`{"arg":{"a":1,"a":2}}`, `{"arg":["\udc00"]}`, `{"arg":"\ud83d\ude00"}`, `{"\ud800":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			// readBody refuses these before they reach the decoder.
			return
		}
		// The oracle: a valid JSON object whose keys are all exactly "arg",
		// given once, with an arg that keeps the value rules.
		var fields map[string]json.RawMessage
		object := json.Valid(body) && json.Unmarshal(body, &fields) == nil && fields != nil
		onlyArg := object && topLevelKeys(body) == len(fields)
		for k := range fields {
			onlyArg = onlyArg && k == "arg"
		}
		if a, ok := fields["arg"]; onlyArg && ok {
			_, err := protocol.Limits{}.CheckValue(a)
			if errors.Is(err, protocol.ErrTooDeep) {
				return // a message may nest a few levels deeper than a value
			}
			onlyArg = err == nil
		}

		arg, err := decodeCallRequest(body)
		if err != nil {
			if code := viewsync.ErrorCode(err); code != protocol.CodeBadRequest {
				t.Fatalf("%q: error %v maps to %q, want bad_request", body, err, code)
			}
			if onlyArg {
				t.Fatalf("%q: refused a JSON object with only \"arg\": %v", body, err)
			}
			return
		}
		if !onlyArg {
			t.Fatalf("%q: accepted, but it is not a JSON object with only \"arg\"", body)
		}
		if !json.Valid(arg) {
			t.Fatalf("%q: arg %q is not valid JSON", body, arg)
		}
		want, ok := fields["arg"]
		if !ok {
			want = json.RawMessage("null")
		}
		if !bytes.Equal(arg, want) {
			t.Fatalf("%q: arg %q, want %q", body, arg, want)
		}
		// What a client would send for this arg decodes to it again.
		again, err := decodeCallRequest([]byte(`{"arg":` + string(arg) + `}`))
		if err != nil || !bytes.Equal(again, arg) {
			t.Fatalf("%q: re-sending arg %q gives %q, %v", body, arg, again, err)
		}
	})
}

// topLevelKeys counts the keys of the JSON object b, repeats included.
func topLevelKeys(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return -1
	}
	n := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil {
			return -1
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return -1
		}
		n++
	}
	return n
}
