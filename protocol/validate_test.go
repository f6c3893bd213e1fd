package protocol_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestValidateCollection(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"products", true},
		{"a-b_c.d", true},
		{"9lives", true},
		{"a.", true},
		{"a-", true},
		{"a_", true},
		{"a..b", true},
		{"a" + strings.Repeat("b", 63), true}, // 64 characters
		{strings.Repeat("z", 64), true},
		{"", false},
		{"a" + strings.Repeat("b", 64), false}, // 65 characters
		{"-a", false},
		{"_a", false},
		{".a", false},
		{".", false},
		{"..", false},
		{"A", false},
		{"Products", false},
		{"aB", false},
		{"a b", false},
		{" a", false},
		{"a ", false},
		{"a/b", false},
		{"a:b", false},
		{"a+b", false},
		{"a%2Fb", false},
		{"é", false},
		{"aé", false},
		{"a\x00", false},
		{"a\n", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		err := protocol.ValidateCollection(tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidateCollection(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, protocol.ErrBadName) {
			t.Errorf("ValidateCollection(%q) = %v, want ErrBadName", tt.name, err)
		}
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		maxLen int
		ok     bool
	}{
		{"one byte", "a", 0, true},
		{"256 bytes", strings.Repeat("a", 256), 0, true},
		{"256 bytes of two-byte runes", strings.Repeat("é", 128), 0, true},
		{"unicode", "日本語", 0, true},
		{"emoji", "🙂", 0, true},
		{"space", "a b", 0, true},
		{"slash", "a/b", 0, true},
		{"only slash", "/", 0, true},
		{"dots", "..", 0, true},
		{"percent", "%2F", 0, true},
		{"line separator is not a control", "a\u2028b", 0, true},
		{"replacement char itself", "\uFFFD", 0, true},
		{"within custom bound", "abc", 3, true},
		{"negative bound means default", strings.Repeat("a", 256), -1, true},
		{"bound over MaxIDLen is capped", strings.Repeat("a", 256), 1000, true},

		{"empty", "", 0, false},
		{"257 bytes", strings.Repeat("a", 257), 0, false},
		{"258 bytes of two-byte runes", strings.Repeat("é", 129), 0, false},
		{"over custom bound", "abcd", 3, false},
		{"bound over MaxIDLen still rejects 257", strings.Repeat("a", 257), 1000, false},
		{"invalid UTF-8", "\xff", 0, false},
		{"truncated rune", "a\xc3", 0, false},
		{"overlong encoding", "\xc0\xaf", 0, false},
		{"surrogate half", "\xed\xa0\x80", 0, false},
		{"NUL", "a\x00b", 0, false},
		{"tab", "a\tb", 0, false},
		{"newline", "a\n", 0, false},
		{"carriage return", "\r", 0, false},
		{"unit separator", "\x1f", 0, false},
		{"DEL", "a\x7f", 0, false},
		{"C1 NEL U+0085", "a\u0085", 0, false},
		{"C1 U+009F", "\u009f", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := protocol.ValidateID(tt.id, tt.maxLen)
			if tt.ok && err != nil {
				t.Errorf("ValidateID(%q, %d) = %v, want nil", tt.id, tt.maxLen, err)
			}
			if !tt.ok && !errors.Is(err, protocol.ErrBadID) {
				t.Errorf("ValidateID(%q, %d) = %v, want ErrBadID", tt.id, tt.maxLen, err)
			}
		})
	}
}

