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
		{`{"a":1} {"a":2}`, "not valid JSON: data after the value"},
		{`{"a":1`, "not valid JSON: unexpected end of input"},
		{"{\"a\":\"\xff\"}", "not valid UTF-8"},
		// The other value rules hold as well: two decoders could read
		// these differently too.
		{`{"a":"\ud800"}`, "lone UTF-16 surrogate"},
		{`{"a":[1e400]}`, "out of the range of float64"},
		// Keys in the path are those of the values that hold the object.
		{`{"a":{"b":1},"c":[[],{"d":"{\"x\":1,\"x\":2}","e":{"f":0,"f":0}}]}`, `field "c": element 1: field "e": duplicate field "f"`},
		{`{"k\"ey":{"z":1,"z":2}}`, `field "k\"ey": duplicate field "z"`},
		{`{"a":` + strings.Repeat(`[`, 20) + `{"z":1,"z":2}` + strings.Repeat(`]`, 20) + `}`,
			`field "a": element 0: element 0: element 0: (13 levels): element 0: element 0: element 0: element 0: duplicate field "z"`},
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
