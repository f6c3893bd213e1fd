package ws_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/ws"
)

// TestHandshakeRefusals: every refusal of an upgrade request is the
// contract's JSON error body, with 426 for what is not an upgrade or asks
// for another WebSocket version (saying which one is spoken), 400 for a
// broken upgrade and 403 for a foreign origin; none is plain text.
func TestHandshakeRefusals(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{OriginPatterns: []string{"https://app.example.com"}}})
	client := e.srv.Client()
	defer client.CloseIdleConnections()
	upgrade := func() http.Header {
		return http.Header{
			"Connection":             {"Upgrade"},
			"Upgrade":                {"websocket"},
			"Sec-Websocket-Version":  {"13"},
			"Sec-Websocket-Key":      {"dGhlIHNhbXBsZSBub25jZQ=="},
			"Sec-Websocket-Protocol": {protocol.WSSubprotocol},
		}
	}
	tests := []struct {
		name    string
		edit    func(h http.Header)
		status  int
		code    protocol.Code
		version bool // answers Sec-WebSocket-Version: 13
	}{
		{"no upgrade headers", func(h http.Header) { clear(h) }, http.StatusUpgradeRequired, protocol.CodeBadRequest, true},
		{"Upgrade without Connection", func(h http.Header) { h.Del("Connection") }, http.StatusUpgradeRequired, protocol.CodeBadRequest, true},
		{"Connection without the upgrade option", func(h http.Header) { h.Set("Connection", "keep-alive") }, http.StatusUpgradeRequired, protocol.CodeBadRequest, true},
		{"Upgrade to another protocol", func(h http.Header) { h.Set("Upgrade", "h2c") }, http.StatusUpgradeRequired, protocol.CodeBadRequest, true},
		{"another version", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, http.StatusUpgradeRequired, protocol.CodeBadRequest, true},
		{"two versions", func(h http.Header) { h.Add("Sec-Websocket-Version", "8") }, http.StatusUpgradeRequired, protocol.CodeBadRequest, true},
		{"no version", func(h http.Header) { h.Del("Sec-Websocket-Version") }, http.StatusBadRequest, protocol.CodeBadRequest, true},
		{"no key", func(h http.Header) { h.Del("Sec-Websocket-Key") }, http.StatusBadRequest, protocol.CodeBadRequest, false},
		{"short key", func(h http.Header) { h.Set("Sec-Websocket-Key", "c2hvcnQ=") }, http.StatusBadRequest, protocol.CodeBadRequest, false},
		{"key of 24 characters, not base64", func(h http.Header) { h.Set("Sec-Websocket-Key", "!!!!!!!!!!!!!!!!!!!!!!!!") }, http.StatusBadRequest, protocol.CodeBadRequest, false},
		{"two keys", func(h http.Header) { h.Add("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, http.StatusBadRequest, protocol.CodeBadRequest, false},
		{"malformed subprotocol offer", func(h http.Header) { h.Set("Sec-Websocket-Protocol", "viewsync.v1; q=1") }, http.StatusBadRequest, protocol.CodeBadRequest, false},
		{"subprotocol offer with a quoted string", func(h http.Header) { h.Set("Sec-Websocket-Protocol", `"viewsync.v1"`) }, http.StatusBadRequest, protocol.CodeBadRequest, false},
		{"foreign origin", func(h http.Header) { h.Set("Origin", "https://evil.example.com") }, http.StatusForbidden, protocol.CodeForbidden, false},
		{"allowed origin over another scheme", func(h http.Header) { h.Set("Origin", "http://app.example.com") }, http.StatusForbidden, protocol.CodeForbidden, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = upgrade()
			tt.edit(req.Header)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				resp.Body.Close()
				t.Fatalf("upgraded, want %d", tt.status)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.status, body)
			}
			var eb protocol.ErrorBody
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" || json.Unmarshal(body, &eb) != nil || eb.Error == nil || eb.Error.Code != tt.code || eb.Error.Message == "" {
				t.Fatalf("Content-Type %q, body %q; want the error body with code %s", ct, body, tt.code)
			}
			if got := resp.Header.Get("Sec-Websocket-Version"); tt.version && got != "13" {
				t.Errorf("Sec-WebSocket-Version %q, want 13", got)
			}
			if resp.StatusCode == http.StatusUpgradeRequired && resp.Header.Get("Upgrade") != "websocket" {
				t.Errorf("426 without Upgrade: websocket")
			}
		})
	}
	if n := e.h.Connections(); n != 0 {
		t.Fatalf("%d connections after refused upgrades", n)
	}

	// The request all these broke is accepted, with offers in any form.
	for _, offer := range [][]string{
		{protocol.WSSubprotocol},
		{"chat, " + protocol.WSSubprotocol},
		{"chat", " " + protocol.WSSubprotocol + " ,"},
	} {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = upgrade()
		req.Header["Sec-Websocket-Protocol"] = offer
		req.Header.Set("Origin", "https://app.example.com")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Protocol") != protocol.WSSubprotocol {
			t.Errorf("offer %q: status %d, subprotocol %q", offer, resp.StatusCode, resp.Header.Get("Sec-Websocket-Protocol"))
		}
	}
}
