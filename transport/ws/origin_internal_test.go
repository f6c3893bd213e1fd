package ws

import (
	"strings"
	"testing"
)

// TestOriginAllowed: the request's own host and the configured patterns
// (host, or scheme://host) are allowed, case aside; anything else,
// including what does not parse as an origin, is refused.
func TestOriginAllowed(t *testing.T) {
	h := &Handler{origins: []string{"app.example.com", "*.partner.org", "https://secure.example.net"}}
	cases := []struct {
		origin, host string
		want         bool
	}{
		{"", "viewsync.local", true},
		{"https://viewsync.local", "viewsync.local", true},
		{"http://VIEWSYNC.local", "viewsync.local", true},
		{"https://viewsync.local:8443", "viewsync.local:8443", true},
		{"https://viewsync.local:8443", "viewsync.local", false},
		{"https://app.example.com", "viewsync.local", true},
		{"http://APP.example.com", "viewsync.local", true},
		{"https://evil.example.com", "viewsync.local", false},
		{"https://a.partner.org", "viewsync.local", true},
		{"https://partner.org", "viewsync.local", false},
		{"https://secure.example.net", "viewsync.local", true},
		{"http://secure.example.net", "viewsync.local", false},
		{"null", "viewsync.local", false},
		{"not a url", "viewsync.local", false},
		{"https://", "viewsync.local", false},
		{"://app.example.com", "viewsync.local", false},
	}
	for _, c := range cases {
		if got := h.originAllowed(c.origin, c.host); got != c.want {
			t.Errorf("originAllowed(%q, host %q) = %v, want %v", c.origin, c.host, got, c.want)
		}
	}
}

// FuzzOriginAllowed: any Origin header is answered without panicking, a
// browser's same-origin request is always allowed, and with no patterns
// nothing foreign is.
func FuzzOriginAllowed(f *testing.F) {
	for _, s := range []string{"https://app.example.com", "null", "http://[::1]:80", "https://a%2fb", "HTTPS://X.Y", ""} {
		f.Add(s, "viewsync.local")
	}
	same := &Handler{}
	open := &Handler{origins: []string{"*", "*://*"}}
	f.Fuzz(func(t *testing.T, origin, host string) {
		got := same.originAllowed(origin, host)
		if origin == "" && !got {
			t.Fatal("a request without Origin was refused")
		}
		if got && origin != "" && !strings.Contains(strings.ToLower(origin), strings.ToLower(host)) {
			t.Fatalf("origin %q allowed for host %q with no patterns", origin, host)
		}
		open.originAllowed(origin, host)
	})
}
