// Package cors lets web pages from an allowlist of other origins use the
// API: it answers preflight requests and adds the Access-Control headers to
// responses for allowed origins, and refuses preflights from the others.
// Requests without an Origin header, or from the server's own origin, pass
// through untouched. Its Matcher also decides which origins may open
// WebSockets (package transport/ws), so that both follow one rule.
package cors

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/viewsync/viewsync/protocol"
)

// Options configures the middleware.
type Options struct {
	// Origins lists the allowed origins (see ParseOrigins):
	// "https://app.example.com" (that scheme, host and port only), a
	// wildcard host "https://*.example.com" (any subdomain, not the
	// domain itself), or "*" for any origin (then credentials — cookies —
	// are not allowed cross-origin; bearer tokens still are).
	Origins []string
	// MaxAge is how long, in seconds, browsers may cache a preflight.
	// Default 600.
	MaxAge int
}

// allowed request headers and exposed response headers of the API.
const (
	allowMethods  = "GET, HEAD, PUT, PATCH, DELETE, POST"
	allowHeaders  = "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, Last-Event-ID"
	exposeHeaders = "ETag, Retry-After, Location, Idempotent-Replayed"
)

// Middleware returns the CORS middleware configured by o.
func Middleware(o Options) (func(http.Handler) http.Handler, error) {
	m, err := ParseOrigins(o.Origins)
	if err != nil {
		return nil, err
	}
	if m.Empty() {
		return nil, errors.New("cors: no origins")
	}
	any := m.Any()
	maxAge := o.MaxAge
	if maxAge <= 0 {
		maxAge = 600
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o := r.Header.Get("Origin")
			if o == "" || SameOrigin(o, r.Host) {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			ok := m.Allow(o)
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if preflight {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				if !ok {
					protocol.WriteError(w, 0, protocol.CodeForbidden, "origin not allowed: "+o)
					return
				}
				setAllowOrigin(h, o, any)
				h.Set("Access-Control-Allow-Methods", allowMethods)
				h.Set("Access-Control-Allow-Headers", allowHeaders)
				h.Set("Access-Control-Max-Age", fmt.Sprint(maxAge))
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if ok {
				setAllowOrigin(h, o, any)
				h.Set("Access-Control-Expose-Headers", exposeHeaders)
			}
			// Not allowed: served without CORS headers, so the browser
			// keeps the answer from the page. Writes need a preflight
			// (JSON bodies, Authorization), which was refused.
			next.ServeHTTP(w, r)
		})
	}, nil
}

func setAllowOrigin(h http.Header, o string, any bool) {
	if any {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Credentials", "true")
}
