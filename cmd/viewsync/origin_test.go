package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
)

// TestServeWebSocketOrigin: with --cors-origin https://app.example.com, a
// page of that origin may open a WebSocket, and one of
// http://app.example.com — the same host over another scheme — may not
// (403), just as its CORS preflight is refused; a --ws-origins host
// pattern admits its host over both schemes.
func TestServeWebSocketOrigin(t *testing.T) {
	clearEnv(t)
	addr, _, _ := startServe(t, "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"),
		"--auth-secret", testSecret, "--cors-origin", "https://app.example.com", "--ws-origins", "partner.example.net")
	tok := mint(t, "--sub", "ana", "--read", "products")
	url := "ws://" + addr + "/v1/ws?token=" + tok

	dial := func(origin string) (*wstest.Client, *http.Response, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return wstest.Dial(ctx, url, &wstest.Options{
			Subprotocols: []string{protocol.WSSubprotocol},
			Header:       http.Header{"Origin": {origin}},
		})
	}
	preflight := func(origin string) int {
		req, err := http.NewRequest(http.MethodOptions, "http://"+addr+"/v1/collections/products", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodGet)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	for _, origin := range []string{"http://app.example.com", "https://evil.example.com", "https://app.example.com:8443"} {
		_, resp, err := dial(origin)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("WebSocket from %s: %v, %v; want 403", origin, resp, err)
		}
		var eb protocol.ErrorBody
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error == nil || eb.Error.Code != protocol.CodeForbidden {
			t.Errorf("WebSocket from %s: body %+v (%v), want the forbidden error body", origin, eb.Error, err)
		}
		if got := preflight(origin); got != http.StatusForbidden {
			t.Errorf("CORS preflight from %s: %d, want 403 like the WebSocket", origin, got)
		}
	}

	for _, origin := range []string{"https://app.example.com", "https://partner.example.net", "http://partner.example.net"} {
		c, resp, err := dial(origin)
		if err != nil {
			t.Fatalf("WebSocket from %s: %v, %v", origin, resp, err)
		}
		// The connection serves: a subscription gets its reset.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		if err := c.WriteMessage(ctx, gws.OpText, []byte(`{"type":"subscribe","collection":"products"}`)); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.ReadMessage(ctx)
		cancel()
		var m struct{ Type string }
		if err != nil || json.Unmarshal(msg, &m) != nil || m.Type != "reset" {
			t.Fatalf("WebSocket from %s: first message %s, %v; want a reset", origin, msg, err)
		}
		c.Close(gws.StatusNormalClosure, "")
	}
	if got := preflight("https://app.example.com"); got != http.StatusNoContent {
		t.Errorf("CORS preflight from https://app.example.com: %d, want 204", got)
	}
}
