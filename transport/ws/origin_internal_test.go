package ws

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/transport/cors"
)

// originHandler returns a handler whose OriginPatterns are patterns.
func originHandler(t testing.TB, patterns ...string) *Handler {
	t.Helper()
	m, err := cors.ParseOriginPatterns(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return &Handler{origins: m}
}

// TestOriginAllowed: the request's own host and the configured patterns
// (a host, for http and https, or scheme://host for that scheme only) are
// allowed, case aside; anything else, including what does not parse as an
// origin, is refused.
func TestOriginAllowed(t *testing.T) {
	h := originHandler(t, "app.example.com", "*.partner.org", "https://secure.example.net", "https://*.tenants.example.com", "http://localhost:3000")
	cases := []struct {
		origin, host string
		want         bool
	}{
		{"", "viewsync.local", true},
		{"https://viewsync.local", "viewsync.local", true},
		{"http://VIEWSYNC.local", "viewsync.local", true},
		{"https://viewsync.local:8443", "viewsync.local:8443", true},
		{"https://viewsync.local:8443", "viewsync.local", false},
		{"https://viewsync.local/x", "viewsync.local", false}, // not an origin
		{"null", "", false},
		{"https://app.example.com", "viewsync.local", true},
		{"http://APP.example.com", "viewsync.local", true},
		{"https://app.example.com:8443", "viewsync.local", false},
		{"ftp://app.example.com", "viewsync.local", false},
		{"https://evil.example.com", "viewsync.local", false},
		{"https://a.partner.org", "viewsync.local", true},
		{"http://a.b.partner.org", "viewsync.local", true},
		{"https://partner.org", "viewsync.local", false},
		{"https://secure.example.net", "viewsync.local", true},
		{"http://secure.example.net", "viewsync.local", false}, // the scheme counts
		{"https://a.tenants.example.com", "viewsync.local", true},
		{"http://a.tenants.example.com", "viewsync.local", false},
		{"http://localhost:3000", "viewsync.local", true},
		{"https://localhost:3000", "viewsync.local", false},
		{"null", "viewsync.local", false},
		{"not a url", "viewsync.local", false},
		{"https://", "viewsync.local", false},
		{"://app.example.com", "viewsync.local", false},
		{"https://app.example.com/", "viewsync.local", false},
		{"https://evil@app.example.com", "viewsync.local", false},
		{"HTTPS://app.example.com", "viewsync.local", false},
	}
	for _, c := range cases {
		if got := h.originAllowed(c.origin, c.host); got != c.want {
			t.Errorf("originAllowed(%q, host %q) = %v, want %v", c.origin, c.host, got, c.want)
		}
	}
}

// TestOriginAllowedAsCORS: with the same origins, a WebSocket is allowed
// exactly when the CORS middleware lets the page in (same origin, or a
// preflight answered 204): an origin refused one is refused the other.
func TestOriginAllowedAsCORS(t *testing.T) {
	origins := []string{"https://app.example.com", "https://*.example.org", "http://localhost:3000"}
	h := originHandler(t, origins...)
	mw, err := cors.Middleware(cors.Options{Origins: origins})
	if err != nil {
		t.Fatal(err)
	}
	api := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, origin := range []string{
		"https://app.example.com", "http://app.example.com", "https://app.example.com:8443",
		"https://a.example.org", "http://a.example.org", "https://example.org",
		"http://localhost:3000", "https://localhost:3000", "http://localhost",
		"https://api.example.net", "http://api.example.net", "null", "https://evil.com",
	} {
		if got, want := h.originAllowed(origin, "api.example.net"), corsAdmits(api, origin, "api.example.net"); got != want {
			t.Errorf("origin %q: WebSocket allowed %v, CORS preflight allowed %v", origin, got, want)
		}
	}
}

// corsAdmits reports whether the CORS middleware api lets a page of origin
// call host: its preflight is not refused.
func corsAdmits(api http.Handler, origin, host string) bool {
	r := httptest.NewRequest(http.MethodOptions, "http://api.example.net/v1/ws", nil)
	r.Host = host
	r.Header["Origin"] = []string{origin}
	r.Header.Set("Access-Control-Request-Method", http.MethodGet)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	return w.Code != http.StatusForbidden
}

// FuzzOriginAllowed: any Origin header is answered without panicking, a
// browser's same-origin request is always allowed, with no patterns
// nothing foreign is, and with the origins of --cors-origin the WebSocket
// check agrees with the CORS middleware's.
func FuzzOriginAllowed(f *testing.F) {
	for _, s := range []string{
		"https://app.example.com", "http://app.example.com", "https://a.example.org", "http://a.example.org",
		"null", "http://[::1]:80", "https://a%2fb", "HTTPS://X.Y", "", "https://viewsync.local/",
	} {
		f.Add(s, "viewsync.local")
	}
	same := &Handler{}
	open := originHandler(f, "*")
	origins := []string{"https://app.example.com", "https://*.example.org", "http://localhost:3000"}
	listed := originHandler(f, origins...)
	mw, err := cors.Middleware(cors.Options{Origins: origins})
	if err != nil {
		f.Fatal(err)
	}
	api := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	f.Fuzz(func(t *testing.T, origin, host string) {
		got := same.originAllowed(origin, host)
		if origin == "" && !got {
			t.Fatal("a request without Origin was refused")
		}
		if got && origin != "" && !strings.Contains(strings.ToLower(origin), strings.ToLower(host)) {
			t.Fatalf("origin %q allowed for host %q with no patterns", origin, host)
		}
		if !open.originAllowed(origin, host) {
			t.Fatalf("origin %q refused with \"*\"", origin)
		}
		if origin == "" || strings.ContainsAny(origin, "\r\n\x00") || strings.ContainsAny(host, " \r\n\x00") {
			return // not a header a request can carry to the middleware
		}
		if ws, cors := listed.originAllowed(origin, host), corsAdmits(api, origin, host); ws != cors {
			t.Fatalf("origin %q, host %q: WebSocket allowed %v, CORS preflight allowed %v", origin, host, ws, cors)
		}
	})
}
