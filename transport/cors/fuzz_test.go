package cors

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// admits is the reference allowlist check for testOrigins: o must be a
// serialized origin (RFC 6454: scheme "://" host [":" port], nothing else,
// in ASCII) whose scheme and host match an entry; hosts compare ASCII
// case-insensitively, and "*." admits any non-empty run before the domain.
func admits(o string) bool {
	scheme, host, ok := strings.Cut(o, "://")
	if !ok || host == "" || strings.ContainsAny(host, "/?#@\\%") {
		return false
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x7f || host[i] <= 0x20 {
			return false
		}
	}
	host = asciiLower(host)
	switch scheme {
	case "https":
		if host == "app.example.com" {
			return true
		}
		label, ok := strings.CutSuffix(host, ".example.org")
		return ok && label != ""
	case "http":
		return host == "localhost:3000"
	}
	return false
}

// plainOrigin matches the origins browsers send for DNS names: those the
// middleware must allow whenever admits does.
var plainOrigin = regexp.MustCompile(`^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$`)

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzCORSOrigin sends arbitrary Origin headers, on simple requests and
// preflights, through the middleware with the fixed allowlist testOrigins
// and with "*". Access-Control-Allow-Origin may only ever be the request's
// own Origin when the allowlist admits it, or "*" when any origin is
// allowed (and then without credentials).
func FuzzCORSOrigin(f *testing.F) {
	for _, o := range []string{
		"https://app.example.com", "https://APP.example.com", "http://app.example.com",
		"https://a.example.org", "https://example.org", "https://.example.org",
		"https://a.example.org.evil.com", "http://localhost:3000", "http://localhost:3001",
		"https://app.example.com/", "https://evil@app.example.com", "https://app.example.com#x",
		"https://app.example.com?", "https://app.example.com:443", "null", "", "https://" + apiHost,
		"https://a/.example.org", "https://a%2F.example.org", "https://a\\.example.org",
		"https://a%25.example.org", "HTTPS://app.example.com", "https://a!.example.org", "https://\u212a.example.org",
		"https://x:1.example.org", "https://APP.EXAMPLE.COM",
	} {
		f.Add(o, false)
		f.Add(o, true)
	}
	list, _ := handler(f, Options{Origins: testOrigins})
	anyOrigin, _ := handler(f, Options{Origins: []string{"*"}})
	f.Fuzz(func(t *testing.T, origin string, preflight bool) {
		method, reqMethod := http.MethodGet, ""
		if preflight {
			method, reqMethod = http.MethodOptions, http.MethodPut
		}
		r := func() *http.Request {
			r := httptest.NewRequest(method, "http://"+apiHost+"/v1/c/products", nil)
			r.Header["Origin"] = []string{origin} // as is, even if a client would refuse it
			if reqMethod != "" {
				r.Header.Set("Access-Control-Request-Method", reqMethod)
			}
			return r
		}

		w := httptest.NewRecorder()
		list.ServeHTTP(w, r())
		acao := w.Header().Values("Access-Control-Allow-Origin")
		creds := w.Header().Get("Access-Control-Allow-Credentials")
		switch {
		case len(acao) > 1:
			t.Fatalf("Origin %q: Access-Control-Allow-Origin set %d times", origin, len(acao))
		case len(acao) == 1:
			if acao[0] != origin {
				t.Fatalf("Origin %q: Access-Control-Allow-Origin %q", origin, acao[0])
			}
			if !admits(origin) {
				t.Fatalf("Origin %q is not in the allowlist, yet Access-Control-Allow-Origin is %q", origin, acao[0])
			}
			if creds != "true" {
				t.Fatalf("Origin %q: allowed without credentials", origin)
			}
		default:
			if creds != "" {
				t.Fatalf("Origin %q: credentials %q without Allow-Origin", origin, creds)
			}
		}
		if admits(origin) && plainOrigin.MatchString(origin) && len(acao) == 0 {
			t.Fatalf("Origin %q is in the allowlist but was not allowed", origin)
		}
		if preflight && len(acao) == 1 != (w.Code == http.StatusNoContent) {
			t.Fatalf("preflight from %q: status %d", origin, w.Code)
		}

		w = httptest.NewRecorder()
		anyOrigin.ServeHTTP(w, r())
		acao = w.Header().Values("Access-Control-Allow-Origin")
		if len(acao) > 1 || len(acao) == 1 && acao[0] != "*" {
			t.Fatalf("Origin %q with \"*\": Access-Control-Allow-Origin %q", origin, acao)
		}
		if c := w.Header().Get("Access-Control-Allow-Credentials"); c != "" {
			t.Fatalf("Origin %q with \"*\": credentials %q", origin, c)
		}
	})
}

