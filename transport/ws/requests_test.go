package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/ws"
)

func put(id, value string) protocol.Op {
	return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(value)}
}

func del(id string) protocol.Op { return protocol.Op{Op: protocol.OpDelete, ID: id} }

// TestCommit: commits through the connection are answered with their
// version, or with the contract's error code and the message's id; failed
// ones change nothing.
func TestCommit(t *testing.T) {
	e := newEnv(t, &config{hub: []viewsync.Option{viewsync.WithLimits(viewsync.Limits{MaxOpsPerCommit: 3, MaxValueBytes: 64})}})
	c := e.dial()
	ok := func(id string, m *protocol.CommitMessage, version uint64) {
		t.Helper()
		m.ID = protocol.StringID(id)
		c.send(m)
		r := c.expectResult(id)
		if string(r.Result) != fmt.Sprintf(`{"version":%d}`, version) {
			t.Fatalf("commit %s: result %s, want version %d", m.ID, r.Result, version)
		}
		if len(r.Versions) != 1 || r.Versions[m.Collection] != version {
			t.Fatalf("commit %s: versions %v, want {%s: %d}", m.ID, r.Versions, m.Collection, version)
		}
	}
	ok("c1", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `{"n": 1}`), put("b", `2`)}}, 1)
	ok("c2", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `3`)}, If: map[string]uint64{"a": 1}}, 2)
	ok("c3", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("n", `4`)}, If: map[string]uint64{"n": 0, "b": 1}}, 3)
	ok("c4", &protocol.CommitMessage{Collection: "other", Ops: []protocol.Op{put("a", `5`)}}, 1)

	before, err := e.collection("c").Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fails := []struct {
		name string
		m    *protocol.CommitMessage
		code protocol.Code
	}{
		{"stale if", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `9`)}, If: map[string]uint64{"a": 1}}, protocol.CodePreconditionFailed},
		{"exists", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `9`)}, If: map[string]uint64{"a": 0}}, protocol.CodePreconditionFailed},
		{"missing", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("z", `9`)}, If: map[string]uint64{"z": 2}}, protocol.CodePreconditionFailed},
		{"one of two", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `9`), put("b", `9`)}, If: map[string]uint64{"a": 2, "b": 2}}, protocol.CodePreconditionFailed},
		{"delete missing", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `9`), del("nope")}}, protocol.CodeNotFound},
		{"no ops", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{}}, protocol.CodeBadRequest},
		{"bad op", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{{Op: "patch", ID: "a", Value: json.RawMessage(`1`)}}}, protocol.CodeBadRequest},
		{"delete with value", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{{Op: protocol.OpDelete, ID: "a", Value: json.RawMessage(`1`)}}}, protocol.CodeBadRequest},
		{"put without value", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{{Op: protocol.OpPut, ID: "a"}}}, protocol.CodeBadRequest},
		{"empty id", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("", `1`)}}, protocol.CodeBadRequest},
		{"control id", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a\nb", `1`)}}, protocol.CodeBadRequest},
		{"bad if id", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `1`)}, If: map[string]uint64{"": 1}}, protocol.CodeBadRequest},
		{"too many ops", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `1`), put("b", `1`), put("d", `1`), put("e", `1`)}}, protocol.CodeTooLarge},
		{"value too large", &protocol.CommitMessage{Collection: "c", Ops: []protocol.Op{put("a", `"`+strings.Repeat("x", 100)+`"`)}}, protocol.CodeTooLarge},
	}
	for i, f := range fails {
		t.Run(f.name, func(t *testing.T) {
			f.m.ID = protocol.StringID(fmt.Sprint("f", i))
			c.send(f.m)
			c.expectError(fmt.Sprint("f", i), f.code)
		})
	}
	after, err := e.collection("c").Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version || len(after.Records) != len(before.Records) {
		t.Fatalf("failed commits changed the collection: %+v, then %+v", before, after)
	}
	// The values were stored compact.
	if r, err := e.collection("c").Get(context.Background(), "n"); err != nil || string(r.Value) != `4` || r.Version != 3 {
		t.Fatalf("record n = %+v, %v", r, err)
	}
}

