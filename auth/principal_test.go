package auth

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		// Exact names.
		{"products", "products", true},
		{"products", "product", false},
		{"product", "products", false},
		{"Products", "products", false},
		{"a.b", "a.b", true},
		{"a.b", "axb", false}, // '.' is a literal, not a regexp dot
		// Empty pattern and name.
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*", "", true},
		{"**", "", true},
		{"***", "", true},
		{"a*", "", false},
		{"*a", "", false},
		// A single star.
		{"*", "a", true},
		{"*", "orders.eu.north", true},
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders.eu.north", true}, // stars match dots
		{"orders.*", "orders.", true},         // and the empty run
		{"orders.*", "orders", false},
		{"orders.*", "ordersXeu", false},
		{"orders.*", "archive.orders.eu", false},
		{"*.eu", "orders.eu", true},
		{"*.eu", "orders.eu.north", false},
		{"*.eu", "eu", false},
		{"*.eu", ".eu", true},
		{"a*c", "a.b.c", true},
		{"a*c", "ac", true},
		{"a*c", "acb", false},
		// A star is a wildcard only in the pattern.
		{"a*", "a*", true},
		{"a", "*", false},
		{"*", "*", true},
		// Multiple stars.
		{"*.*", "a.b", true},
		{"*.*", "ab", false},
		{"*.*.*", "a.b.c", true},
		{"*.*.*", "a.b", false},
		{"*.*.*", "..", true},
		{"a**b", "ab", true},
		{"a**b", "axxb", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbYcZ", false},
		{"a*b*c", "acb", false},
		{"a*b*c*", "abc.def", true},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b*", "xxbxxaxx", false},
		// Pattern longer than name.
		{"orders.eu", "orders", false},
		{"abc", "ab", false},
		{"ab*", "a", false},
		{"ab**", "a", false},
		{"a*b*c", "ab", false},
		{"a*bc", "abc", true},
		{"a*bcd", "abc", false},
		// Backtracking: the first place a star could stop is wrong.
		{"*ab", "aab", true},
		{"*abc", "ababc", true},
		{"*abc", "ababd", false},
		{"a*ab", "aaab", true},
		{"a*a*a", "aaa", true},
		{"a*a*a", "aa", false},
		{"*a*b", "aaab", true},
		{"*.eu", "x.eu.eu", true},
		{"*.eu.*", "a.eu.b.eu.c", true},
		{"*aab", "aaaab", true},
		{"*x*y*z", "xyxyxyz", true},
		{"*x*y*z", "xyxyxy", false},
		{"a*b", "abbbbb", true},
		{"a*b", "abbbba", false},
		// Long runs that a naive recursive matcher would explode on.
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 200), false},
		{strings.Repeat("*a", 20) + "*", strings.Repeat("a", 200), true},
		{strings.Repeat("*a", 201), strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
		// The reference implementation must agree with the table, so
		// that the fuzz target compares against something right.
		if got := refMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (reference is wrong)", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// refMatch is Match done with a regular expression: each '*' is ".*" (dots
// and newlines included), everything else literal. Match works on bytes and
// regexp on runes, so both strings are first widened byte by byte (Latin-1),
// which keeps invalid UTF-8 comparable.
func refMatch(pattern, name string) bool {
	parts := strings.Split(latin1(pattern), "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?s)\A` + strings.Join(parts, ".*") + `\z`).MatchString(latin1(name))
}

func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"orders.*", "orders.eu.north"},
		{"*", ""},
		{"a*b*c", "aXbYc"},
		{"*ab", "aab"},
		{"a*a*a", "aa"},
		{"", ""},
		{"products", "products"},
		{"*.eu.*", "a.eu.b.eu.c"},
		{"a\\*", "a\\b"},
		{"(a|b)*[x]", "(a|b)zz[x]"},
		{"\xff*\x00", "\xff\x01\x00"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 512 || len(name) > 512 {
			return // keep the regexp reference cheap
		}
		got := Match(pattern, name)
		if want := refMatch(pattern, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, name, got, want)
		}
		// Invariants that hold for any pattern.
		if !strings.Contains(pattern, "*") && got != (pattern == name) {
			t.Fatalf("Match(%q, %q) = %v for a pattern without stars", pattern, name, got)
		}
		if !Match(strings.ReplaceAll(pattern, "*", ""), strings.ReplaceAll(pattern, "*", "")) {
			t.Fatalf("a starless pattern %q does not match itself", strings.ReplaceAll(pattern, "*", ""))
		}
		if !Match(pattern, strings.ReplaceAll(pattern, "*", "")) {
			t.Fatalf("Match(%q, the pattern without its stars) = false; stars match the empty run", pattern)
		}
		if got && !Match("*"+pattern, "x"+name) {
			t.Fatalf("Match(%q, %q) but not with a leading star and character", pattern, name)
		}
	})
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Read: "read", Write: "write", Call: "call", 0: "Action(0)", 7: "Action(7)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", uint8(a), got, want)
		}
	}
}

