package ws_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/ws"
)

func TestNew(t *testing.T) {
	if _, err := ws.New(nil, nil); err == nil {
		t.Error("New(nil hub) succeeded")
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	for _, o := range []ws.Options{
		{PingInterval: -time.Second}, {WriteTimeout: -1}, {MaxMessageBytes: -1}, {MaxSubscriptions: -1},
		{MaxConnections: -1}, {MaxBadMessages: -1}, {OriginPatterns: []string{"[bad"}},
		{OriginPatterns: []string{"app-?.example.com"}}, {OriginPatterns: []string{"*://*"}},
		{OriginPatterns: []string{"ftp://app.example.com"}}, {OriginPatterns: []string{"https://app.example.com/"}},
	} {
		if _, err := ws.New(hub, &o); err == nil {
			t.Errorf("New with %+v succeeded", o)
		}
	}
	for _, o := range []*ws.Options{nil, {}, {OriginPatterns: []string{"*.example.com"}}, {OriginPatterns: []string{"https://*.example.com", "app.example.com:8443", "*"}}} {
		if _, err := ws.New(hub, o); err != nil {
			t.Errorf("New with %+v: %v", o, err)
		}
	}
}

// TestSubprotocolRequired: a client that does not offer viewsync.v1 is
// closed with 1002 (protocol error) and told why.
func TestSubprotocolRequired(t *testing.T) {
	e := newEnv(t, nil)
	for _, offered := range [][]string{nil, {"chat"}, {"viewsync.v2"}} {
		c := e.dialWith(&wstest.Options{Subprotocols: offered})
		if got := c.Protocol(); got != "" {
			t.Fatalf("offered %q, negotiated %q", offered, got)
		}
		err := c.expectClosed(gws.StatusProtocolError)
		if !strings.Contains(err.Error(), "subprotocol viewsync.v1 required") {
			t.Errorf("close %v does not say the subprotocol is required", err)
		}
	}
	c := e.dialWith(&wstest.Options{Subprotocols: []string{"chat", protocol.WSSubprotocol}})
	if got := c.Protocol(); got != protocol.WSSubprotocol {
		t.Fatalf("negotiated %q, want %q", got, protocol.WSSubprotocol)
	}
	c.send(&protocol.AckMessage{Collection: "c", Version: 0})
	c.expectError("", protocol.CodeNotFound)
}

// TestNotAnUpgrade: plain HTTP requests are refused.
func TestNotAnUpgrade(t *testing.T) {
	e := newEnv(t, nil)
	client := e.srv.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Post(e.srv.URL+"/v1/ws", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("POST: status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	var eb protocol.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code != protocol.CodeMethodNotAllowed {
		t.Fatalf("POST: body %s", body)
	}
	resp, err = client.Get(e.srv.URL + "/v1/ws")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET without upgrade: status %d, Upgrade %q, Content-Type %q; want 426, websocket, JSON", resp.StatusCode, resp.Header.Get("Upgrade"), resp.Header.Get("Content-Type"))
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code != protocol.CodeBadRequest {
		t.Fatalf("GET without upgrade: body %s", body)
	}
	if n := e.h.Connections(); n != 0 {
		t.Fatalf("%d connections after refused requests", n)
	}
}

// TestCrossOrigin: pages of other origins are refused unless allowed.
func TestCrossOrigin(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{OriginPatterns: []string{"app.example.com"}}})
	dial := func(origin string) (*http.Response, error) {
		c, resp, err := e.tryDial(&wstest.Options{
			Subprotocols: []string{protocol.WSSubprotocol},
			Header:       http.Header{"Origin": {origin}},
		})
		if err == nil {
			c.Close(gws.StatusNormalClosure, "")
		}
		return resp, err
	}
	if resp, err := dial("https://evil.example.org"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v, %v; want 403", resp, err)
	}
	if _, err := dial("https://app.example.com"); err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	if _, err := dial(e.srv.URL); err != nil {
		t.Fatalf("same origin: %v", err)
	}
}