// TestCommitSeenBySubscriber: a commit made through one connection reaches
// the subscribers of every connection, as the frame fanout encoded.
func TestCommitSeenBySubscriber(t *testing.T) {
	e := newEnv(t, nil)
	sub := e.dial()
	sub.subscribe("c", nil, "")
	sub.expect(protocol.TypeReset)
	w := e.dial()
	w.send(&protocol.CommitMessage{ID: protocol.StringID("1"), Collection: "c", Ops: []protocol.Op{put("a", `{ "x" : [1, 2] }`), del("a"), put("b", `"é"`)}})
	w.expectResult("1")
	m := sub.expect(protocol.TypeCommit)
	if m.Version != 1 || len(m.Ops) != 3 || string(m.Ops[0].Value) != `{"x":[1,2]}` || m.Ops[1].Op != protocol.OpDelete || string(m.Ops[2].Value) != `"é"` {
		t.Fatalf("subscriber got %+v", m)
	}
}

// TestCall: calls are answered with the handler's result and the versions
// it wrote, or an error with the call's id.
func TestCall(t *testing.T) {
	e := newEnv(t, nil)
	err := e.hub.HandleCall("add", func(ctx context.Context, call *viewsync.Call) (any, error) {
		var arg struct {
			ID    string          `json:"id"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(call.Arg, &arg); err != nil {
			return nil, &viewsync.CallError{Code: protocol.CodeBadRequest, Message: "arg: " + err.Error()}
		}
		col, err := call.Collection("items")
		if err != nil {
			return nil, err
		}
		r, err := col.Put(ctx, arg.ID, arg.Value)
		if err != nil {
			return nil, err
		}
		return map[string]any{"added": r.ID}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.hub.HandleCall("deny", func(context.Context, *viewsync.Call) (any, error) {
		return nil, &viewsync.CallError{Code: protocol.CodeForbidden, Message: "no"}
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.hub.HandleCall("boom", func(context.Context, *viewsync.Call) (any, error) {
		panic("handler bug")
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.hub.HandleCall("echo", func(_ context.Context, call *viewsync.Call) (any, error) {
		return call.Arg, nil
	}); err != nil {
		t.Fatal(err)
	}

	c := e.dial()
	c.send(&protocol.CallMessage{ID: protocol.StringID("k1"), Name: "add", Arg: json.RawMessage(`{"id":"x","value":{"n":1}}`)})
	r := c.expectResult("k1")
	if string(r.Result) != `{"added":"x"}` || len(r.Versions) != 1 || r.Versions["items"] != 1 {
		t.Fatalf("result %s, versions %v", r.Result, r.Versions)
	}
	c.send(&protocol.CallMessage{ID: protocol.StringID("k2"), Name: "echo", Arg: json.RawMessage(`[1, "two", null]`)})
	if r := c.expectResult("k2"); string(r.Result) != `[1,"two",null]` || r.Versions == nil || len(r.Versions) != 0 {
		t.Fatalf("echo: result %s, versions %#v", r.Result, r.Versions)
	}
	c.send(&protocol.CallMessage{ID: protocol.StringID("k3"), Name: "nope", Arg: json.RawMessage(`null`)})
	if m := c.expectError("k3", protocol.CodeNotFound); !strings.Contains(m.Message, "nope") {
		t.Errorf("message %q does not name the call", m.Message)
	}
	c.send(&protocol.CallMessage{ID: protocol.StringID("k4"), Name: "deny", Arg: json.RawMessage(`1`)})
	c.expectError("k4", protocol.CodeForbidden)
	c.send(&protocol.CallMessage{ID: protocol.StringID("k5"), Name: "boom", Arg: json.RawMessage(`1`)})
	if m := c.expectError("k5", protocol.CodeInternal); m.Message != "internal error" {
		t.Errorf("internal error message %q, want the details kept from the client", m.Message)
	}
	c.send(&protocol.CallMessage{ID: protocol.StringID("k6"), Name: "add", Arg: json.RawMessage(`{"id":"x","value":{"n":2}}`)})
	if r := c.expectResult("k6"); r.Versions["items"] != 2 {
		t.Fatalf("versions %v, want items at 2", r.Versions)
	}
}

// TestCallConcurrency: one connection runs up to 16 calls at once; more
// wait for a slot, and all are answered.
func TestCallConcurrency(t *testing.T) {
	e := newEnv(t, nil)
	var (
		mu           sync.Mutex
		running, max int
	)
	release := make(chan struct{})
	if err := e.hub.HandleCall("block", func(ctx context.Context, call *viewsync.Call) (any, error) {
		mu.Lock()
		running++
		max = later(max, running)
		mu.Unlock()
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		select {
		case <-release:
			return call.Arg, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	const calls = 40
	for i := range calls {
		c.send(&protocol.CallMessage{ID: protocol.IntID(int64(i)), Name: "block", Arg: json.RawMessage(fmt.Sprint(i))})
	}
	eventually(t, "16 calls run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return running == 16
	})
	close(release)
	seen := map[protocol.MessageID]bool{}
	for range calls {
		r := c.expect(protocol.TypeResult)
		if string(r.Result) != r.ID.String() || seen[r.ID] {
			t.Fatalf("result %s for call %s (seen before: %v)", r.Result, r.ID, seen[r.ID])
		}
		seen[r.ID] = true
	}
	mu.Lock()
	defer mu.Unlock()
	if max != 16 {
		t.Fatalf("at most %d calls ran at once, want 16", max)
	}
}

func later(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// TestBadMessages: bad messages are answered with bad_request (and the id
// when they had a valid one); the connection goes on.
func TestBadMessages(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{MaxBadMessages: 20}})
	c := e.dial()
	bad := []struct {
		name string
		typ  gws.OpCode
		in   string
		id   string
	}{
		{"not json", gws.OpText, `subscribe me`, ""},
		{"truncated", gws.OpText, `{"type":"subscribe","collection":"c"`, ""},
		{"trailing", gws.OpText, `{"type":"unsubscribe","collection":"c"} {}`, ""},
		{"unknown type", gws.OpText, `{"type":"publish","collection":"c"}`, ""},
		{"missing type", gws.OpText, `{"collection":"c"}`, ""},
		{"missing collection", gws.OpText, `{"type":"subscribe"}`, ""},
		{"bad collection", gws.OpText, `{"type":"subscribe","collection":"C!"}`, ""},
		{"unknown field", gws.OpText, `{"type":"ack","collection":"c","version":1,"at":2}`, ""},
		{"call missing arg", gws.OpText, `{"type":"call","id":"q1","name":"n"}`, "q1"},
		{"commit ops not array", gws.OpText, `{"type":"commit","id":"q2","collection":"c","ops":{}}`, "q2"},
		{"invalid utf-8", gws.OpText, "{\"type\":\"unsubscribe\",\"collection\":\"\xff\"}", ""},
		{"binary", gws.OpBinary, `{"type":"subscribe","collection":"c"}`, ""},
		{"empty", gws.OpText, ``, ""},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			c.sendRaw(b.typ, []byte(b.in))
			c.expectError(b.id, protocol.CodeBadRequest)
		})
	}
	// Still working, and nothing was written.
	c.send(&protocol.CommitMessage{ID: protocol.StringID("ok"), Collection: "c", Ops: []protocol.Op{put("a", `1`)}})
	if r := c.expectResult("ok"); r.Versions["c"] != 1 {
		t.Fatalf("versions %v, want c at 1", r.Versions)
	}
}

// TestTooManyBadMessages: past MaxBadMessages the connection is closed
// with 1008 (policy violation).
func TestTooManyBadMessages(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{MaxBadMessages: 3}})
	c := e.dial()
	for range 3 {
		c.sendText(`{"type":"nope"}`)
		c.expectError("", protocol.CodeBadRequest)
	}
	// Valid messages and failed requests do not count.
	c.send(&protocol.CommitMessage{ID: protocol.StringID("x"), Collection: "c", Ops: []protocol.Op{del("missing")}})
	c.expectError("x", protocol.CodeNotFound)
	c.sendText(`{"type":"nope"}`)
	err := c.expectClosed(gws.StatusPolicyViolation)
	if !strings.Contains(err.Error(), "too many bad messages") {
		t.Errorf("close %v does not give the reason", err)
	}
	eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })
}

// TestOversizeMessage: a message over MaxMessageBytes closes the connection
// with 1009 (message too big).
func TestOversizeMessage(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{MaxMessageBytes: 1 << 10}})
	c := e.dial()
	small := &protocol.CommitMessage{ID: protocol.StringID("s"), Collection: "c", Ops: []protocol.Op{put("a", `"`+strings.Repeat("x", 900)+`"`)}}
	c.send(small)
	c.expectResult("s")
	big := &protocol.CommitMessage{ID: protocol.StringID("b"), Collection: "c", Ops: []protocol.Op{put("a", `"`+strings.Repeat("x", 2<<10)+`"`)}}
	b, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	// The write may fail once the server has closed.
	if err := c.write(gws.OpText, b); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("writing the big message: %v", err)
	}
	c.expectClosed(gws.StatusMessageTooBig)
	eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })
	if r, err := e.collection("c").Get(context.Background(), "a"); err != nil || r.Version != 1 {
		t.Fatalf("record a = %+v, %v; want it unchanged at version 1", r, err)
	}
}
