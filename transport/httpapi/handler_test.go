package httpapi_test

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

func TestNew(t *testing.T) {
	if _, err := httpapi.New(nil, nil); err == nil {
		t.Error("New(nil hub) succeeded")
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	for _, o := range []httpapi.Options{{MaxBodyBytes: -1}, {MaxWait: -time.Second}, {PageSize: -1}} {
		if _, err := httpapi.New(hub, &o); err == nil {
			t.Errorf("New with %+v succeeded", o)
		}
	}
	for _, o := range []*httpapi.Options{nil, {}, {MaxWait: time.Hour}} {
		if _, err := httpapi.New(hub, o); err != nil {
			t.Errorf("New with %+v: %v", o, err)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, nil)
	s.put("c", "a", `1`)
	tests := []struct {
		method, path, allow string
	}{
		{http.MethodPost, "/v1/collections/c", "GET, HEAD"},
		{http.MethodPut, "/v1/collections/c", "GET, HEAD"},
		{http.MethodDelete, "/v1/collections/c", "GET, HEAD"},
		{http.MethodPost, "/v1/collections/c/version", "GET, HEAD"},
		{http.MethodPatch, "/v1/collections/c/changes", "GET, HEAD"},
		{http.MethodPost, "/v1/collections/c/records/a", "GET, HEAD, PUT, PATCH, DELETE"},
		{http.MethodOptions, "/v1/collections/c/records/a", "GET, HEAD, PUT, PATCH, DELETE"},
		{http.MethodGet, "/v1/collections/c/commits", "POST"},
		{http.MethodHead, "/v1/collections/c/commits", "POST"},
		{http.MethodPut, "/v1/collections/c/commits", "POST"},
		{http.MethodDelete, "/v1/collections/c/commits", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := s.state("c")
			r := s.do(tt.method, tt.path, []byte(`{"ops":[{"op":"delete","id":"a"}]}`), "Content-Type", "application/json")
			if got := r.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if tt.method == http.MethodHead {
				if r.Status != http.StatusMethodNotAllowed {
					t.Errorf("status %d, want 405", r.Status)
				}
			} else {
				wantError(t, r, http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed)
			}
			if !equalState(before, s.state("c")) {
				t.Fatal("a refused method changed the store")
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	s := newTestServer(t, nil)
	for _, path := range []string{
		"/",
		"/v1",
		"/v1/",
		"/v1/collections",
		"/v1/collections/",
		"/v1/collections/c/",
		"/v1/collections/c/unknown",
		"/v1/collections/c/version/x",
		"/v1/collections/c/commits/1",
		"/v2/collections/c",
		"/metrics", // not configured
	} {
		wantError(t, s.get(path), http.StatusNotFound, protocol.CodeNotFound)
	}
	r := s.do(http.MethodPost, "/nope", []byte(`{}`), "Content-Type", "application/json")
	wantError(t, r, http.StatusNotFound, protocol.CodeNotFound)
}

func TestHealth(t *testing.T) {
	var mu sync.Mutex
	var readyErr error
	s := newTestServer(t, &httpapi.Options{Ready: func() error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}})
	setReady := func(err error) {
		mu.Lock()
		readyErr = err
		mu.Unlock()
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		var body struct {
			Status string `json:"status"`
		}
		r := s.get(path)
		wantJSON(t, r, &body)
		if body.Status != "ok" {
			t.Errorf("GET %s: %s", path, r.Body)
		}
		if cc := r.Header.Get("Cache-Control"); cc != cacheNoStore {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		if r := s.do(http.MethodHead, path, nil); r.Status != http.StatusOK || len(r.Body) != 0 {
			t.Errorf("HEAD %s: status %d, body %q", path, r.Status, r.Body)
		}
	}

	setReady(errors.New("draining"))
	r := s.get("/readyz")
	wantError(t, r, http.StatusServiceUnavailable, protocol.CodeUnavailable)
	if !strings.Contains(string(r.Body), "draining") {
		t.Errorf("readyz body %s does not say why", r.Body)
	}
	if r := s.get("/healthz"); r.Status != http.StatusOK {
		t.Errorf("healthz while not ready: %d", r.Status)
	}

	setReady(nil)
	if r := s.get("/readyz"); r.Status != http.StatusOK {
		t.Errorf("readyz when ready again: %d %s", r.Status, r.Body)
	}

	// Without a Ready func the server is always ready.
	s2 := newTestServer(t, nil)
	if r := s2.get("/readyz"); r.Status != http.StatusOK {
		t.Errorf("readyz without Ready: %d %s", r.Status, r.Body)
	}
}

func TestMetrics(t *testing.T) {
	met := metrics.New()
	s := newTestServer(t, &httpapi.Options{Metrics: met.Handler(), Observer: met})
	s.get("/v1/collections/c/version")
	r := s.get("/metrics")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(string(r.Body), "viewsync_http_requests_total") {
		t.Fatalf("GET /metrics lacks the request counter:\n%s", r.Body)
	}
	if !strings.Contains(string(r.Body), `route="GET /v1/collections/{c}/version"`) {
		t.Fatalf("GET /metrics lacks the route label of the version request:\n%s", r.Body)
	}
}

// recordingObserver hands each observation to a channel.
type recordingObserver struct{ ch chan observation }

type observation struct {
	route  string
	status int
	took   time.Duration
}

func (o recordingObserver) ObserveRequest(route string, status int, took time.Duration) {
	o.ch <- observation{route, status, took}
}

func TestObserver(t *testing.T) {
	obs := recordingObserver{ch: make(chan observation, 16)}
	s := newTestServer(t, &httpapi.Options{Observer: obs})
	s.put("c", "a", `1`)
	hd := s.head("c")

	tests := []struct {
		method, path string
		body         string
		header       []string
		route        string
		status       int
	}{
		{"GET", "/v1/collections/c", "", nil, "GET /v1/collections/{c}", 200},
		{"GET", "/v1/collections/c", "", []string{"If-None-Match", `"` + hd.Cursor().String() + `"`}, "GET /v1/collections/{c}", 304},
		{"GET", "/v1/collections/c/version", "", nil, "GET /v1/collections/{c}/version", 200},
		{"GET", "/v1/collections/c/changes?after=0", "", nil, "GET /v1/collections/{c}/changes", 200},
		{"GET", "/v1/collections/c/changes?after=x", "", nil, "GET /v1/collections/{c}/changes", 400},
		{"GET", "/v1/collections/c/records/a", "", nil, "GET /v1/collections/{c}/records/{id...}", 200},
		{"GET", "/v1/collections/c/records/zz", "", nil, "GET /v1/collections/{c}/records/{id...}", 404},
		{"PUT", "/v1/collections/c/records/a%2Fb", "1", []string{"Content-Type", "application/json"}, "PUT /v1/collections/{c}/records/{id...}", 200},
		{"PATCH", "/v1/collections/c/records/a", "{}", []string{"Content-Type", "application/merge-patch+json"}, "PATCH /v1/collections/{c}/records/{id...}", 200},
		{"DELETE", "/v1/collections/c/records/a", "", nil, "DELETE /v1/collections/{c}/records/{id...}", 200},
		{"POST", "/v1/collections/c/commits", `{"ops":[{"op":"put","id":"x","value":1}]}`, []string{"Content-Type", "application/json"}, "POST /v1/collections/{c}/commits", 200},
		{"POST", "/v1/collections/c/commits", `{}`, []string{"Content-Type", "text/plain"}, "POST /v1/collections/{c}/commits", 415},
		{"DELETE", "/v1/collections/c", "", nil, "/v1/collections/{c}", 405},
		{"GET", "/v1/collections/c/commits", "", nil, "/v1/collections/{c}/commits", 405},
		{"GET", "/healthz", "", nil, "GET /healthz", 200},
		{"GET", "/readyz", "", nil, "GET /readyz", 200},
		{"GET", "/nowhere", "", nil, "/", 404},
	}
	for _, tt := range tests {
		var body []byte
		if tt.body != "" {
			body = []byte(tt.body)
		}
		r := s.do(tt.method, tt.path, body, tt.header...)
		if r.Status != tt.status {
			t.Errorf("%s %s: status %d, want %d (%s)", tt.method, tt.path, r.Status, tt.status, r.Body)
		}
		select {
		case o := <-obs.ch:
			if o.route != tt.route || o.status != tt.status || o.took < 0 {
				t.Errorf("%s %s observed as %+v, want route %q status %d", tt.method, tt.path, o, tt.route, tt.status)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%s %s was not observed", tt.method, tt.path)
		}
	}
	select {
	case o := <-obs.ch:
		t.Fatalf("unexpected extra observation %+v", o)
	default:
	}
}
