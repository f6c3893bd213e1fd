package cors

import (
	"strings"
	"testing"
)

// TestMatcher: origins given with a scheme admit that scheme, host and
// port only; host patterns (ParseOriginPatterns) admit the host over http
// and https; "*." admits subdomains; nothing but a serialized origin is
// admitted, except by "*".
func TestMatcher(t *testing.T) {
	m, err := ParseOriginPatterns([]string{
		"https://app.example.com", "https://*.example.org", "http://localhost:3000",
		"partner.example.net", "*.tenant.example.net", "dev.example.net:8443",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://APP.example.com", true},
		{"http://app.example.com", false}, // the scheme counts
		{"wss://app.example.com", false},
		{"https://app.example.com:8443", false},
		{"https://a.example.org", true},
		{"http://a.example.org", false},
		{"https://example.org", false},
		{"http://localhost:3000", true},
		{"https://localhost:3000", false},
		{"http://localhost", false},
		{"https://partner.example.net", true}, // host patterns: http and https
		{"http://partner.example.net", true},
		{"ftp://partner.example.net", false},
		{"https://partner.example.net:8443", false},
		{"https://x.tenant.example.net", true},
		{"http://x.y.tenant.example.net", true},
		{"https://tenant.example.net", false},
		{"https://dev.example.net:8443", true},
		{"https://dev.example.net", false},
		{"https://app.example.com/", false},
		{"https://user@app.example.com", false},
		{"HTTPS://app.example.com", false},
		{"null", false},
		{"", false},
	} {
		if got := m.Allow(tt.origin); got != tt.want {
			t.Errorf("Allow(%q) = %v, want %v", tt.origin, got, tt.want)
		}
	}

	// ParseOrigins takes no host patterns; an origin with a scheme means
	// the same to both.
	if _, err := ParseOrigins([]string{"partner.example.net"}); err == nil || !strings.HasPrefix(err.Error(), "cors: ") {
		t.Errorf("ParseOrigins of a host pattern: %v", err)
	}
	strict, err := ParseOrigins([]string{"https://app.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !strict.Allow("https://app.example.com") || strict.Allow("http://app.example.com") {
		t.Error("ParseOrigins: https://app.example.com does not admit itself alone")
	}

	any, err := ParseOriginPatterns([]string{"app.example.com", " * "})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"https://evil.com", "null", "not an origin"} {
		if !any.Allow(o) || !any.Any() {
			t.Errorf("with *: Allow(%q) refused", o)
		}
	}
	var none *Matcher
	if none.Allow("https://app.example.com") || none.Any() || !none.Empty() {
		t.Error("a nil Matcher admits something")
	}
	if empty, err := ParseOriginPatterns([]string{"", " "}); err != nil || !empty.Empty() || empty.Allow("https://app.example.com") {
		t.Errorf("blank patterns: %v, %v", empty, err)
	}
}

func TestParseOriginPatternsErrors(t *testing.T) {
	for _, p := range []string{
		"[bad", "app-?.example.com", "*://*", "ftp://app.example.com", "ws://app.example.com",
		"app.example.com/", "app.example.com/x", "app.example.com?x", "app.example.com#x",
		"user@app.example.com", "app.*.example.com", "*example.com", "a*.example.com", "*.*.example.com",
		"https://app.example.com/", "https://", "//app.example.com", "app example.com",
	} {
		if _, err := ParseOriginPatterns([]string{"app.example.com", p}); err == nil || !strings.HasPrefix(err.Error(), "cors: ") {
			t.Errorf("ParseOriginPatterns(%q): %v, want a cors: error", p, err)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tt := range []struct {
		origin, host string
		want         bool
	}{
		{"https://api.example.com", "api.example.com", true},
		{"http://api.example.com", "api.example.com", true}, // the scheme is not known behind a proxy
		{"https://API.example.com", "api.EXAMPLE.com", true},
		{"https://api.example.com:8443", "api.example.com:8443", true},
		{"https://api.example.com:8443", "api.example.com", false},
		{"https://api.example.com", "api.example.com:443", false},
		{"https://api.example.com/", "api.example.com", false},
		{"https://x@api.example.com", "api.example.com", false},
		{"null", "", false},
		{"", "", false},
		{"https://", "", false},
	} {
		if got := SameOrigin(tt.origin, tt.host); got != tt.want {
			t.Errorf("SameOrigin(%q, %q) = %v, want %v", tt.origin, tt.host, got, tt.want)
		}
	}
}
