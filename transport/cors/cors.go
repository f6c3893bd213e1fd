// Package cors lets web pages from an allowlist of other origins use the
// API: it answers preflight requests and adds the Access-Control headers to
// responses for allowed origins, and refuses preflights from the others.
// Requests without an Origin header, or from the server's own origin, pass
// through untouched.
package cors

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/viewsync/viewsync/protocol"
)

// Options configures the middleware.
type Options struct {
	// Origins lists the allowed origins: "https://app.example.com",
	// a wildcard host "https://*.example.com" (any subdomain, not the
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
	allowHeaders  = "Authorization, Content-Type, If-Match, If-None-Match, Last-Event-ID"
	exposeHeaders = "ETag, Retry-After, Location"
)

type origin struct {
	scheme string
	host   string // "*.example.com" for wildcards
}

// Middleware returns the CORS middleware configured by o.
func Middleware(o Options) (func(http.Handler) http.Handler, error) {
	var any bool
	var list []origin
	for _, s := range o.Origins {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "*" {
			any = true
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || strings.ContainsAny(s, "?#") {
			return nil, fmt.Errorf("cors: origin %q: want scheme://host[:port], such as https://app.example.com", s)
		}
		if strings.Contains(u.Host, "*") && (!strings.HasPrefix(u.Host, "*.") || strings.Count(u.Host, "*") > 1) {
			return nil, fmt.Errorf("cors: origin %q: a wildcard may only start the host (https://*.example.com)", s)
		}
		list = append(list, origin{scheme: u.Scheme, host: strings.ToLower(u.Host)})
	}
	if !any && len(list) == 0 {
		return nil, errors.New("cors: no origins")
	}
	maxAge := o.MaxAge
	if maxAge <= 0 {
		maxAge = 600
	}
	allow := func(o string) bool {
		if any {
			return true
		}
		u, err := url.Parse(o)
		// Only a serialized origin (scheme://host[:port], ASCII), as
		// browsers send it: never a value with a path, query, fragment or
		// user info, which would be echoed in Access-Control-Allow-Origin.
		if err != nil || u.Host == "" || o != u.Scheme+"://"+u.Host ||
			strings.ContainsFunc(o, func(r rune) bool { return r >= utf8.RuneSelf }) {
			return false
		}
		host := strings.ToLower(u.Host)
		for _, a := range list {
			if a.scheme != u.Scheme {
				continue
			}
			if a.host == host {
				return true
			}
			if suffix, ok := strings.CutPrefix(a.host, "*"); ok && strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o := r.Header.Get("Origin")
			if o == "" || sameOrigin(r, o) {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			ok := allow(o)
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if preflight {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				if !ok {
					b := protocol.MarshalError(protocol.CodeForbidden, "origin not allowed: "+o)
					h.Set("Content-Type", "application/json")
					h.Set("Cache-Control", "no-store")
					w.WriteHeader(http.StatusForbidden)
					w.Write(b)
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

// sameOrigin reports whether origin o is the request's own host.
func sameOrigin(r *http.Request, o string) bool {
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}
