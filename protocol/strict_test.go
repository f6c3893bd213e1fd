package protocol

import (
	"strings"
	"testing"
)

func TestCheckObject(t *testing.T) {
	for _, tt := range []struct {
		in, err string // err: "" when accepted, else a part of the error
	}{
		{`{}`, ""},
		{` {"a":1,"b":[{"a":1},{"a":2}],"c":{"a":{"a":null}}} `, ""},
		{`{"a":1,"A":2}`, ""}, // keys are case-sensitive
		{`{"a":1,"a":2}`, `duplicate field "a"`},
		{`{"a":1,"\u0061":2}`, `duplicate field "a"`},
		{`{"v":{"read":[],"read":["*"]}}`, `field "v": duplicate field "read"`},
		{`{"v":[1,{"x":1,"x":1}]}`, `field "v": element 1: duplicate field "x"`},
		{`[{"a":1}]`, "not a JSON object"},
		{`"{}"`, "not a JSON object"},
		{`{"a":1} {"a":2}`, "not one valid JSON value"},
		{`{"a":1`, "not one valid JSON value"},
		{"{\"a\":\"\xff\"}", "not valid UTF-8"},
	} {
		err := CheckObject([]byte(tt.in))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("CheckObject(%s): %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("CheckObject(%s) = %v, want an error with %q", tt.in, err, tt.err)
		}
	}
}
