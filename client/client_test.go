package client_test

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/viewsync/viewsync/client"
)

func TestHandler(t *testing.T) {
	h := client.Handler()
	for path, want := range map[string][]byte{"/viewsync.js": client.JS, "/viewsync.d.ts": client.Types} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), want) || len(want) == 0 {
			t.Fatalf("GET %s: %d, %d bytes", path, rec.Code, rec.Body.Len())
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: headers %v", path, rec.Header())
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/viewsync.js", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{{"GET", "/other.js", 404}, {"POST", "/viewsync.js", 405}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
	}
}
