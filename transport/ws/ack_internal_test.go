package ws

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
)

// TestAckRecorded: a valid ack is recorded on its subscription.
func TestAckRecorded(t *testing.T) {
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
	h, err := New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer h.Shutdown(ctx)

	col, err := hub.Collection("a")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := col.Put(ctx, "k", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	c, _, err := wstest.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	write := func(s string) {
		t.Helper()
		if err := c.WriteMessage(ctx, gws.OpText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"type":"subscribe","collection":"a"}`)
	if _, b, err := c.ReadMessage(ctx); err != nil || !strings.HasPrefix(string(b), `{"type":"reset","collection":"a",`) {
		t.Fatalf("read %s, %v; want a reset", b, err)
	}
	write(`{"type":"ack","collection":"a","version":2}`)
	write(`{"type":"ack","collection":"a","version":3}`)
	// Messages are handled in order: once this is answered, the acks are in.
	write(`{"type":"unsubscribe","collection":"b"}`)
	if _, b, err := c.ReadMessage(ctx); err != nil || !strings.Contains(string(b), `"code":"not_found"`) {
		t.Fatalf("read %s, %v; want a not_found error", b, err)
	}

	h.mu.Lock()
	var conn *conn
	for c := range h.conns {
		conn = c
	}
	h.mu.Unlock()
	s := conn.subscription("a", "")
	if s == nil {
		t.Fatal("no subscription to a")
	}
	if got := s.acked.Load(); got != 3 {
		t.Fatalf("acked %d, want 3", got)
	}
	if got := s.p.Sent(); got != 3 {
		t.Fatalf("sent %d, want 3", got)
	}
}
