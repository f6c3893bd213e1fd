package ws_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/ws"
)

// TestCommitAnswersWhatTheCallerMayRead: a principal who may write a
// collection but not read it is answered a commit with its version only,
// and a failed precondition with neither the record's version nor whether
// it exists; a principal who may read is told both (the control).
func TestCommitAnswersWhatTheCallerMayRead(t *testing.T) {
	writer := auth.Principal{Subject: "wanda", Rights: auth.Rights{Write: []string{"*"}}}
	reader := auth.Principal{Subject: "rita", Rights: auth.Rights{Read: []string{"*"}, Write: []string{"*"}}}
	e := newEnv(t, &config{ws: ws.Options{Policy: &auth.Policy{
		Authenticate: func(r *http.Request) (auth.Principal, error) {
			if r.Header.Get("Authorization") == "Bearer reader" {
				return reader, nil
			}
			return writer, nil
		},
	}}})
	// Record a of c1 is at version 13 (its collection moves on to 17);
	// c2 has no record a.
	for range 12 {
		e.put("c1", "filler", `0`)
	}
	if v := e.put("c1", "a", `{"secret":"hidden-5b1c"}`); v != 13 {
		t.Fatalf("a at version %d, want 13", v)
	}
	for range 4 {
		e.put("c1", "filler", `0`)
	}
	e.put("c2", "filler", `0`)
	const hidden = "13"

	dial := func(who string) *client {
		return e.dialWith(&wstest.Options{
			Subprotocols: []string{protocol.WSSubprotocol},
			Header:       http.Header{"Authorization": {"Bearer " + who}},
		})
	}
	w, r := dial("writer"), dial("reader")

	w.send(&protocol.CommitMessage{ID: protocol.StringID("ok"), Collection: "c1", Ops: []protocol.Op{put("b", `1`)}, If: map[string]uint64{"a": 13}})
	if res := w.expectResult("ok"); string(res.Result) != `{"version":18}` {
		t.Errorf("commit answered %s, want {\"version\":18}", res.Result)
	}

	for i, ifs := range []map[string]uint64{{"a": 7}, {"a": 7, "z": 0}, {"b": 1, "a": 7}} {
		m := func(c string) *protocol.CommitMessage {
			return &protocol.CommitMessage{ID: protocol.StringID(fmt.Sprint("f", i)), Collection: c, Ops: []protocol.Op{put("b", `2`)}, If: ifs}
		}
		w.send(m("c1"))
		present := w.expectError(fmt.Sprint("f", i), protocol.CodePreconditionFailed)
		w.send(m("c2"))
		absent := w.expectError(fmt.Sprint("f", i), protocol.CodePreconditionFailed)
		if strings.Contains(present.Message, hidden) {
			t.Errorf("if %v: a writer without read is told the record's version: %q", ifs, present.Message)
		}
		if present.Message != strings.ReplaceAll(absent.Message, "c2", "c1") {
			t.Errorf("if %v: a writer without read is told whether the record exists:\n present: %q\n absent:  %q", ifs, present.Message, absent.Message)
		}
		r.send(m("c1"))
		if got := r.expectError(fmt.Sprint("f", i), protocol.CodePreconditionFailed); !strings.Contains(got.Message, hidden) {
			t.Errorf("if %v: a reader is not told the record's version: %q", ifs, got.Message)
		}
	}
	if rec, err := e.collection("c1").Get(context.Background(), "b"); err != nil || string(rec.Value) != `1` {
		t.Fatalf("record b = %+v, %v; the failed commits changed it", rec, err)
	}
}
