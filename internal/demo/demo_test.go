package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/demo"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/internal/pgtest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestMain stops the PostgreSQL test cluster after the tests, and fails
// the run if a test left a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopAll()
	os.Exit(leakcheck.Check(code))
}

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

// product is a product as Seed writes it.
type product struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Price       *float64 `json:"price"`
	Category    string   `json:"category"`
}

// setup makes a hub on st and runs Setup with opts, logging into the
// returned buffer; the hub is closed at the end of the test.
func setup(t *testing.T, st store.Store, opts demo.Options) (*viewsync.Hub, *bytes.Buffer) {
	t.Helper()
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	var logs bytes.Buffer
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}
	if err := demo.Setup(context.Background(), hub, opts); err != nil {
		t.Fatal(err)
	}
	return hub, &logs
}

// checkSeeded checks that hub's products are the samples, written in one
// commit: 6 to 8 of them, each with a name, a description, a price and
// one of the page's categories, every category having some.
func checkSeeded(t *testing.T, hub *viewsync.Hub) viewsync.Snapshot {
	t.Helper()
	col, err := hub.Collection(demo.Collection)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := col.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 1 {
		t.Errorf("seeded collection at version %d, want 1: one commit", snap.Version)
	}
	if n := len(snap.Records); n < 6 || n > 8 {
		t.Errorf("%d sample products, want 6 to 8", n)
	}
	perCategory := map[string]int{}
	for _, rec := range snap.Records {
		var p product
		if err := json.Unmarshal(rec.Value, &p); err != nil {
			t.Errorf("%s: %s: %v", rec.ID, rec.Value, err)
			continue
		}
		if p.Name == "" || p.Description == "" || p.Price == nil || *p.Price <= 0 {
			t.Errorf("%s: %s lacks a name, a description or a price", rec.ID, rec.Value)
		}
		perCategory[p.Category]++
	}
	for _, c := range []string{"lighting", "furniture", "kitchen"} {
		if perCategory[c] == 0 {
			t.Errorf("no sample product in %s: %v", c, perCategory)
		}
	}
	if len(perCategory) != 3 {
		t.Errorf("sample categories %v, want lighting, furniture and kitchen alone", perCategory)
	}
	return snap
}

// TestSeedEmptyOnce: Setup seeds a collection never written, in one
// commit, logging one line that says so; Seed again writes nothing.
func TestSeedEmptyOnce(t *testing.T) {
	hub, logs := setup(t, memstore.New(nil), demo.Options{})
	checkSeeded(t, hub)
	if n := strings.Count(logs.String(), "seeded"); n != 1 {
		t.Errorf("the log says seeded %d times, want once:\n%s", n, logs)
	}
	seeded, err := demo.Seed(context.Background(), hub)
	if err != nil || seeded {
		t.Errorf("Seed of a seeded collection: %v, %v; want false, nil", seeded, err)
	}
	checkSeeded(t, hub)
}

// TestSeedLeavesWrittenCollection: a collection written before — here
// emptied since, so at version 2 with no records — is not seeded again.
func TestSeedLeavesWrittenCollection(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(nil)
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	col, _ := hub.Collection(demo.Collection)
	if _, err := col.Put(ctx, "p-1", []byte(`{"name":"Lamp","price":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := col.Delete(ctx, "p-1"); err != nil {
		t.Fatal(err)
	}
	hub.Close()

	hub, logs := setup(t, st, demo.Options{})
	col, _ = hub.Collection(demo.Collection)
	snap, err := col.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 2 || len(snap.Records) != 0 {
		t.Errorf("emptied collection after Setup: version %d, %d records; want 2 and none", snap.Version, len(snap.Records))
	}
	if strings.Contains(logs.String(), "seeded") {
		t.Errorf("the log says seeded:\n%s", logs)
	}
	seeded, err := demo.Seed(ctx, hub)
	if err != nil || seeded {
		t.Errorf("Seed of an emptied collection: %v, %v; want false, nil", seeded, err)
	}
}

// TestSeedRestart: a durable store seeded at its first start is not
// seeded again when the server starts again on it, even after a user
// removed a sample.
func TestSeedRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "viewsync.db")
	st, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	hub, logs := setup(t, st, demo.Options{})
	first := checkSeeded(t, hub)
	if !strings.Contains(logs.String(), "seeded") {
		t.Errorf("the first start does not log the seeding:\n%s", logs)
	}
	col, _ := hub.Collection(demo.Collection)
	gone := first.Records[0].ID
	if _, err := col.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	hub.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hub, logs = setup(t, st, demo.Options{})
	if strings.Contains(logs.String(), "seeded") {
		t.Errorf("the second start logs a seeding:\n%s", logs)
	}
	col, _ = hub.Collection(demo.Collection)
	snap, err := col.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 2 || len(snap.Records) != len(first.Records)-1 {
		t.Errorf("after the restart: version %d, %d records; want 2 and %d (no second seeding)", snap.Version, len(snap.Records), len(first.Records)-1)
	}
	for _, rec := range snap.Records {
		if rec.ID == gone {
			t.Errorf("the removed sample %s came back", gone)
		}
	}
}

// TestSetupNoSeed: with NoSeed, Setup registers the calls and leaves the
// collection unwritten.
func TestSetupNoSeed(t *testing.T) {
	ctx := context.Background()
	hub, logs := setup(t, memstore.New(nil), demo.Options{NoSeed: true})
	col, _ := hub.Collection(demo.Collection)
	head, err := col.Head(ctx)
	if err != nil || head.Version != 0 {
		t.Errorf("head %+v, %v; want version 0", head, err)
	}
	if logs.Len() != 0 {
		t.Errorf("Setup with NoSeed logged:\n%s", logs)
	}
	if _, err := hub.Call(ctx, "discount", json.RawMessage(`{"percent":10}`)); err != nil {
		t.Errorf("discount after Setup: %v", err)
	}
}

// TestSeedFedCollection: a collection fed from a source refuses writes;
// Seed writes nothing and says so without an error.
func TestSeedFedCollection(t *testing.T) {
	hub, err := viewsync.New(memstore.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	feed, err := hub.Feed(demo.Collection, "a test source", "")
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	seeded, err := demo.Seed(context.Background(), hub)
	if err != nil || seeded {
		t.Errorf("Seed of a fed collection: %v, %v; want false, nil", seeded, err)
	}
}

// TestPageUndoAndNoHTMLSinks: the page has the undo toast the browser
// tests use, its delete is the page's own (so that it can be undone), and
// app.js puts data into the page through no HTML parser.
func TestPageUndoAndNoHTMLSinks(t *testing.T) {
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
	for _, id := range []string{"undo-toast", "undo-text", "undo-delete", "product-delete", "sync-log", "transport-links"} {
		if !strings.Contains(page, `data-testid="`+id+`"`) {
			t.Errorf("index.html has no data-testid=%q", id)
		}
	}
	if strings.Contains(page, `data-action="delete"`) {
		t.Error(`index.html: a data-action="delete" would delete past the undo`)
	}
	app := get("/app.js")
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(app, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
	// The undo is a create only: it never overwrites a product made again.
	for _, want := range []string{"putProduct(current.view, u.id, u.value, 0)", "scrollIntoView({ block: 'nearest' })"} {
		if !strings.Contains(app, want) {
			t.Errorf("app.js lacks %q", want)
		}
	}
}
