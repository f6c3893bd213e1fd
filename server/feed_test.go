package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/server"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestFedCollectionRefusesWrites: every HTTP write and a WebSocket commit
// to a collection fed from a source get 403 forbidden naming the source;
// reads go on, and the feed's own commits reach the readers.
func TestFedCollectionRefusesWrites(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	srv, err := server.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, srv)
	feed, err := srv.Hub().Feed("products", "PostgreSQL table public.products", "write to the table")
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := feed.Commit(ctx, []viewsync.Op{viewsync.Put("1", []byte(`{"name":"Lamp"}`))}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	const message = "collection products is fed from PostgreSQL table public.products; write to the table"
	coll := r.url + "/v1/collections/products"
	for _, w := range []struct{ method, path, body, ctype string }{
		{"PUT", "/records/2", `{"name":"Desk"}`, "application/json"},
		{"PATCH", "/records/1", `{"name":"Desk"}`, "application/merge-patch+json"},
		{"DELETE", "/records/1", "", ""},
		{"POST", "/commits", `{"ops":[{"op":"delete","id":"1"}]}`, "application/json"},
	} {
		var hdr []string
		if w.ctype != "" {
			hdr = []string{"Content-Type", w.ctype}
		}
		code, _, body := do(t, w.method, coll+w.path, w.body, hdr...)
		var e protocol.ErrorBody
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil {
			t.Errorf("%s %s: %d %s: not an error body", w.method, w.path, code, body)
			continue
		}
		if code != http.StatusForbidden || e.Error.Code != protocol.CodeForbidden || e.Error.Message != message {
			t.Errorf("%s %s: %d %+v, want 403 forbidden %q", w.method, w.path, code, e.Error, message)
		}
	}
	if code, _, body := do(t, "GET", coll, ""); code != http.StatusOK || !strings.Contains(body, `"Lamp"`) {
		t.Errorf("GET: %d %s", code, body)
	}

	c, _, err := wstest.Dial(ctx, "ws"+strings.TrimPrefix(r.url, "http")+"/v1/ws", &wstest.Options{Subprotocols: []string{"viewsync.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.WriteMessage(ctx, 0x1, []byte(`{"type":"commit","id":7,"collection":"products","ops":[{"op":"put","id":"9","value":1}]}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := c.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("WebSocket: %v", err)
		}
		var m struct {
			Type    string          `json:"type"`
			ID      json.RawMessage `json:"id"`
			Code    protocol.Code   `json:"code"`
			Message string          `json:"message"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "result" {
			t.Fatalf("WebSocket commit accepted: %s", b)
		}
		if m.Type == "error" {
			if string(m.ID) != "7" || m.Code != protocol.CodeForbidden || m.Message != message {
				t.Fatalf("WebSocket error %s, want id 7 forbidden %q", b, message)
			}
			break
		}
	}
}
