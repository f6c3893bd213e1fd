package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

// decodeExact decodes one JSON value keeping numbers as their text.
func decodeExact(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// isCompactJSON reports whether b is valid JSON without insignificant
// whitespace.
func isCompactJSON(b []byte) bool {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return false
	}
	return bytes.Equal(buf.Bytes(), b)
}

// TestMergePatchRFC7396 runs every example of RFC 7396, Appendix A.
func TestMergePatchRFC7396(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	}
	for _, tt := range tests {
		// The RFC writes its examples with whitespace; apply them both
		// compact and indented.
		for _, form := range []struct {
			name          string
			target, patch []byte
		}{
			{"compact", []byte(tt.target), []byte(tt.patch)},
			{"indented", indent(t, tt.target), indent(t, tt.patch)},
		} {
			got, err := protocol.MergePatch(form.target, form.patch)
			if err != nil {
				t.Errorf("%s: MergePatch(%s, %s) error: %v", form.name, tt.target, tt.patch, err)
				continue
			}
			if !isCompactJSON(got) {
				t.Errorf("%s: MergePatch(%s, %s) = %s, not compact JSON", form.name, tt.target, tt.patch, got)
				continue
			}
			if g, w := decodeExact(t, got), decodeExact(t, []byte(tt.want)); !reflect.DeepEqual(g, w) {
				t.Errorf("%s: MergePatch(%s, %s) = %s, want %s", form.name, tt.target, tt.patch, got, tt.want)
			}
		}
	}
}

func indent(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "  "); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestMergePatch(t *testing.T) {
	tests := []struct {
		name          string
		target, patch string
		want          string // exact bytes
	}{
		{"nil target is null", ``, `{"a":1}`, `{"a":1}`},
		{"null target", `null`, `{"a":1,"b":null}`, `{"a":1}`},
		{"scalar target replaced by object", `3`, `{"a":{"b":null,"c":2}}`, `{"a":{"c":2}}`},
		{"big integer kept exactly", `{}`, `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
		{"decimal kept exactly", `{}`, `{"n":1.10}`, `{"n":1.10}`},
		{"target numbers kept exactly", `{"a":1.10,"b":12345678901234567890,"c":1E+2,"d":-0.0}`, `{"e":1}`, `{"a":1.10,"b":12345678901234567890,"c":1E+2,"d":-0.0,"e":1}`},
		{"number outside float64", `{"a":1}`, `{"a":1e400}`, `{"a":1e400}`},
		{"nested numbers kept", `{"a":{"x":0.1000}}`, `{"a":{"y":[1.50,2e-7]}}`, `{"a":{"x":0.1000,"y":[1.50,2e-7]}}`},
		{"empty patch object keeps target", `{"a":[1,2]}`, `{}`, `{"a":[1,2]}`},
		{"output is compact", "{ \"a\" : [ 1 , 2 ] }", "{ \"b\" : true }", `{"a":[1,2],"b":true}`},
		{"patch deleting a missing key", `{"a":1}`, `{"zz":null}`, `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.MergePatch(json.RawMessage(tt.target), json.RawMessage(tt.patch))
			if err != nil || string(got) != tt.want {
				t.Fatalf("MergePatch(%s, %s) = %s, %v; want %s", tt.target, tt.patch, got, err, tt.want)
			}
		})
	}
}

func TestMergePatchErrors(t *testing.T) {
	tests := []struct {
		name          string
		target, patch string
	}{
		{"empty patch", `{}`, ``},
		{"malformed patch", `{}`, `{"a":`},
		{"patch with trailing data", `{}`, `{"a":1} x`},
		{"two patch values", `{}`, `{} {}`},
		{"malformed target", `{"a"`, `{"b":1}`},
		{"target with trailing data", `{"a":1}}`, `{"b":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.MergePatch(json.RawMessage(tt.target), json.RawMessage(tt.patch))
			if !errors.Is(err, protocol.ErrBadValue) {
				t.Fatalf("MergePatch(%q, %q) = %s, %v; want ErrBadValue", tt.target, tt.patch, got, err)
			}
		})
	}
}
