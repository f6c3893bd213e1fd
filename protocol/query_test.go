package protocol_test

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestParseQuery(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want url.Values // nil: refused
		msg  string     // part of the error
	}{
		{raw: "", want: url.Values{}},
		{raw: "after=1&epoch=E", want: url.Values{"after": {"1"}, "epoch": {"E"}}},
		{raw: "after=%31&x=a+b", want: url.Values{"after": {"1"}, "x": {"a b"}}},
		{raw: "cb=1&cb=2", want: url.Values{"cb": {"1", "2"}}},
		{raw: "after", want: url.Values{"after": {""}}},
		{raw: "after=%zz", msg: `invalid URL escape "%zz"`},
		{raw: "%zz=1", msg: `invalid URL escape "%zz"`},
		{raw: "after=1&x=%", msg: `invalid URL escape "%"`},
		{raw: "after=%2", msg: "invalid URL escape"},
		{raw: "after=1;epoch=E", msg: "semicolon"},
		{raw: "after=1&after=2", msg: "after given 2 times"},
		{raw: "epoch=a&after=1&epoch=b", msg: "epoch given 2 times"},
	} {
		got, err := protocol.ParseQuery(tt.raw, "after", "epoch")
		if tt.want == nil {
			if !errors.Is(err, protocol.ErrBadQuery) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ParseQuery(%q) = %v, %v; want ErrBadQuery with %q", tt.raw, got, err, tt.msg)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseQuery(%q) = %v, %v; want %v", tt.raw, got, err, tt.want)
		}
	}
}

// FuzzParseQuery checks ParseQuery against url.ParseQuery: it refuses
// exactly what does not parse and what repeats a single parameter, and
// keeps everything else as url.ParseQuery reads it.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "after=1", "after=%zz", "after=1&after=2", "a=1;b=2", "%", "a=%2", "a=%C3%A9", "after&after", "x=1&x=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := protocol.ParseQuery(raw, "after")
		want, werr := url.ParseQuery(raw)
		switch {
		case werr != nil:
			if !errors.Is(err, protocol.ErrBadQuery) {
				t.Fatalf("ParseQuery(%q) = %v, %v; url.ParseQuery fails with %v", raw, got, err, werr)
			}
		case len(want["after"]) > 1:
			if !errors.Is(err, protocol.ErrBadQuery) {
				t.Fatalf("ParseQuery(%q) = %v, %v; want a refusal of the repeated after", raw, got, err)
			}
		case err != nil || !reflect.DeepEqual(got, want):
			t.Fatalf("ParseQuery(%q) = %v, %v; want %v", raw, got, err, want)
		}
	})
}
