package auth

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/viewsync/viewsync/internal/errcode"
	"github.com/viewsync/viewsync/protocol"
)

// DefaultCookie is the cookie a token may arrive in.
const DefaultCookie = "viewsync_token"

// MaxTokenBytes bounds a token's length; longer ones are refused unread.
const MaxTokenBytes = 8 << 10

// TokenFromRequest returns the bearer token of r: from the Authorization
// header ("Bearer TOKEN"), else the "token" query parameter, else the cookie
// named cookie (none when empty). It returns "" without error when r
// carries none, and an error wrapping viewsync.ErrUnauthorized when one is
// malformed: another Authorization scheme, an empty or oversized token, or
// the query parameter given twice.
func TokenFromRequest(r *http.Request, cookie string) (string, error) {
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		if len(h) > 1 {
			return "", fmt.Errorf("%w: more than one Authorization header", errcode.ErrUnauthorized)
		}
		scheme, tok, ok := strings.Cut(h[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", fmt.Errorf("%w: the Authorization header must be \"Bearer TOKEN\"", errcode.ErrUnauthorized)
		}
		return checkToken(strings.TrimSpace(tok))
	}
	if strings.Contains(r.URL.RawQuery, "token") {
		q, err := protocol.ParseQuery(r.URL.RawQuery, "token")
		if err != nil {
			return "", fmt.Errorf("%w: reading the token query parameter: %w", errcode.ErrUnauthorized, err)
		}
		if t, ok := q["token"]; ok {
			return checkToken(t[0])
		}
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil {
			return checkToken(c.Value)
		}
	}
	return "", nil
}

func checkToken(t string) (string, error) {
	switch {
	case t == "":
		return "", fmt.Errorf("%w: empty token", errcode.ErrUnauthorized)
	case len(t) > MaxTokenBytes:
		return "", fmt.Errorf("%w: token longer than %d bytes", errcode.ErrUnauthorized, MaxTokenBytes)
	}
	return t, nil
}