// TestMaxConnections: past MaxConnections an upgrade gets 503; a slot
// frees when a connection ends.
func TestMaxConnections(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{MaxConnections: 2}})
	a := e.dial()
	e.dial()
	eventually(t, "two connections", func() bool { return e.h.Connections() == 2 })
	_, resp, err := e.tryDial(&wstest.Options{Subprotocols: []string{protocol.WSSubprotocol}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: %v, %v; want 503", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	var eb protocol.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code != protocol.CodeUnavailable {
		t.Fatalf("third connection: body %s", body)
	}
	a.Close(gws.StatusNormalClosure, "bye")
	eventually(t, "a slot frees", func() bool { return e.h.Connections() == 1 })
	c := e.dial()
	c.send(&protocol.AckMessage{Collection: "c"})
	c.expectError("", protocol.CodeNotFound)
}

// TestShutdown: Shutdown closes every connection with 1001, those without
// subscriptions too, and refuses new ones.
func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	idle := e.dial()
	subscribed := e.dial()
	subscribed.subscribe("a", nil, "")
	subscribed.expect(protocol.TypeReset)
	idle.send(&protocol.AckMessage{Collection: "a"})
	idle.expectError("", protocol.CodeNotFound)

	// The clients read, as browsers do, so they answer the close handshake.
	ended := make(chan error, 2)
	for _, c := range []*client{idle, subscribed} {
		go func() {
			for {
				if _, err := c.read(); err != nil {
					ended <- err
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := e.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.h.Connections(); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
	for range 2 {
		if err := <-ended; wstest.CloseStatus(err) != gws.StatusGoingAway || !strings.Contains(err.Error(), "shutting down") {
			t.Fatalf("client: %v, want 1001 going away", err)
		}
	}
	_, resp, err := e.tryDial(&wstest.Options{Subprotocols: []string{protocol.WSSubprotocol}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v, %v; want 503", resp, err)
	}
}

// TestClientCloseEndsEverything: when the client goes, the connection's
// subscriptions and calls end with it.
func TestClientCloseEndsEverything(t *testing.T) {
	e := newEnv(t, nil)
	started := make(chan struct{})
	if err := e.hub.HandleCall("wait", func(ctx context.Context, _ *viewsync.Call) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	c.subscribe("a", nil, "")
	c.subscribe("b", u64(0), "")
	c.expect(protocol.TypeReset)
	c.send(&protocol.CallMessage{ID: protocol.StringID("w"), Name: "wait", Arg: json.RawMessage(`null`)})
	<-started
	if n := e.hub.LiveCollections(); n != 2 {
		t.Fatalf("%d live collections, want 2", n)
	}
	c.Close(gws.StatusNormalClosure, "bye")
	eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })
	if n := e.hub.LiveCollections(); n != 0 {
		t.Fatalf("%d live collections after the client left, want 0", n)
	}
}

// TestPing: the server pings every PingInterval; a client that answers
// stays, one that does not is cut after WriteTimeout.
func TestPing(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{PingInterval: 20 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}})

	var pings atomic.Int64
	answering := e.dialWith(&wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
		OnPing: func([]byte) bool {
			pings.Add(1)
			return true
		},
	})
	// Reading is what answers pings.
	readErr := make(chan error, 1)
	msgs := make(chan protocol.ServerMessage, 1)
	go func() {
		for {
			m, err := answering.read()
			if err != nil {
				readErr <- err
				return
			}
			msgs <- m
		}
	}()

	var silentPings atomic.Int64
	silent := e.dialWith(&wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
		OnPing: func([]byte) bool {
			silentPings.Add(1)
			return false // no pong
		},
	})
	silentDone := make(chan error, 1)
	go func() {
		for {
			if _, err := silent.read(); err != nil {
				silentDone <- err
				return
			}
		}
	}()

	if err := <-silentDone; wstest.CloseStatus(err) != wstest.Cut {
		t.Fatalf("silent client: %v, want the connection cut", err)
	}
	if silentPings.Load() == 0 {
		t.Fatal("the silent client was cut without being pinged")
	}
	eventually(t, "the silent client's connection is gone", func() bool { return e.h.Connections() == 1 })
	eventually(t, "the answering client has had several pings", func() bool { return pings.Load() >= 10 })
	answering.send(&protocol.CommitMessage{ID: protocol.StringID("p"), Collection: "c", Ops: []protocol.Op{put("a", `1`)}})
	select {
	case m := <-msgs:
		if m.Type != protocol.TypeResult || m.ID != protocol.StringID("p") {
			t.Fatalf("got %+v, want the result of p", m)
		}
	case err := <-readErr:
		t.Fatalf("answering client: %v", err)
	}
	answering.Close(gws.StatusNormalClosure, "")
	<-readErr
}