func TestCompactValue(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // empty: an error wrapping ErrBadValue
	}{
		{"number", `1`, `1`},
		{"compact object", `{"a":1}`, `{"a":1}`},
		{"spaces around", " \t\r\n1\n", `1`},
		{"spaces in object", "{ \"a\" :\t1 ,\n\"b\": [ 1 , 2 ] }", `{"a":1,"b":[1,2]}`},
		{"spaces inside strings kept", `{"a b":"c  d"}`, `{"a b":"c  d"}`},
		{"spaces inside and outside strings", `{ "a b" : " c " }`, `{"a b":" c "}`},
		{"escaped quote then space in string", `{"a":"\" x"}`, `{"a":"\" x"}`},
		{"escaped backslash ends string", `{"a":"\\" , "b":1}`, `{"a":"\\","b":1}`},
		{"escapes untouched", `"\u00e9\n\t\/"`, `"\u00e9\n\t\/"`},
		{"number text kept", `[1.10, 12345678901234567890, 1e300, -0]`, `[1.10,12345678901234567890,1e300,-0]`},
		{"null", ` null `, `null`},
		{"unicode", `"日本"`, `"日本"`},

		{"empty", ``, ``},
		{"only space", `   `, ``},
		{"unterminated", `{"a":1`, ``},
		{"trailing data", `{"a":1}x`, ``},
		{"two values", `1 2`, ``},
		{"two objects", `{}{}`, ``},
		{"single quotes", `'a'`, ``},
		{"bare word", `nul`, ``},
		{"NaN", `NaN`, ``},
		{"leading zero", `01`, ``},
		{"trailing comma", `[1,]`, ``},
		{"raw control in string", "\"a\tb\"", ``},
		{"byte order mark", "\ufeff1", ``},
		{"invalid UTF-8 in string", "\"\xff\"", ``},
		{"invalid UTF-8 in key", "{\"\xc3\":1}", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.CompactValue(json.RawMessage(tt.in))
			if tt.want == "" {
				if !errors.Is(err, protocol.ErrBadValue) {
					t.Fatalf("CompactValue(%q) = %q, %v; want ErrBadValue", tt.in, got, err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("CompactValue(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}

	t.Run("nil", func(t *testing.T) {
		if _, err := protocol.CompactValue(nil); !errors.Is(err, protocol.ErrBadValue) {
			t.Fatalf("CompactValue(nil) error = %v, want ErrBadValue", err)
		}
	})
	t.Run("compact input returned as is", func(t *testing.T) {
		in := json.RawMessage(`{"a":[1,2]}`)
		got, err := protocol.CompactValue(in)
		if err != nil {
			t.Fatal(err)
		}
		if &got[0] != &in[0] || len(got) != len(in) {
			t.Fatalf("CompactValue copied an already compact value")
		}
	})
}

func TestNormalizeOp(t *testing.T) {
	tests := []struct {
		name     string
		op       protocol.Op
		maxID    int
		maxValue int
		want     protocol.Op
		wantErr  error
	}{
		{
			name: "put compacts its value",
			op:   protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`{ "x" : 1 }`)},
			want: protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`{"x":1}`)},
		},
		{
			name: "put of null",
			op:   protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`null`)},
			want: protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`null`)},
		},
		{
			name:     "value size is counted after compaction",
			op:       protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`  [1, 2]  `)},
			maxValue: 5,
			want:     protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`[1,2]`)},
		},
		{
			name: "delete",
			op:   protocol.Op{Op: protocol.OpDelete, ID: "a"},
			want: protocol.Op{Op: protocol.OpDelete, ID: "a"},
		},
		{
			name:  "id at custom bound",
			op:    protocol.Op{Op: protocol.OpDelete, ID: "abc"},
			maxID: 3,
			want:  protocol.Op{Op: protocol.OpDelete, ID: "abc"},
		},
		{
			name:    "put without value",
			op:      protocol.Op{Op: protocol.OpPut, ID: "a"},
			wantErr: protocol.ErrBadValue,
		},
		{
			name:    "put of invalid JSON",
			op:      protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`{`)},
			wantErr: protocol.ErrBadValue,
		},
		{
			name:     "put over value bound",
			op:       protocol.Op{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`"abcd"`)},
			maxValue: 5,
			wantErr:  protocol.ErrTooLarge,
		},
		{
			name:    "delete with value",
			op:      protocol.Op{Op: protocol.OpDelete, ID: "a", Value: json.RawMessage(`1`)},
			wantErr: protocol.ErrBadOp,
		},
		{
			name:    "delete with null value",
			op:      protocol.Op{Op: protocol.OpDelete, ID: "a", Value: json.RawMessage(`null`)},
			wantErr: protocol.ErrBadOp,
		},
		{
			name:    "unknown op",
			op:      protocol.Op{Op: "patch", ID: "a", Value: json.RawMessage(`{}`)},
			wantErr: protocol.ErrBadOp,
		},
		{
			name:    "op kind is case sensitive",
			op:      protocol.Op{Op: "PUT", ID: "a", Value: json.RawMessage(`1`)},
			wantErr: protocol.ErrBadOp,
		},
		{
			name:    "missing op kind",
			op:      protocol.Op{ID: "a"},
			wantErr: protocol.ErrBadOp,
		},
		{
			name:    "empty id",
			op:      protocol.Op{Op: protocol.OpPut, Value: json.RawMessage(`1`)},
			wantErr: protocol.ErrBadID,
		},
		{
			name:    "id over custom bound",
			op:      protocol.Op{Op: protocol.OpDelete, ID: "abcd"},
			maxID:   3,
			wantErr: protocol.ErrBadID,
		},
		{
			name:    "id with control character",
			op:      protocol.Op{Op: protocol.OpDelete, ID: "a\x7f"},
			wantErr: protocol.ErrBadID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.NormalizeOp(tt.op, tt.maxID, tt.maxValue)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("NormalizeOp(%+v) error = %v, want %v", tt.op, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeOp(%+v) error = %v", tt.op, err)
			}
			if got.Op != tt.want.Op || got.ID != tt.want.ID || string(got.Value) != string(tt.want.Value) {
				t.Fatalf("NormalizeOp(%+v) = %+v (value %s), want %+v (value %s)", tt.op, got, got.Value, tt.want, tt.want.Value)
			}
		})
	}
}
