package ws_test

import (
	"net/http"
	"testing"

	"github.com/viewsync/viewsync/internal/wstest"
)

// TestMalformedQueryRefused: an upgrade whose query string does not parse
// (read leniently, its bad pairs would be dropped) is refused 400 before
// anything else, the handler used on its own as well as under the API.
func TestMalformedQueryRefused(t *testing.T) {
	e := newEnv(t, nil)
	for _, q := range []string{"?token=%zz", "?a=1;b=2", "?x=%"} {
		_, resp, err := wstest.Dial(t.Context(), e.url()+q, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("upgrade with query %q: status %d, err %v; want 400", q, status, err)
		}
	}
	e.dial() // a plain upgrade still works
}
