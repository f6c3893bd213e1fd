package cors

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

const apiHost = "api.example.com"

var testOrigins = []string{"https://app.example.com", "https://*.example.org", "http://localhost:3000"}

// handler returns the middleware of o around a handler that answers 200
// "next" and counts its calls.
func handler(t testing.TB, o Options) (http.Handler, *int) {
	t.Helper()
	mw, err := Middleware(o)
	if err != nil {
		t.Fatalf("Middleware(%+v): %v", o, err)
	}
	calls := new(int)
	return mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*calls++
		w.Header().Set("ETag", `"v1"`)
		w.Write([]byte("next"))
	})), calls
}

// do serves one request: method, Origin (none when empty), and for a
// preflight the Access-Control-Request-Method.
func do(h http.Handler, method, origin, requestMethod string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://"+apiHost+"/v1/c/products", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	if requestMethod != "" {
		r.Header.Set("Access-Control-Request-Method", requestMethod)
		r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAllowedOrigins(t *testing.T) {
	h, _ := handler(t, Options{Origins: testOrigins})
	tests := []struct {
		origin string
		allow  bool
	}{
		{"https://app.example.com", true},
		{"https://APP.Example.COM", true}, // hosts compare case-insensitively
		{"http://app.example.com", false}, // another scheme
		{"https://app.example.com:8443", false},
		{"https://app.example.com.evil.com", false},
		{"https://evilapp.example.com", false},
		{"https://example.com", false},
		{"https://a.example.org", true}, // wildcard subdomains
		{"https://a.b.example.org", true},
		{"https://x-1.example.org", true},
		{"https://example.org", false}, // not the bare domain
		{"https://.example.org", false},
		{"http://a.example.org", false}, // not another scheme
		{"https://aexample.org", false},
		{"https://a.example.org.evil.com", false},
		{"https://a.example.org:444", false},
		{"http://localhost:3000", true},
		{"http://localhost:3001", false},
		{"http://localhost", false},
		{"https://localhost:3000", false},
		{"null", false},
		{"file://", false},
		{"https://evil.com", false},
		{"not a url", false},
		// Not serialized origins: never echoed back.
		{"https://app.example.com/", false},
		{"https://app.example.com/x", false},
		{"https://evil@app.example.com", false},
		{"https://app.example.com#x", false},
		{"https://app.example.com?", false},
		{"https://app.example.com?x=1", false},
		{"HTTPS://app.example.com", false},
		{"https://caf\u00e9.example.org", false},
		{"https://a%2F.example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			w := do(h, http.MethodGet, tt.origin, "")
			acao := w.Header().Get("Access-Control-Allow-Origin")
			if tt.allow {
				if acao != tt.origin {
					t.Errorf("Access-Control-Allow-Origin %q, want %q", acao, tt.origin)
				}
				if got := w.Header().Get("Access-Control-Allow-Credentials"); got != "true" {
					t.Errorf("Access-Control-Allow-Credentials %q, want true", got)
				}
				if got := w.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(got, "ETag") || !strings.Contains(got, "Retry-After") {
					t.Errorf("Access-Control-Expose-Headers %q", got)
				}
			} else {
				for _, hd := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
					if got := w.Header().Get(hd); got != "" {
						t.Errorf("%s %q for a disallowed origin", hd, got)
					}
				}
			}
			// Either way a simple request is served, and varies by Origin.
			if w.Code != http.StatusOK || w.Body.String() != "next" {
				t.Errorf("response %d %q, want the handler's", w.Code, w.Body)
			}
			if !slices.Contains(w.Header().Values("Vary"), "Origin") {
				t.Errorf("Vary %q lacks Origin", w.Header().Values("Vary"))
			}
			// The preflight agrees with the simple request.
			pw := do(h, http.MethodOptions, tt.origin, http.MethodPut)
			if tt.allow != (pw.Code == http.StatusNoContent) {
				t.Errorf("preflight status %d (allowed: %v)", pw.Code, tt.allow)
			}
		})
	}
}

