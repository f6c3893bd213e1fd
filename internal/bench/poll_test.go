package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/transport/httpapi"
)

func testClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

func TestPollOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/bad":
			w.Header().Set("ETag", `"E:1"`)
			http.Error(w, "nope", http.StatusTeapot)
		case r.URL.Path == "/notag":
			w.Write([]byte(`{}`))
		case r.Header.Get("If-None-Match") == `"E:1"`:
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("ETag", `"E:1"`)
			w.Write([]byte(`{"epoch":"E","version":1}`))
		}
	}))
	defer srv.Close()
	ctx, c := t.Context(), testClient()
	if st, tag, err := pollOnce(ctx, c, srv.URL+"/v", ""); st != 200 || tag != `"E:1"` || err != nil {
		t.Errorf("first poll = %d, %q, %v", st, tag, err)
	}
	if st, tag, err := pollOnce(ctx, c, srv.URL+"/v", `"E:1"`); st != 304 || tag != `"E:1"` || err != nil {
		t.Errorf("poll with the ETag = %d, %q, %v", st, tag, err)
	}
	if st, tag, err := pollOnce(ctx, c, srv.URL+"/v", `"E:0"`); st != 200 || tag != `"E:1"` || err != nil {
		t.Errorf("poll with an old ETag = %d, %q, %v", st, tag, err)
	}
	if _, _, err := pollOnce(ctx, c, srv.URL+"/bad", `"E:1"`); err == nil || !strings.Contains(err.Error(), "418") {
		t.Errorf("bad status: %v", err)
	}
	if _, _, err := pollOnce(ctx, c, srv.URL+"/notag", ""); err == nil {
		t.Error("200 without an ETag: no error")
	}
}

// TestBenchPoll polls an in-process server whose collection changes once
// during the run: once the clients poll, every one of them with the ETag
// of before the change.
func TestBenchPoll(t *testing.T) {
	// polling is closed at the first conditional poll: the clients poll
	// once every one has its first ETag.
	polling := make(chan struct{})
	var once sync.Once
	base := startServer(t, benchStore(t), nil, httpapi.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-None-Match") != "" {
				once.Do(func() { close(polling) })
			}
			h.ServeHTTP(w, r)
		})
	})
	if _, err := put(t.Context(), testClient(), base+"/v1/collections/polled/records/a", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	go func() {
		select {
		case <-polling:
			put(t.Context(), testClient(), base+"/v1/collections/polled/records/a", []byte(`{"n":2}`))
		case <-t.Context().Done():
		}
	}()
	r, stderr := runJSON[pollReport](t, "poll", "--url", base, "--collection", "polled", "--connections", "4", "--duration", "1500ms")
	if r.Requests <= 0 || r.Errors != 0 || r.RequestsPerSec <= 0 || r.Latency.Samples != int(r.Requests) || r.Server != nil {
		t.Errorf("report %+v", r)
	}
	// Each client sees the one change once, as a 200; the rest are 304s.
	if r.Changed != 4 || r.NotModified != r.Requests-4 {
		t.Errorf("changed %d, not modified %d of %d; want 4 changed", r.Changed, r.NotModified, r.Requests)
	}
	if !strings.Contains(stderr, "requests ") {
		t.Errorf("no progress on stderr: %s", stderr)
	}
}

// TestBenchPollBaseline: --baseline polls a bare 304 handler in the same
// run and reports the ratio.
func TestBenchPollBaseline(t *testing.T) {
	useBuiltBinary(t)
	base := startBenchServer(t)
	r, _ := runJSON[pollReport](t, "poll", "--url", base, "--collection", "polled", "--connections", "2", "--duration", "500ms", "--baseline")
	if r.Baseline == nil || r.Baseline.Requests <= 0 || r.Baseline.Errors != 0 || r.RatioRequestsPerSec <= 0 {
		t.Fatalf("report %+v, baseline %+v", r, r.Baseline)
	}
	// The baseline answers conditional GETs like the server: 304 after the
	// first answer on each connection.
	if r.Baseline.NotModified != r.Baseline.Requests {
		t.Errorf("baseline: %d of %d requests not modified", r.Baseline.NotModified, r.Baseline.Requests)
	}
}
