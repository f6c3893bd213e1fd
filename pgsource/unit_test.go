package pgsource

import (
	"encoding/json"
	"errors"
	"testing"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

func TestParseTable(t *testing.T) {
	for in, want := range map[string]Table{
		"public.products":          {"public", "products", "products"},
		"public.products=products": {"public", "products", "products"},
		"shop.Items=items":         {"shop", "Items", "items"},
		"orders":                   {"public", "orders", "orders"},
	} {
		got, err := ParseTable(in)
		if err != nil || got != want {
			t.Errorf("ParseTable(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a.b.c", "public.", ".x", "x=", "x=Bad Name", "1x", "a-b"} {
		if _, err := ParseTable(in); !errors.Is(err, ErrBadTable) {
			t.Errorf("ParseTable(%q): %v, want ErrBadTable", in, err)
		}
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		id    string
	}{
		{[]string{"42"}, "42"},
		{[]string{"7", "a,b"}, "7,a%2Cb"},
		{[]string{"50%", "x\ny"}, "50%25,x%0Ay"},
		{[]string{"", ""}, ","},
	} {
		if id := EncodeKey(tc.parts); id != tc.id {
			t.Errorf("EncodeKey(%q) = %q, want %q", tc.parts, id, tc.id)
		}
	}
	for _, bad := range []string{"%", "%4", "%zz", "%41", "%2c", "a\nb"} {
		if _, err := DecodeKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("DecodeKey(%q): %v, want ErrBadKey", bad, err)
		}
	}
}

func TestNumbers(t *testing.T) {
	for in, want := range map[string]string{
		"12.50": "12.50", "0.1": "0.1", "-3": "-3", "9007199254740992": "9007199254740992",
		"9007199254740993": `"9007199254740993"`, "0.10000000000000000001": `"0.10000000000000000001"`,
		"NaN": `"NaN"`, "Infinity": `"Infinity"`, "1e400": `"1e400"`,
	} {
		if got := string(appendNumber(nil, in)); got != want {
			t.Errorf("appendNumber(%s) = %s, want %s", in, got, want)
		}
	}
}
