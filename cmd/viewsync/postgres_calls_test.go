package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/internal/pgtest"
	"github.com/viewsync/viewsync/protocol"
)

// callAnswer is a call's answer: {"result","versions"} or the error body.
type callAnswer struct {
	Result   json.RawMessage   `json:"result"`
	Versions map[string]uint64 `json:"versions"`
	Error    *protocol.Error   `json:"error"`
}

// apiCall POSTs a call to the server at base and returns the status and
// the decoded answer.
func apiCall(t *testing.T, base, name, arg string) (int, callAnswer) {
	t.Helper()
	var out callAnswer
	resp, err := http.Post(base+"/v1/calls/"+name, "application/json", strings.NewReader(`{"arg":`+arg+`}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("call %s: %d %s: %v", name, resp.StatusCode, b, err)
	}
	return resp.StatusCode, out
}

// recordVersion reads a record of the server at base: its version, and
// whether it exists.
func recordVersion(t *testing.T, base, coll, id string) (uint64, bool) {
	t.Helper()
	resp, err := http.Get(base + "/v1/collections/" + coll + "/records/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, false
	}
	var rec struct {
		Version uint64 `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/%s: %d %v", coll, id, resp.StatusCode, err)
	}
	return rec.Version, true
}

// TestServePostgresCalls: serve --demo --pg-url runs the demo on the table
// products (created and seeded) beside a followed table of the user's,
// and calls that write to PostgreSQL are answered once the write is in
// the collection, over HTTP: the demo's own ("products.put"), and a
// --call-proxy backend's that answers the LSN after its commit in
// "await". An LSN that never comes is 504 timeout past
// --pg-await-timeout.
func TestServePostgresCalls(t *testing.T) {
	clearEnv(t)
	_, _, url := pgtest.NewDB(t)
	db := pgtest.Connect(t, url)
	pgtest.Exec(t, db, "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")

	// The backend: "order" inserts a row and answers the LSN after its
	// commit; "lost" answers an LSN PostgreSQL is far from.
	backendDB := pgtest.Connect(t, url)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
			Arg  struct {
				ID int `json:"id"`
			} `json:"arg"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		lsn := "FFFFFFFF/0"
		if req.Name == "order" {
			ctx := r.Context()
			if _, err := backendDB.Exec(ctx, "INSERT INTO orders VALUES ($1, 'lamp')", req.Arg.ID); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			if err := backendDB.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"result":{"id":%d},"await":{"position":%q,"collections":["orders"]}}`, req.Arg.ID, lsn)
	}))
	defer backend.Close()

	addr, stderr, stop := startServe(t, "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"),
		"--demo", "--pg-url", url, "--pg-table", "public.orders", "--pg-slot", "vs_calls", "--pg-publication", "vs_calls",
		"--call-proxy", backend.URL, "--pg-await-timeout", "300ms")
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/v1/collections/products")
		var snap struct {
			Records []json.RawMessage `json:"records"`
		}
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&snap)
			resp.Body.Close()
		}
		if len(snap.Records) == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's table never reached the collection (%d records):\n%s", len(snap.Records), stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "demo: seeded the empty table with sample products") {
		t.Errorf("the log does not say the table was seeded:\n%s", stderr)
	}

	code, ans := apiCall(t, base, "demo.config", "null")
	if code != 200 || string(ans.Result) != `{"writes":"calls","source":"PostgreSQL table public.products"}` {
		t.Errorf("demo.config: %d %s", code, ans.Result)
	}
	code, ans = apiCall(t, base, "products.put", `{"id":"p-new","value":{"name":"Stool","price":30},"ifVersion":0}`)
	if code != 200 {
		t.Fatalf("products.put: %d %+v", code, ans.Error)
	}
	if v, ok := recordVersion(t, base, "products", "p-new"); !ok || v > ans.Versions["products"] {
		t.Errorf("products.put answered versions %v; the record then: version %d (%v)", ans.Versions, v, ok)
	}
	code, ans = apiCall(t, base, "products.put", `{"id":"p-new","value":{"name":"Stool","price":30},"ifVersion":0}`)
	if code != http.StatusPreconditionFailed || ans.Error == nil || ans.Error.Code != protocol.CodePreconditionFailed {
		t.Errorf("a second create: %d %+v, want 412", code, ans.Error)
	}

	for id := range 5 {
		code, ans = apiCall(t, base, "order", fmt.Sprintf(`{"id":%d}`, id))
		if code != 200 {
			t.Fatalf("order %d: %d %+v", id, code, ans.Error)
		}
		v, ok := recordVersion(t, base, "orders", fmt.Sprint(id))
		if !ok || v > ans.Versions["orders"] || len(ans.Versions) != 1 {
			t.Errorf("order %d answered versions %v; its record then: version %d (%v)", id, ans.Versions, v, ok)
		}
	}
	code, ans = apiCall(t, base, "lost", `{"id":9}`)
	if code != http.StatusGatewayTimeout || ans.Error == nil || ans.Error.Code != protocol.CodeTimeout ||
		ans.Error.Message != "source postgres did not reach position FFFFFFFF/0 within 300ms; the write is done, and views show it once the source gets there" {
		t.Errorf("an LSN that never comes: %d %+v, want 504 timeout naming it", code, ans.Error)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// TestServePostgresDemoFlags: --pg-url alone wants a table or --demo;
// the demo on PostgreSQL keeps its own table; --pg-await-timeout must be
// positive.
func TestServePostgresDemoFlags(t *testing.T) {
	clearEnv(t)
	url := "postgres://nobody@127.0.0.1:1/none"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pg-url", url}, "--pg-url needs at least one --pg-table (or --demo, to run the demo on a table products)"},
		{[]string{"--pg-url", url, "--demo=false"}, "--pg-url needs at least one --pg-table"},
		{[]string{"--pg-url", url, "--demo", "--pg-table", "public.items=products"}, "--demo with --pg-url runs the demo on the table public.products, but --pg-table feeds collection products from public.items"},
		{[]string{"--pg-url", url, "--pg-table", "t", "--pg-await-timeout", "0s"}, "--pg-await-timeout must be positive"},
	} {
		code, _, stderr := runCmd(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data")}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %s: exit %d, stderr %q; want it to say %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}
