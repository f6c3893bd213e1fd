package pgsource

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestFastPaths: appendString and appendNumber write what their slow
// paths (json.Marshal, exactDouble) do, for plain and special inputs.
func TestFastPaths(t *testing.T) {
	strs := []string{"", "a", "plain text 123", "<b>", "a&b", `q"q`, `b\s`, "tab\t", "é", "\x7f", "\x00", "~", " "}
	for c := range 256 {
		strs = append(strs, "x"+string(rune(c))+"y", string([]byte{byte(c)}))
	}
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
	nums := []string{"0", "-0", "7", "-7", "00", "012", "-", "", "123456789012345", "-123456789012345", "1234567890123456",
		"9007199254740993", "1.5", "1e3", "+1", "12a", "999999999999999", "1000000000000000"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		nums = append(nums, strconv.FormatInt(rng.Int64()>>rng.IntN(63), 10), strconv.FormatInt(-rng.Int64N(1e16), 10))
	}
	for _, s := range nums {
		want := s
		if !exactDouble(s) {
			b, _ := json.Marshal(s)
			want = string(b)
		}
		if got := appendNumber(nil, s); string(got) != want {
			t.Errorf("appendNumber(%q) = %s, want %s", s, got, want)
		}
		if smallInteger(s) && !exactDouble(s) {
			t.Errorf("smallInteger(%q) but not exactDouble", s)
		}
	}
}

// BenchmarkValue: a row of an integer key, a bigint, a short text and a
// jsonb payload as the stream gives them.
func BenchmarkValue(b *testing.B) {
	r := &relation{cols: []column{{"id", typeNumber}, {"n", typeNumber}, {"name", typeString}, {"payload", typeJSON}}}
	cells := []cell{{text: "123456"}, {text: "42"}, {text: "a product name"}, {text: `{"pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "sent_ns": 1765432101234567936}`}}
	b.ReportAllocs()
	for b.Loop() {
		r.value(cells, nil)
	}
}
