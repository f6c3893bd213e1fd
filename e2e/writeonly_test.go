package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
)

// TestAccessWriteOnly: a token with the write right on a collection but
// not the read right writes through every write endpoint — PUT, PATCH,
// DELETE and POST commits over HTTP, commit messages over WebSocket — and
// learns from the answers only the versions its writes made: never a
// record's value (a patch's answer would hold the value it merged into),
// nor, from a failed precondition, the record's version or whether it
// exists. The same writes with a token that may also read are answered in
// full (the control).
func TestAccessWriteOnly(t *testing.T) {
	e := startAccessServer(t, accessOptions{})
	client := e.client(t, "")
	writer := e.token("wanda", auth.Rights{Write: []string{"b", "c"}}, time.Hour)
	reader := e.token("rita", auth.Rights{Read: []string{"b", "c"}, Write: []string{"b", "c"}}, time.Hour)
	const secret = `{"secret":"hidden-5b1c"}`

	// seed puts the secret into r1 of b at a record version that appears
	// nowhere else (the collection moves on past it), and returns it.
	seed := func(t *testing.T) string {
		t.Helper()
		e.put(t, "b", "other", `0`)
		v := e.put(t, "b", "r1", secret)
		e.put(t, "b", "other", `1`)
		e.put(t, "b", "other", `2`)
		return strconv.FormatUint(v, 10)
	}

	t.Run("http", func(t *testing.T) {
		for _, op := range httpOps {
			if op.action != auth.Write {
				continue
			}
			t.Run(op.name, func(t *testing.T) {
				seed(t)
				v := e.state(t, "b")["b"].head.Version + 1
				req := op.build(e.base, "b")
				attach(req, inHeader, writer, false, "")
				r, err := do(client, req)
				if err != nil {
					t.Fatal(err)
				}
				var got map[string]json.RawMessage
				if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil {
					t.Fatalf("got %s, want 200", r)
				}
				if len(got) != 1 || string(got["version"]) != strconv.FormatUint(v, 10) || bytes.Contains(r.body, []byte("hidden")) {
					t.Errorf("a write-only token got %s, want only {\"version\":%d}", r, v)
				}
			})
		}
		// Each write under a stale precondition, on a record that exists
		// (in b) and on one that does not (in c).
		for _, op := range httpOps {
			if op.action != auth.Write {
				continue
			}
			t.Run("stale/"+op.name, func(t *testing.T) {
				hidden := seed(t)
				staleReq := func(coll, token string) reply {
					t.Helper()
					req := op.build(e.base, coll)
					if req.Method == http.MethodPost {
						req = newReq(http.MethodPost, e.base+"/v1/collections/"+coll+"/commits", "application/json",
							`{"ops":[{"op":"put","id":"r2","value":1}],"if":{"r1":1}}`)
					} else {
						req.Header.Set("If-Match", `"1"`)
					}
					attach(req, inHeader, token, false, "")
					r, err := do(client, req)
					if err != nil {
						t.Fatal(err)
					}
					if err := refusalError(r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed, ""); err != nil {
						t.Fatal(err)
					}
					if et := r.header.Get("ETag"); et != "" {
						t.Errorf("the 412 carries ETag %s", et)
					}
					return r
				}
				before := e.state(t, "b", "c")
				present, absent := staleReq("b", writer), staleReq("c", writer)
				if bytes.Contains(present.body, []byte(hidden)) {
					t.Errorf("a write-only token is told the record's version %s: %s", hidden, present)
				}
				if !bytes.Equal(present.body, bytes.ReplaceAll(absent.body, []byte(`"c"`), []byte(`"b"`))) {
					t.Errorf("a write-only token is told whether the record exists:\n present: %s\n absent:  %s", present, absent)
				}
				if r := staleReq("b", reader); !bytes.Contains(r.body, []byte(hidden)) {
					t.Errorf("a token that may read is not told the record's version %s: %s", hidden, r)
				}
				e.checkUnchanged(t, before)
			})
		}
	})

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), accessWait)
		defer cancel()
		hidden := seed(t)
		dial := func(token string) func(m *protocol.CommitMessage) protocol.ServerMessage {
			conn, r, err := dialWS(ctx, client, e.base, inQuery, token, false, "")
			if err != nil {
				t.Fatalf("dial: %v (%s)", err, r)
			}
			t.Cleanup(func() { conn.Close(gws.StatusNormalClosure, "") })
			return func(m *protocol.CommitMessage) protocol.ServerMessage {
				t.Helper()
				if err := wsSend(ctx, conn, m); err != nil {
					t.Fatal(err)
				}
				got, err := wsRead(ctx, conn)
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
		}
		w, rd := dial(writer), dial(reader)
		v := e.state(t, "b")["b"].head.Version + 1
		got := w(&protocol.CommitMessage{ID: protocol.StringID("ok"), Collection: "b", Ops: []protocol.Op{
			{Op: protocol.OpPut, ID: "r2", Value: json.RawMessage(`1`)}}})
		if got.Type != protocol.TypeResult || string(got.Result) != `{"version":`+strconv.FormatUint(v, 10)+`}` {
			t.Errorf("commit: %+v, want a result {\"version\":%d}", got, v)
		}
		stale := func(coll string) *protocol.CommitMessage {
			return &protocol.CommitMessage{ID: protocol.StringID("stale"), Collection: coll, Ops: []protocol.Op{
				{Op: protocol.OpPut, ID: "r2", Value: json.RawMessage(`2`)}}, If: map[string]uint64{"r1": 1}}
		}
		before := e.state(t, "b", "c")
		present, absent := w(stale("b")), w(stale("c"))
		for _, got := range []protocol.ServerMessage{present, absent} {
			if got.Type != protocol.TypeError || got.Code != protocol.CodePreconditionFailed || got.ID != protocol.StringID("stale") {
				t.Fatalf("stale commit: %+v, want a precondition_failed error", got)
			}
		}
		if strings.Contains(present.Message, hidden) {
			t.Errorf("a write-only token is told the record's version %s: %q", hidden, present.Message)
		}
		if present.Message != strings.ReplaceAll(absent.Message, `"c"`, `"b"`) {
			t.Errorf("a write-only token is told whether the record exists:\n present: %q\n absent:  %q", present.Message, absent.Message)
		}
		if got := rd(stale("b")); !strings.Contains(got.Message, hidden) {
			t.Errorf("a token that may read is not told the record's version %s: %+v", hidden, got)
		}
		e.checkUnchanged(t, before)
	})
}
