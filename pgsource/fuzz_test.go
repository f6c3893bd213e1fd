package pgsource

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
)

// FuzzKey: DecodeKey never panics, and what it accepts EncodeKey gives
// back byte for byte; EncodeKey's ids decode to their parts.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"42", "a%2Cb,7", "%25", ",", "", "%0A", "%2c", "%41", "x%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		parts, err := DecodeKey(id)
		if err == nil {
			if again := EncodeKey(parts); again != id {
				t.Fatalf("DecodeKey(%q) = %q, which encodes as %q", id, parts, again)
			}
		}
		ps := strings.Split(id, "|")
		got, err := DecodeKey(EncodeKey(ps))
		if err != nil || !slices.Equal(got, ps) {
			t.Fatalf("DecodeKey(EncodeKey(%q)) = %q, %v", ps, got, err)
		}
	})
}

// FuzzParseTable: ParseTable never panics, and what it accepts is valid
// and prints back to an equivalent mapping.
func FuzzParseTable(f *testing.F) {
	for _, s := range []string{"public.products", "public.products=items", "orders", "a.b.c", "=x", "s.t=", "S.T=t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tb, err := ParseTable(s)
		if err != nil {
			return
		}
		if err := tb.validate(); err != nil {
			t.Fatalf("ParseTable(%q) = %+v, which is invalid: %v", s, tb, err)
		}
		again, err := ParseTable(tb.String() + "=" + tb.Collection)
		if err != nil || again != tb {
			t.Fatalf("ParseTable(%q) = %+v; printed back it parses as %+v, %v", s, tb, again, err)
		}
	})
}

// FuzzArray: parseArray never panics, and an array it accepts maps to
// valid JSON.
func FuzzArray(f *testing.F) {
	for _, s := range []string{`{1,2,3}`, `{"a b","c,d",NULL,"NULL"}`, `{{1,2},{3,4}}`, `[0:1]={1,2}`, `{}`, `{ a , b }`, `{"\\""}`, `{a\,b}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, elem := range []*pgType{typeString, typeNumber, typeJSON, typeBytea} {
			out := appendValue(nil, &pgType{kind: kindArray, elem: elem, delim: ','}, s)
			if !jsonValid(out) {
				t.Fatalf("array %q as %v: invalid JSON %s", s, elem.kind, out)
			}
		}
	})
}

// FuzzValue: every column type maps any text to valid JSON.
func FuzzValue(f *testing.F) {
	for _, s := range []string{"12.50", "NaN", "1e400", "-0", "2024-01-02 03:04:05+00", `\x00ff`, `{"a":1}`, "t", "9007199254740993"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k := kindString; k <= kindBytea; k++ {
			out := appendValue(nil, &pgType{kind: k}, s)
			if !jsonValid(out) {
				t.Fatalf("%q as kind %d: invalid JSON %s", s, k, out)
			}
		}
	})
}

// FuzzParseLSN: ParseLSN never panics; what it accepts is two hexadecimal
// numbers of at most 32 bits around a slash, which pglogrepl reads alike
// and whose printed form parses back to the same LSN.
func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"16/B374D848", "0/0", "FFFFFFFF/FFFFFFFF", "0/1A2b", "1/", "/1", "1/2/3", " 1/2", "1/2 ", "+1/2", "100000000/0", "0x1/2", "１/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lsn, err := ParseLSN(s)
		if err != nil {
			return
		}
		hi, lo, ok := strings.Cut(s, "/")
		if !ok || len(hi) < 1 || len(hi) > 8 || len(lo) < 1 || len(lo) > 8 || strings.Trim(s, "0123456789abcdefABCDEF/") != "" {
			t.Fatalf("ParseLSN(%q) accepted it as %s", s, lsn)
		}
		if theirs, err := pglogrepl.ParseLSN(s); err != nil || theirs != lsn {
			t.Fatalf("ParseLSN(%q) = %s; pglogrepl reads %s, %v", s, lsn, theirs, err)
		}
		if again, err := ParseLSN(lsn.String()); err != nil || again != lsn {
			t.Fatalf("ParseLSN(%q) = %s, whose text parses as %s, %v", s, lsn, again, err)
		}
	})
}
