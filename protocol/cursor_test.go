package protocol_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"1", 1, true},
		{"42", 42, true},
		{"007", 7, true},
		{"00000000000000000042", 42, true}, // 20 characters
		{"18446744073709551615", math.MaxUint64, true},

		{"", 0, false},
		{"18446744073709551616", 0, false}, // MaxUint64 + 1
		{"99999999999999999999", 0, false},
		{"99999999999999999999999", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"-0", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1\n", 0, false},
		{"1 2", 0, false},
		{"1.0", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
		{"abc", 0, false},
		{"١", 0, false}, // ARABIC-INDIC DIGIT ONE
		{"１", 0, false}, // FULLWIDTH DIGIT ONE
	}
	for _, tt := range tests {
		got, err := protocol.ParseVersion(tt.in)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("ParseVersion(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, protocol.ErrBadCursor) {
			t.Errorf("ParseVersion(%q) = %d, %v; want ErrBadCursor", tt.in, got, err)
		}
	}
}

func TestValidateEpoch(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"", true},
		{"e", true},
		{"abc-DEF_123", true},
		{strings.Repeat("x", protocol.MaxEpochLen), true},

		{strings.Repeat("x", protocol.MaxEpochLen+1), false},
		{"a:b", false},
		{"a b", false},
		{"a.b", false},
		{"a/b", false},
		{"a,b", false},
		{`a"b`, false},
		{"é", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		err := protocol.ValidateEpoch(tt.in)
		if tt.ok && err != nil {
			t.Errorf("ValidateEpoch(%q) = %v, want nil", tt.in, err)
		}
		if !tt.ok && !errors.Is(err, protocol.ErrBadCursor) {
			t.Errorf("ValidateEpoch(%q) = %v, want ErrBadCursor", tt.in, err)
		}
	}
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in   string
		want protocol.Cursor
		ok   bool
	}{
		{"E1:42", protocol.Cursor{Epoch: "E1", Version: 42}, true},
		{"e-_Z9:0", protocol.Cursor{Epoch: "e-_Z9", Version: 0}, true},
		{":42", protocol.Cursor{Version: 42}, true},
		{"42", protocol.Cursor{Version: 42}, true},
		{"0", protocol.Cursor{}, true},
		{"E:007", protocol.Cursor{Epoch: "E", Version: 7}, true},
		{"E:18446744073709551615", protocol.Cursor{Epoch: "E", Version: math.MaxUint64}, true},
		{strings.Repeat("e", protocol.MaxEpochLen) + ":1", protocol.Cursor{Epoch: strings.Repeat("e", protocol.MaxEpochLen), Version: 1}, true},

		{"", protocol.Cursor{}, false},
		{":", protocol.Cursor{}, false},
		{"E:", protocol.Cursor{}, false},
		{"E", protocol.Cursor{}, false},
		{"E:-1", protocol.Cursor{}, false},
		{"E:+1", protocol.Cursor{}, false},
		{"E: 1", protocol.Cursor{}, false},
		{"E:1 ", protocol.Cursor{}, false},
		{" E:1", protocol.Cursor{}, false},
		{"a:b:3", protocol.Cursor{}, false},
		{"E::3", protocol.Cursor{}, false},
		{"E:18446744073709551616", protocol.Cursor{}, false},
		{"bad epoch!:3", protocol.Cursor{}, false},
		{strings.Repeat("e", protocol.MaxEpochLen+1) + ":1", protocol.Cursor{}, false},
	}
	for _, tt := range tests {
		got, err := protocol.ParseCursor(tt.in)
		if !tt.ok {
			if !errors.Is(err, protocol.ErrBadCursor) {
				t.Errorf("ParseCursor(%q) = %+v, %v; want ErrBadCursor", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		again, err := protocol.ParseCursor(got.String())
		if err != nil || again != got {
			t.Errorf("ParseCursor(%q).String() = %q parses to %+v, %v; want %+v", tt.in, got.String(), again, err, got)
		}
	}
}

func TestCursorString(t *testing.T) {
	tests := []struct {
		c    protocol.Cursor
		want string
	}{
		{protocol.Cursor{Epoch: "E1", Version: 42}, "E1:42"},
		{protocol.Cursor{Version: 7}, ":7"},
		{protocol.Cursor{}, ":0"},
		{protocol.Cursor{Epoch: "x", Version: math.MaxUint64}, "x:18446744073709551615"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.c, got, tt.want)
		}
		if got := string(tt.c.AppendTo([]byte("id: "))); got != "id: "+tt.want {
			t.Errorf("%+v.AppendTo = %q, want %q", tt.c, got, "id: "+tt.want)
		}
		back, err := protocol.ParseCursor(tt.want)
		if err != nil || back != tt.c {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v", tt.want, back, err, tt.c)
		}
	}
	if got := (protocol.Head{Epoch: "E", Version: 3}).Cursor(); got != (protocol.Cursor{Epoch: "E", Version: 3}) {
		t.Errorf("Head.Cursor() = %+v", got)
	}
}
