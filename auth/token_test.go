package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
)

func TestTokenFromRequest(t *testing.T) {
	atMax := strings.Repeat("t", MaxTokenBytes)
	over := atMax + "t"
	tests := []struct {
		name    string
		auth    []string // Authorization header values
		query   string
		cookies map[string]string
		cookie  string // the cookie name given to TokenFromRequest
		want    string
		wantErr string // "" for no error
	}{
		{name: "none", cookie: DefaultCookie},
		{name: "bearer", auth: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "bearer lower case", auth: []string{"bearer abc"}, want: "abc"},
		{name: "bearer upper case", auth: []string{"BEARER abc"}, want: "abc"},
		{name: "bearer mixed case", auth: []string{"bEaReR abc"}, want: "abc"},
		{name: "bearer extra spaces", auth: []string{"Bearer   abc  "}, want: "abc"},
		{name: "basic scheme", auth: []string{"Basic dXNlcjpwYXNz"}, wantErr: "Bearer TOKEN"},
		{name: "token scheme", auth: []string{"Token abc"}, wantErr: "Bearer TOKEN"},
		{name: "bearer prefix of a longer scheme", auth: []string{"Bearerx abc"}, wantErr: "Bearer TOKEN"},
		{name: "bearer without token", auth: []string{"Bearer"}, wantErr: "Bearer TOKEN"},
		{name: "bearer tab", auth: []string{"Bearer\tabc"}, wantErr: "Bearer TOKEN"},
		{name: "bearer empty token", auth: []string{"Bearer "}, wantErr: "empty token"},
		{name: "bearer blank token", auth: []string{"Bearer    "}, wantErr: "empty token"},
		{name: "empty header", auth: []string{""}, wantErr: "Bearer TOKEN"},
		{name: "bare token", auth: []string{"abc.def.ghi"}, wantErr: "Bearer TOKEN"},
		{name: "two headers", auth: []string{"Bearer a", "Bearer b"}, wantErr: "more than one"},
		{name: "two identical headers", auth: []string{"Bearer a", "Bearer a"}, wantErr: "more than one"},
		{name: "query", query: "token=abc", want: "abc"},
		{name: "query escaped", query: "token=a%2Bb%20c", want: "a+b c"},
		{name: "query among others", query: "after=5&token=abc&x=1", want: "abc"},
		{name: "query twice", query: "token=abc&token=def", wantErr: "token given 2 times"},
		{name: "query twice same", query: "token=abc&token=abc", wantErr: "token given 2 times"},
		{name: "query empty", query: "token=", wantErr: "empty token"},
		{name: "query bare key", query: "token", wantErr: "empty token"},
		{name: "query other name", query: "access_token=abc"},
		{name: "cookie", cookies: map[string]string{DefaultCookie: "abc"}, cookie: DefaultCookie, want: "abc"},
		{name: "custom cookie", cookies: map[string]string{"sess": "abc"}, cookie: "sess", want: "abc"},
		{name: "other cookie", cookies: map[string]string{"other": "abc"}, cookie: DefaultCookie},
		{name: "cookie not accepted", cookies: map[string]string{DefaultCookie: "abc"}, cookie: ""},
		{name: "cookie empty", cookies: map[string]string{DefaultCookie: ""}, cookie: DefaultCookie, wantErr: "empty token"},
		{
			name: "header before query and cookie", auth: []string{"Bearer h"}, query: "token=q",
			cookies: map[string]string{DefaultCookie: "c"}, cookie: DefaultCookie, want: "h",
		},
		{
			name: "query before cookie", query: "token=q",
			cookies: map[string]string{DefaultCookie: "c"}, cookie: DefaultCookie, want: "q",
		},
		{
			name: "bad header is not skipped", auth: []string{"Basic x"}, query: "token=q",
			cookies: map[string]string{DefaultCookie: "c"}, cookie: DefaultCookie, wantErr: "Bearer TOKEN",
		},
		{
			name: "bad query is not skipped", query: "token=a&token=b",
			cookies: map[string]string{DefaultCookie: "c"}, cookie: DefaultCookie, wantErr: "token given 2 times",
		},
		{name: "query that does not parse", query: "token=abc&x=%zz", wantErr: "bad query"},
		{name: "header at the limit", auth: []string{"Bearer " + atMax}, want: atMax},
		{name: "header oversized", auth: []string{"Bearer " + over}, wantErr: "longer than"},
		{name: "query at the limit", query: "token=" + atMax, want: atMax},
		{name: "query oversized", query: "token=" + over, wantErr: "longer than"},
		{name: "cookie at the limit", cookies: map[string]string{DefaultCookie: atMax}, cookie: DefaultCookie, want: atMax},
		{name: "cookie oversized", cookies: map[string]string{DefaultCookie: over}, cookie: DefaultCookie, wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "/v1/c/products"
			if tt.query != "" {
				target += "?" + tt.query
			}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			for _, v := range tt.auth {
				r.Header.Add("Authorization", v)
			}
			for name, value := range tt.cookies {
				r.AddCookie(&http.Cookie{Name: name, Value: value})
			}
			got, err := TokenFromRequest(r, tt.cookie)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("TokenFromRequest = %q, nil; want an error", got)
				}
				if !errors.Is(err, viewsync.ErrUnauthorized) {
					t.Errorf("error %v does not wrap ErrUnauthorized", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not mention %q", err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("token %q returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("TokenFromRequest: %v", err)
			}
			if got != tt.want {
				t.Errorf("TokenFromRequest = %q, want %q", abbrev(got), abbrev(tt.want))
			}
		})
	}
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:20] + "…" + s[len(s)-10:]
	}
	return s
}

