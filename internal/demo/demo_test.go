package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/demo"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/memstore"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandlerServesFilesWithSecurityHeaders(t *testing.T) {
	h := demo.Handler()
	for path, ctype := range map[string]string{
		"/":           "text/html; charset=utf-8",
		"/index.html": "text/html; charset=utf-8",
		"/app.js":     "text/javascript; charset=utf-8",
		"/style.css":  "text/css; charset=utf-8",
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "demo.example:8080"
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
		hd := rec.Header()
		if got := hd.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		csp := hd.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "ws://demo.example:8080"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("X-Frame-Options") != "DENY" || hd.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: security headers missing: %v", path, hd)
		}
		etag := hd.Get("ETag")
		req = httptest.NewRequest("GET", path, nil)
		req.Header.Set("If-None-Match", etag)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if etag == "" || rec.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: %d, want 304", path, etag, rec.Code)
		}
	}
	// The page imports the client from the server's /viewsync.js.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/app.js", nil))
	if !strings.Contains(rec.Body.String(), "from '/viewsync.js'") {
		t.Error("app.js does not import /viewsync.js")
	}
}

// TestPageHasCategoryFilter: the page has the category controls the
// browser tests use, and app.js opens a filtered view of the category.
func TestPageHasCategoryFilter(t *testing.T) {
	h := demo.Handler()
	get := func(path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	page := get("/")
	for _, id := range []string{"category-filter", "add-category", "product-category"} {
		if !strings.Contains(page, `data-testid="`+id+`"`) {
			t.Errorf("index.html has no data-testid=%q", id)
		}
	}
	if !strings.Contains(page, `data-field="category"`) {
		t.Error(`index.html: the product row has no data-field="category"`)
	}
	app := get("/app.js")
	for _, want := range []string{"where: { category }", "'lighting'", "'furniture'", "'kitchen'", "searchParams.set('category'"} {
		if !strings.Contains(app, want) {
			t.Errorf("app.js lacks %q", want)
		}
	}
}

func TestHandlerRefuses(t *testing.T) {
	h := demo.Handler()
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/nope.js", 404},
		{"GET", "/demo.go", 404},
		{"GET", "/a/app.js", 404},
		{"GET", "/../demo.go", 404},
		{"POST", "/", 405},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
		if rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%s %s: no CSP on an error", tc.method, tc.path)
		}
	}
	// A Host that is not a host is left out of the policy.
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "evil; script-src *"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if csp := rec.Header().Get("Content-Security-Policy"); strings.Contains(csp, "evil") {
		t.Errorf("CSP reflects a bad Host: %q", csp)
	}
}

func newHub(t *testing.T) *viewsync.Hub {
	t.Helper()
	hub, err := viewsync.New(memstore.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	if err := demo.Register(hub); err != nil {
		t.Fatal(err)
	}
	return hub
}

func TestDiscount(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t)
	col, _ := hub.Collection(demo.Collection)
	_, err := col.Commit(ctx, []viewsync.Op{
		viewsync.Put("a", []byte(`{"name":"Lamp","description":"warm","price":30,"category":"lighting"}`)),
		viewsync.Put("b", []byte(`{"name":"Chair","price":19.99}`)),
		viewsync.Put("c", []byte(`{"name":"Free","price":0}`)),
		viewsync.Put("d", []byte(`"not a product"`)),
		viewsync.Put("e", []byte(`{"name":"No price"}`)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := hub.Call(ctx, "discount", json.RawMessage(`{"percent":10}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Result) != `{"updated":2}` {
		t.Errorf("result %s, want {\"updated\":2}", res.Result)
	}
	head, _ := col.Head(ctx)
	if head.Version != 2 || res.Versions[demo.Collection] != 2 {
		t.Errorf("head %d, versions %v: want one commit, version 2, in the answer", head.Version, res.Versions)
	}
	for id, want := range map[string]string{
		"a": `{"category":"lighting","description":"warm","name":"Lamp","price":27}`,
		"b": `{"name":"Chair","price":17.99}`,
		"c": `{"name":"Free","price":0}`,
		"d": `"not a product"`,
	} {
		rec, err := col.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(rec.Value) != want {
			t.Errorf("%s = %s, want %s", id, rec.Value, want)
		}
	}
	// Nothing to discount: no commit, and versions say where the view must be.
	hub2 := newHub(t)
	res, err = hub2.Call(ctx, "discount", json.RawMessage(`{"percent":50}`))
	if err != nil || string(res.Result) != `{"updated":0}` {
		t.Fatalf("empty: %s, %v", res.Result, err)
	}
	if _, ok := res.Versions[demo.Collection]; !ok {
		t.Errorf("empty: versions %v lack %s", res.Versions, demo.Collection)
	}
}

func TestDiscountBadArg(t *testing.T) {
	hub := newHub(t)
	for _, arg := range []string{`null`, `{}`, `{"percent":0}`, `{"percent":-5}`, `{"percent":101}`, `{"percent":"10"}`, `[10]`} {
		_, err := hub.Call(context.Background(), "discount", json.RawMessage(arg))
		var ce *viewsync.CallError
		if !errors.As(err, &ce) || ce.Code != protocol.CodeBadRequest {
			t.Errorf("arg %s: err %v, want a bad_request CallError", arg, err)
		}
	}
}
