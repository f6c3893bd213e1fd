package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/internal/pgtest"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
)

// TestServePostgres: serve with VIEWSYNC_PG_URL and VIEWSYNC_PG_TABLE
// feeds the collection from the table, is ready once it streams, refuses
// clients' writes over HTTP and WebSocket naming the table, and exports
// the source's metrics.
func TestServePostgres(t *testing.T) {
	clearEnv(t)
	_, _, url := pgtest.NewDB(t)
	db := pgtest.Connect(t, url)
	pgtest.Exec(t, db,
		"CREATE TABLE products (id int PRIMARY KEY, name text)",
		"CREATE TABLE orders (id int PRIMARY KEY)",
		"INSERT INTO products VALUES (1, 'Lamp'), (2, 'Desk')",
	)
	t.Setenv("VIEWSYNC_PG_URL", url)
	t.Setenv("VIEWSYNC_PG_TABLE", "public.products,public.orders=shop.orders")
	addr, stderr, stop := startServe(t, "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"), "--pg-slot", "vs_serve", "--pg-publication", "vs_serve")
	base := "http://" + addr
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _ := get("/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never 200:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pgtest.Exec(t, db, "INSERT INTO products VALUES (3, 'Chair')")
	for {
		_, body := get("/v1/collections/products")
		if strings.Contains(body, `"Chair"`) && strings.Contains(body, `"Lamp"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collection never showed the table: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	const message = "collection products is fed from PostgreSQL table public.products; write to the table"
	req, _ := http.NewRequest("PUT", base+"/v1/collections/products/records/9", strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e protocol.ErrorBody
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || e.Error == nil || e.Error.Code != protocol.CodeForbidden || e.Error.Message != message {
		t.Errorf("PUT: %d %+v, want 403 forbidden %q", resp.StatusCode, e.Error, message)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := wstest.Dial(ctx, "ws://"+addr+"/v1/ws", &wstest.Options{Subprotocols: []string{"viewsync.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.WriteMessage(ctx, 0x1, []byte(`{"type":"commit","id":"w","collection":"shop.orders","ops":[{"op":"put","id":"1","value":1}]}`)); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"message":%q`, "collection shop.orders is fed from PostgreSQL table public.orders; write to the table"); !strings.Contains(string(b), `"code":"forbidden"`) || !strings.Contains(string(b), want) {
		t.Errorf("WebSocket commit answered %s, want forbidden naming the table", b)
	}

	_, metrics := get("/metrics")
	for _, want := range []string{`viewsync_source_connected{slot="vs_serve",source="postgres"} 1`, `viewsync_source_lag_bytes{slot="vs_serve",source="postgres"}`, `viewsync_source_lag_seconds{slot="vs_serve",source="postgres"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// TestServePostgresErrors: what cannot work stops serve at start with a
// message saying what to fix.
func TestServePostgresErrors(t *testing.T) {
	clearEnv(t)
	c, name, url := pgtest.NewDB(t)
	db := pgtest.Connect(t, url)
	pgtest.Exec(t, db, "CREATE TABLE nokey (id int)")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pg-url", url, "--pg-table", "public.nokey"}, "no primary key"},
		{[]string{"--pg-url", c.URL("postgres", "wrong", name), "--pg-table", "public.nokey"}, "check the user and password"},
		{[]string{"--pg-table", "public.nokey"}, "--pg-table needs --pg-url"},
		{[]string{"--pg-url", url}, "--pg-url needs at least one --pg-table"},
		{[]string{"--pg-url", url, "--pg-table", "public.nokey", "--engine", "nats"}, "--pg-url needs --engine bbolt"},
		{[]string{"--pg-url", url, "--pg-table", "a.b.c"}, "bad table mapping"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		code, _, stderr := runCmd(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %s: exit %d, stderr %q; want it to say %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}