func TestAnyOrigin(t *testing.T) {
	for _, origins := range [][]string{{"*"}, {"https://app.example.com", " * "}} {
		h, calls := handler(t, Options{Origins: origins})
		for _, origin := range []string{"https://evil.com", "https://app.example.com", "null"} {
			w := do(h, http.MethodGet, origin, "")
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("%q: Access-Control-Allow-Origin %q, want *", origins, got)
			}
			if got := w.Header().Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("%q: Access-Control-Allow-Credentials %q with *", origins, got)
			}
			if got := w.Header().Get("Access-Control-Expose-Headers"); got == "" {
				t.Errorf("%q: no Access-Control-Expose-Headers", origins)
			}
			pw := do(h, http.MethodOptions, origin, http.MethodDelete)
			if pw.Code != http.StatusNoContent || pw.Header().Get("Access-Control-Allow-Origin") != "*" || pw.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%q: preflight %d %v", origins, pw.Code, pw.Header())
			}
		}
		if *calls != 3 {
			t.Errorf("%q: handler called %d times, want 3 (the simple requests)", origins, *calls)
		}
	}
}

func TestPreflight(t *testing.T) {
	h, calls := handler(t, Options{Origins: testOrigins})
	w := do(h, http.MethodOptions, "https://app.example.com", http.MethodPatch)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Errorf("preflight: %d %q, want 204 and no body", w.Code, w.Body)
	}
	if *calls != 0 {
		t.Error("a preflight reached the handler")
	}
	hd := w.Header()
	want := map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example.com",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     allowMethods,
		"Access-Control-Allow-Headers":     allowHeaders,
		"Access-Control-Max-Age":           "600",
	}
	for k, v := range want {
		if got := hd.Get(k); got != v {
			t.Errorf("%s %q, want %q", k, got, v)
		}
	}
	for _, m := range []string{"GET", "PUT", "PATCH", "DELETE", "POST"} {
		if !strings.Contains(hd.Get("Access-Control-Allow-Methods"), m) {
			t.Errorf("Allow-Methods lacks %s", m)
		}
	}
	for _, h := range []string{"Authorization", "Content-Type", "If-Match", "Last-Event-ID"} {
		if !strings.Contains(hd.Get("Access-Control-Allow-Headers"), h) {
			t.Errorf("Allow-Headers lacks %s", h)
		}
	}
	vary := hd.Values("Vary")
	for _, v := range []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"} {
		if !slices.Contains(vary, v) {
			t.Errorf("Vary %q lacks %s", vary, v)
		}
	}
	if got := hd.Get("Access-Control-Expose-Headers"); got != "" {
		t.Errorf("Expose-Headers %q on a preflight", got)
	}

	// MaxAge.
	h2, _ := handler(t, Options{Origins: testOrigins, MaxAge: 30})
	if got := do(h2, http.MethodOptions, "http://localhost:3000", "GET").Header().Get("Access-Control-Max-Age"); got != "30" {
		t.Errorf("Max-Age %q, want 30", got)
	}
	h3, _ := handler(t, Options{Origins: testOrigins, MaxAge: -5})
	if got := do(h3, http.MethodOptions, "http://localhost:3000", "GET").Header().Get("Access-Control-Max-Age"); got != "600" {
		t.Errorf("Max-Age %q for a negative MaxAge, want the default 600", got)
	}

	// An OPTIONS without Access-Control-Request-Method is not a
	// preflight: it goes to the handler, with the CORS headers.
	w = do(h, http.MethodOptions, "https://app.example.com", "")
	if *calls != 1 || w.Body.String() != "next" || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("plain OPTIONS: %d %q %v (handler calls %d)", w.Code, w.Body, w.Header(), *calls)
	}
}

