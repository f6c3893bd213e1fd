package vsclient_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/client/vsclient"
	"github.com/viewsync/viewsync/protocol"
)

// TestWithIdempotencyKey: writes and calls sent again with the same key
// are applied (run) once and answered the same; another request under
// the key is refused.
func TestWithIdempotencyKey(t *testing.T) {
	srv, p := startServer(t, nil)
	var runs atomic.Int64
	srv.Hub().HandleCall("count", func(ctx context.Context, call *viewsync.Call) (any, error) { return runs.Add(1), nil })
	c := newClient(t, p, vsclient.SSE)
	ctx := t.Context()
	for range 2 {
		r, err := c.Put(ctx, "things", "a", map[string]int{"n": 1}, vsclient.WithIdempotencyKey("put-1"))
		if err != nil || r.Version != 1 {
			t.Fatalf("keyed Put: %+v %v", r, err)
		}
		v, err := c.Commit(ctx, "things", []protocol.Op{{Op: protocol.OpPut, ID: "b", Value: []byte("2")}}, nil, vsclient.WithIdempotencyKey("commit-1"))
		if err != nil || v != 2 {
			t.Fatalf("keyed Commit: %d %v", v, err)
		}
		res, err := c.Call(ctx, "count", nil, vsclient.WithIdempotencyKey("call-1"))
		if err != nil || string(res.Result) != "1" {
			t.Fatalf("keyed Call: %s %v", res.Result, err)
		}
		v, err = c.Delete(ctx, "things", "a", vsclient.WithIdempotencyKey("delete-1"))
		if err != nil || v != 3 {
			t.Fatalf("keyed Delete: %d %v", v, err)
		}
	}
	_, err := c.Put(ctx, "things", "a", map[string]int{"n": 2}, vsclient.WithIdempotencyKey("put-1"))
	var ve *vsclient.Error
	if !errors.As(err, &ve) || ve.Code != protocol.CodeIdempotencyKeyReused {
		t.Fatalf("another Put under the key: %v", err)
	}
}
