package cors

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Matcher decides which origins (Origin header values) an allowlist
// admits. The CORS middleware and the WebSocket handler (package
// transport/ws) each use one, so that what a page may do with fetch and
// with a WebSocket is decided by the same rules. Make one with
// ParseOrigins or ParseOriginPatterns; a nil Matcher admits nothing.
type Matcher struct {
	any  bool      // "*": every origin
	list []pattern // the others
}

// pattern is one entry of a Matcher.
type pattern struct {
	// scheme is "http" or "https", or "" for a host pattern, which admits
	// both.
	scheme string
	// host is the lower-case host[:port]; "*.example.com" admits any
	// subdomain of example.com (not example.com itself).
	host string
}

// ParseOrigins parses an allowlist of origins as Options.Origins takes
// them: "https://app.example.com" (scheme, host and port must all match
// exactly, the host ignoring case), "https://*.example.com" (any
// subdomain, not the domain itself, over that scheme), or "*" (every
// origin). Blank entries are skipped.
func ParseOrigins(origins []string) (*Matcher, error) {
	return parse(origins, false)
}

// ParseOriginPatterns is ParseOrigins that also takes host patterns
// without a scheme, "app.example.com" or "*.example.com" (with a port
// when the pages use one), each admitting that host over both http and
// https. An origin given with a scheme still admits that scheme only.
func ParseOriginPatterns(patterns []string) (*Matcher, error) {
	return parse(patterns, true)
}

func parse(entries []string, hostsToo bool) (*Matcher, error) {
	m := &Matcher{}
	for _, s := range entries {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "*" {
			m.any = true
			continue
		}
		full := s
		hostOnly := hostsToo && !strings.Contains(s, "://")
		if hostOnly {
			full = "http://" + s
		}
		u, err := url.Parse(full)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || strings.ContainsAny(s, "?#") {
			if hostsToo {
				return nil, fmt.Errorf("cors: origin %q: want scheme://host[:port] or host[:port], such as https://app.example.com or app.example.com", s)
			}
			return nil, fmt.Errorf("cors: origin %q: want scheme://host[:port], such as https://app.example.com", s)
		}
		if strings.Contains(u.Host, "*") && (!strings.HasPrefix(u.Host, "*.") || strings.Count(u.Host, "*") > 1) {
			return nil, fmt.Errorf("cors: origin %q: a wildcard may only start the host (*.example.com)", s)
		}
		p := pattern{scheme: u.Scheme, host: strings.ToLower(u.Host)}
		if hostOnly {
			p.scheme = ""
		}
		m.list = append(m.list, p)
	}
	return m, nil
}

// Any reports whether m admits every origin ("*").
func (m *Matcher) Any() bool { return m != nil && m.any }

// Empty reports whether m admits no origin at all.
func (m *Matcher) Empty() bool { return m == nil || !m.any && len(m.list) == 0 }

// Allow reports whether m admits origin: every origin when m has "*";
// otherwise only a serialized origin (scheme://host[:port] in ASCII, as
// browsers send it: never a value with a path, query, fragment or user
// info) whose scheme and host match an entry.
func (m *Matcher) Allow(origin string) bool {
	if m == nil {
		return false
	}
	if m.any {
		return true
	}
	scheme, host, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	for _, p := range m.list {
		switch {
		case p.scheme == "" && scheme != "http" && scheme != "https":
			continue
		case p.scheme != "" && p.scheme != scheme:
			continue
		}
		if p.host == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(p.host, "*"); ok && strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
			return true
		}
	}
	return false
}

// SameOrigin reports whether origin is a serialized origin of host (the
// request's Host, host[:port]), whatever its scheme: a page of the server
// itself. The scheme is not compared, as a server behind a proxy that
// ends TLS cannot tell the one its pages were loaded with.
func SameOrigin(origin, host string) bool {
	_, h, ok := parseOrigin(origin)
	return ok && strings.EqualFold(h, host)
}

// parseOrigin splits a serialized origin into its scheme and its host
// (lower case, with the port if any).
func parseOrigin(o string) (scheme, host string, ok bool) {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || o != u.Scheme+"://"+u.Host ||
		strings.ContainsFunc(o, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return "", "", false
	}
	return u.Scheme, strings.ToLower(u.Host), true
}