func TestDisallowedPreflight(t *testing.T) {
	h, calls := handler(t, Options{Origins: testOrigins})
	w := do(h, http.MethodOptions, "https://evil.com", http.MethodPut)
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", w.Code)
	}
	if *calls != 0 {
		t.Error("a refused preflight reached the handler")
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body struct {
		Error *struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if body.Error.Code != "forbidden" || !strings.Contains(body.Error.Message, "https://evil.com") {
		t.Errorf("error %+v", *body.Error)
	}
	for _, hd := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"} {
		if got := w.Header().Get(hd); got != "" {
			t.Errorf("%s %q on a refused preflight", hd, got)
		}
	}
	if !slices.Contains(w.Header().Values("Vary"), "Origin") {
		t.Errorf("Vary %q lacks Origin", w.Header().Values("Vary"))
	}
}

func TestUntouched(t *testing.T) {
	h, calls := handler(t, Options{Origins: testOrigins})
	for _, tt := range []struct {
		name          string
		method        string
		origin        string
		requestMethod string
	}{
		{"no origin", http.MethodGet, "", ""},
		{"no origin, OPTIONS", http.MethodOptions, "", http.MethodPut},
		{"same origin", http.MethodGet, "https://" + apiHost, ""},
		{"same origin, upper case", http.MethodGet, "https://API.EXAMPLE.COM", ""},
		{"same origin, preflight", http.MethodOptions, "https://" + apiHost, http.MethodPut},
		{"same origin, a POST", http.MethodPost, "https://" + apiHost, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := *calls
			w := do(h, tt.method, tt.origin, tt.requestMethod)
			if *calls != before+1 || w.Code != http.StatusOK || w.Body.String() != "next" {
				t.Errorf("not passed through: %d %q", w.Code, w.Body)
			}
			for k := range w.Header() {
				if k != "Etag" && k != "Content-Type" {
					t.Errorf("header %s: %q added", k, w.Header().Values(k))
				}
			}
		})
	}
}

func TestMiddlewareErrors(t *testing.T) {
	for _, origins := range [][]string{
		nil,
		{},
		{""},
		{"  "},
		{"https://app.example.com/path"},
		{"https://app.example.com/"},
		{"https://app.example.com?x=1"},
		{"app.example.com"},
		{"//app.example.com"},
		{"ftp://app.example.com"},
		{"ws://app.example.com"},
		{"https://"},
		{"https://app.*.example.com"},
		{"https://*example.com"},
		{"https://*.*.example.com"},
		{"https://a*.example.com"},
		{"https://*"},
		{"https://example.*"},
		{"https://user@app.example.com"},
		{"https://user:pw@app.example.com"},
		{"https://app.example.com", "https://app.example.com/x"}, // one bad among good ones
		{"https://app example.com"},
		{"https://app.example.com#fragment"},
		{"https://app.example.com#"},
		{"https://app.example.com?"},
	} {
		mw, err := Middleware(Options{Origins: origins})
		if err == nil {
			t.Errorf("Middleware(%q) accepted", origins)
			continue
		}
		if mw != nil {
			t.Errorf("Middleware(%q) returned a middleware with error %v", origins, err)
		}
		if !strings.HasPrefix(err.Error(), "cors: ") {
			t.Errorf("Middleware(%q) error %q lacks the cors: prefix", origins, err)
		}
	}
	for _, origins := range [][]string{
		{"https://app.example.com"},
		{"http://localhost:3000"},
		{"https://*.example.com"},
		{"*"},
		{"", "https://app.example.com", " "},
		{" https://app.example.com "},
		{"HTTPS://App.Example.com"},
		{"http://[::1]:8080"},
		{"http://127.0.0.1:8080"},
	} {
		if _, err := Middleware(Options{Origins: origins}); err != nil {
			t.Errorf("Middleware(%q): %v", origins, err)
		}
	}
	// A configured origin in another case still matches.
	h, _ := handler(t, Options{Origins: []string{"HTTPS://App.Example.com", " http://[::1]:8080 "}})
	for _, o := range []string{"https://app.example.com", "http://[::1]:8080"} {
		if got := do(h, http.MethodGet, o, "").Header().Get("Access-Control-Allow-Origin"); got != o {
			t.Errorf("%s: Access-Control-Allow-Origin %q", o, got)
		}
	}
}