// FuzzOriginPatterns parses an arbitrary pattern and matches an arbitrary
// origin against it. It must never panic; what it admits must be what the
// reference refAdmits admits (a serialized origin, scheme and host equal
// to the pattern's, or any subdomain for "*."; a pattern without a scheme
// admits http and https); and a pattern with a scheme must mean the same
// to ParseOrigins, the CORS middleware's parser, as to ParseOriginPatterns.
func FuzzOriginPatterns(f *testing.F) {
	for _, s := range [][2]string{
		{"https://app.example.com", "https://app.example.com"},
		{"https://app.example.com", "http://app.example.com"},
		{"app.example.com", "http://app.example.com"},
		{"app.example.com", "https://APP.example.com"},
		{"*.example.org", "https://a.b.example.org"},
		{"https://*.example.org", "http://a.example.org"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"*", "null"},
		{"app.example.com", "https://app.example.com/"},
		{"ftp://app.example.com", "ftp://app.example.com"},
		{"*://*", "https://x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		m, err := ParseOriginPatterns([]string{pattern})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cors: ") {
				t.Fatalf("error %q lacks the cors: prefix", err)
			}
			return
		}
		got := m.Allow(origin)
		if want := refAdmits(pattern, origin); got != want {
			t.Fatalf("pattern %q, origin %q: Allow %v, reference %v", pattern, origin, got, want)
		}
		if strings.Contains(pattern, "://") {
			strict, err := ParseOrigins([]string{pattern})
			if err != nil {
				t.Fatalf("pattern %q: ParseOrigins refuses it: %v", pattern, err)
			}
			if strict.Allow(origin) != got {
				t.Fatalf("pattern %q, origin %q: ParseOrigins and ParseOriginPatterns disagree", pattern, origin)
			}
		}
	})
}

// refAdmits is the reference of a one-entry Matcher: pattern is "*", or
// [scheme "://"] host, host maybe starting "*.".
func refAdmits(pattern, origin string) bool {
	pattern = strings.TrimSpace(pattern)
	if pattern == "" {
		return false
	}
	if pattern == "*" {
		return true
	}
	oScheme, oHost, ok := strings.Cut(origin, "://")
	if !ok || oHost == "" || strings.ContainsAny(oHost, "/?#@\\%") {
		return false
	}
	for i := 0; i < len(origin); i++ {
		if origin[i] >= 0x7f || origin[i] <= 0x20 {
			return false
		}
	}
	if oScheme != "http" && oScheme != "https" {
		return false
	}
	// Which hosts are well formed is the standard library's to say (a
	// "|" is not); the reference checks what is matched against what.
	if u, err := url.Parse(origin); err != nil || u.Host != oHost {
		return false
	}
	pScheme, pHost, ok := strings.Cut(pattern, "://")
	if !ok {
		pScheme, pHost = oScheme, pattern
	}
	if strings.ToLower(pScheme) != oScheme {
		return false
	}
	pHost, oHost = asciiLower(pHost), asciiLower(oHost)
	if sub, ok := strings.CutPrefix(pHost, "*."); ok {
		label, ok := strings.CutSuffix(oHost, "."+sub)
		return ok && label != ""
	}
	return pHost == oHost
}
