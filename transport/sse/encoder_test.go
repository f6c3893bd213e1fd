package sse

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// TestCommitEvent: a commit's event is its id, its kind and the commit's
// JSON on one data line, whatever the whitespace of its values; the
// frame's encoding and the parts written for a page are the same bytes.
func TestCommitEvent(t *testing.T) {
	c := protocol.Commit{
		Version: 42,
		At:      time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC),
		Ops: []protocol.Op{
			{Op: protocol.OpPut, ID: "a", Value: json.RawMessage("{ \"x\" :\n 1, \"s\": \"l1\\nl2\" }")},
			{Op: protocol.OpDelete, ID: "b"},
		},
	}
	f, err := fanout.NewFrame("products", "E-1_x", c)
	if err != nil {
		t.Fatal(err)
	}
	want := "id: E-1_x:42\nevent: commit\ndata: " + string(f.JSON()) + "\n\n"
	head, body, tail := encoder{}.Commit(nil, f)
	if got := string(head) + string(body) + string(tail); got != want {
		t.Errorf("Commit = %q\nwant %q", got, want)
	}
	// One event: three field lines and the blank line ending it.
	if n := strings.Count(want, "\n"); n != 4 {
		t.Errorf("the event has %d newlines, want 4", n)
	}
	var back protocol.Commit
	if err := json.Unmarshal(body, &back); err != nil || back.Version != 42 || len(back.Ops) != 2 {
		t.Errorf("data %s: %+v, %v", body, back, err)
	}
	if &body[0] != &f.JSON()[0] {
		t.Error("the data is a copy of the frame's JSON, not the frame's own")
	}
}

// TestEvents: a catch-up and a reset are events whose id is their cursor
// and whose data is one line; ends say why in an "error" event without an
// id, except at shutdown.
func TestEvents(t *testing.T) {
	cu := &protocol.CatchUp{Collection: "c", Epoch: "E", Version: 7, Compacted: true, Records: []protocol.Record{{ID: "a", Value: json.RawMessage(`"x\ny"`), Version: 7}}, Deleted: []string{"b"}}
	parts, err := encoder{}.CatchUp(cu)
	if err != nil {
		t.Fatal(err)
	}
	got := string(bytes.Join(parts, nil))
	if !strings.HasPrefix(got, "id: E:7\nevent: catchup\ndata: {") || !strings.HasSuffix(got, "}\n\n") || strings.Count(got, "\n") != 4 {
		t.Errorf("catch-up event %q", got)
	}
	parts, err = encoder{}.Reset(&protocol.Snapshot{Collection: "c", Epoch: "E", Version: 3, Reset: true, Records: []protocol.Record{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.Join(parts, nil)); got != `id: E:3`+"\nevent: reset\ndata: "+`{"collection":"c","epoch":"E","version":3,"reset":true,"records":[]}`+"\n\n" {
		t.Errorf("reset event %q", got)
	}
	if got := string(encoder{}.Ping()); got != ": ping\n\n" {
		t.Errorf("ping %q", got)
	}
	for _, tc := range []struct {
		r    push.EndReason
		code protocol.Code
	}{{push.EndExpired, protocol.CodeUnauthorized}, {push.EndBusy, protocol.CodeUnavailable}} {
		ev := string(encoder{}.End(tc.r))
		data, ok := strings.CutPrefix(ev, "event: error\ndata: ")
		var body protocol.ErrorBody
		if !ok || !strings.HasSuffix(data, "\n\n") || json.Unmarshal([]byte(data), &body) != nil || body.Error == nil || body.Error.Code != tc.code {
			t.Errorf("end %d: %q", tc.r, ev)
		}
	}
	if ev := (encoder{}).End(push.EndClosing); ev != nil {
		t.Errorf("shutdown ends with %q, want nothing (the client reconnects after the retry hint)", ev)
	}
}
