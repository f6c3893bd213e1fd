package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// TestImmutablePagesReadWithCredentialsArePrivate: a full page of changes
// is immutable, but when it was read with credentials only the reader's
// own cache may keep it: a shared cache would serve it to anyone.
func TestImmutablePagesReadWithCredentialsArePrivate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy *auth.Policy
		want   string
	}{
		{"anonymous", nil, "public, max-age=31536000, immutable"},
		{"authenticated", &auth.Policy{Authenticate: func(*http.Request) (auth.Principal, error) {
			return auth.Principal{Subject: "ana", Rights: auth.All}, nil
		}}, "private, max-age=31536000, immutable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, &httpapi.Options{PageSize: 10, Policy: tc.policy})
			epoch := s.head("c").Epoch
			for i := range 15 {
				s.put("c", "k", strconv.Itoa(i))
			}
			r := s.get("/v1/collections/c/changes?after=0&epoch=" + epoch)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if cc := r.Header.Get("Cache-Control"); cc != tc.want {
				t.Errorf("Cache-Control %q, want %q", cc, tc.want)
			}
		})
	}
}

// TestLongPollEndsWhenTheTokenExpires: a long-poll holds at most until its
// principal's token expires, then answers (empty) like a timed-out wait.
func TestLongPollEndsWhenTheTokenExpires(t *testing.T) {
	expires := time.Now().Add(300 * time.Millisecond)
	s := newTestServer(t, &httpapi.Options{Policy: &auth.Policy{Authenticate: func(*http.Request) (auth.Principal, error) {
		return auth.Principal{Subject: "ana", Rights: auth.All, Expires: expires}, nil
	}}})
	epoch := s.head("c").Epoch
	r := s.get("/v1/collections/c/changes?after=0&wait=60s&epoch=" + epoch)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if time.Now().Before(expires) {
		t.Fatalf("the long-poll answered before the token expired")
	}
	if time.Since(expires) > 30*time.Second {
		t.Fatalf("the long-poll held %v past the token's expiry", time.Since(expires))
	}
}

// TestNoSniff: answers, errors quoting the request included, are never
// sniffed as HTML by a browser.
func TestNoSniff(t *testing.T) {
	s := newTestServer(t, nil)
	for _, path := range []string{"/v1/collections/c/version", "/<script>alert(1)</script>", "/v1/collections/%3Cb%3E/version"} {
		r := s.get(path)
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
		}
	}
}