func TestRightsValidate(t *testing.T) {
	long := strings.Repeat("a", 128)
	good := []Rights{
		{},
		All,
		{Read: []string{"products", "orders.*", "*"}, Write: []string{"a-b_c.d9"}, Call: []string{"discount"}},
		{Read: []string{long}},
		{Call: []string{"***"}},
		{Write: []string{"."}},
	}
	for _, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v, want nil", r, err)
		}
	}
	bad := []struct {
		r    Rights
		want string // in the message
	}{
		{Rights{Read: []string{""}}, `read right ""`},
		{Rights{Read: []string{long + "a"}}, "read right"},
		{Rights{Write: []string{"orders/eu"}}, `write right "orders/eu"`},
		{Rights{Call: []string{"dis count"}}, `call right "dis count"`},
		{Rights{Read: []string{"ok", "a/b"}}, `read right "a/b"`},
		{Rights{Read: []string{"caf\u00e9"}}, "read right"},
		{Rights{Read: []string{"a?"}}, "read right"},
		{Rights{Read: []string{"a\x00"}}, "read right"},
		{Rights{Read: []string{"ok"}, Write: []string{"ok"}, Call: []string{"ok", "[x]"}}, "call right"},
	}
	for _, tt := range bad {
		err := tt.r.Validate()
		if err == nil {
			t.Errorf("%+v.Validate() = nil, want an error", tt.r)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v.Validate() = %q, want it to mention %q", tt.r, err, tt.want)
		}
	}
}

// TestCallNamesWithCapitals: call names may have capitals, so patterns
// may too; matching is case-sensitive.
func TestCallNamesWithCapitals(t *testing.T) {
	r := Rights{Call: []string{"getUser", "admin.*"}}
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for name, want := range map[string]bool{"getUser": true, "getuser": false, "GetUser": false, "admin.Reset": true} {
		if got := r.Allows(Call, name); got != want {
			t.Errorf("Allows(call, %q) = %v, want %v", name, got, want)
		}
	}
}

func TestRightsAllows(t *testing.T) {
	r := Rights{
		Read:  []string{"products", "orders.*"},
		Write: []string{"products"},
		Call:  []string{"discount", "report.*"},
	}
	tests := []struct {
		a    Action
		name string
		want bool
	}{
		{Read, "products", true},
		{Read, "orders.eu", true},
		{Read, "orders.eu.north", true},
		{Read, "orders", false},
		{Read, "discount", false},
		{Write, "products", true},
		{Write, "orders.eu", false},
		{Call, "discount", true},
		{Call, "report.daily", true},
		{Call, "products", false},
		{0, "products", false},
		{Action(9), "products", false},
	}
	for _, tt := range tests {
		if got := r.Allows(tt.a, tt.name); got != tt.want {
			t.Errorf("Allows(%v, %q) = %v, want %v", tt.a, tt.name, got, tt.want)
		}
	}
	var none Rights
	for _, a := range []Action{Read, Write, Call} {
		if none.Allows(a, "x") {
			t.Errorf("empty Rights allow %v", a)
		}
		if !All.Allows(a, "anything.at.all") || !All.Allows(a, "") {
			t.Errorf("All does not allow %v", a)
		}
	}
	if All.Allows(0, "x") {
		t.Error("All allows Action(0)")
	}
}

func TestPrincipal(t *testing.T) {
	p := Principal{Subject: "ana", Rights: Rights{Read: []string{"products"}}}
	if !p.Allows(Read, "products") || p.Allows(Write, "products") || p.Allows(Read, "orders") {
		t.Errorf("Principal.Allows does not follow its rights")
	}
	if got := p.String(); got != `subject "ana"` {
		t.Errorf("String() = %q", got)
	}
	if got := (Principal{Subject: "a\"b"}).String(); got != `subject "a\"b"` {
		t.Errorf("String() = %q, want the subject quoted", got)
	}
	a := Anonymous()
	if !a.Anonymous || a.Subject != "" || !a.Expires.IsZero() || a.String() != "anonymous" {
		t.Errorf("Anonymous() = %+v", a)
	}
	for _, act := range []Action{Read, Write, Call} {
		if !a.Allows(act, "x.y") {
			t.Errorf("Anonymous() may not %v", act)
		}
	}
}

func TestContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Error("FromContext(Background) found a principal")
	}
	p := Principal{Subject: "ana", Expires: time.Unix(1e9, 0), Rights: Rights{Read: []string{"x"}}}
	ctx := NewContext(context.Background(), p)
	got, ok := FromContext(ctx)
	if !ok || got.Subject != "ana" || !got.Expires.Equal(p.Expires) || !got.Allows(Read, "x") {
		t.Errorf("FromContext = %+v, %v; want %+v", got, ok, p)
	}
	// An inner context overrides.
	got, _ = FromContext(NewContext(ctx, Anonymous()))
	if !got.Anonymous {
		t.Errorf("inner principal not found: %+v", got)
	}
	// Other values with the same underlying type do not collide.
	type otherKey struct{}
	if _, ok := FromContext(context.WithValue(context.Background(), otherKey{}, p)); ok {
		t.Error("FromContext found a principal stored under another key")
	}
}