func FuzzTokenFromRequest(f *testing.F) {
	f.Add(true, "Bearer abc", "", "")
	f.Add(true, "bearer  abc ", "token=q", "viewsync_token=c")
	f.Add(true, "Basic abc", "", "")
	f.Add(true, "", "", "")
	f.Add(false, "", "token=abc", "")
	f.Add(false, "", "token=a&token=b", "")
	f.Add(false, "", "token=%zz", "")
	f.Add(false, "", "token=", "")
	f.Add(false, "", ";token=x", "")
	f.Add(false, "", "", "viewsync_token=abc")
	f.Add(false, "", "", "viewsync_token=")
	f.Add(false, "", "", `viewsync_token="quoted"; other=1`)
	f.Add(false, "", "", "a=b; viewsync_token=x; viewsync_token=y")
	f.Fuzz(func(t *testing.T, hasHeader bool, header, rawQuery, cookieHeader string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: rawQuery}, Header: http.Header{}}
		if hasHeader {
			r.Header.Set("Authorization", header)
		}
		if cookieHeader != "" {
			r.Header.Set("Cookie", cookieHeader)
		}
		tok, err := TokenFromRequest(r, DefaultCookie)
		if err != nil {
			if !errors.Is(err, viewsync.ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
			if tok != "" {
				t.Fatalf("token %q returned with error %v", tok, err)
			}
			return
		}
		if tok == "" {
			// No token: then the request must carry none anywhere.
			if hasHeader {
				t.Fatalf("no token and no error with an Authorization header %q", header)
			}
			if _, ok := r.URL.Query()["token"]; ok {
				t.Fatalf("no token and no error with a token query parameter in %q", rawQuery)
			}
			if _, err := r.Cookie(DefaultCookie); err == nil {
				t.Fatalf("no token and no error with a %s cookie in %q", DefaultCookie, cookieHeader)
			}
			return
		}
		if len(tok) > MaxTokenBytes {
			t.Fatalf("token of %d bytes returned, over MaxTokenBytes", len(tok))
		}
		// The token is the one of the source that has priority.
		switch {
		case hasHeader:
			scheme, rest, _ := strings.Cut(header, " ")
			if !strings.EqualFold(scheme, "bearer") || tok != strings.TrimSpace(rest) {
				t.Fatalf("header %q gave token %q", header, tok)
			}
		case r.URL.Query().Has("token"):
			if q := r.URL.Query()["token"]; len(q) != 1 || q[0] != tok {
				t.Fatalf("query %q gave token %q", rawQuery, tok)
			}
		default:
			c, err := r.Cookie(DefaultCookie)
			if err != nil || c.Value != tok {
				t.Fatalf("cookie header %q gave token %q", cookieHeader, tok)
			}
		}
	})
}
