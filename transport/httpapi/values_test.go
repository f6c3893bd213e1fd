package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/protocol"
)

// TestDeepValue is the scenario: a value nested about 10,000 deep
// was accepted (PUT 200) and broke every later read through its commit,
// for good (changes 500, SSE streams ending without an event, WebSocket
// subscriptions closed 1011, all surviving a restart). Every write path
// now refuses it with 400 naming the limit, and changes nothing; the
// history stays readable, before and after a restart.
func TestDeepValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "viewsync.db")
	st := openBolt(t, path)
	s := newStack(t, st)
	if r := s.sendJSON("PUT", "/v1/collections/c/records/a", `{"n":1}`); r.Status != http.StatusOK {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}

	deep := nested(9999, "")
	sock := s.dial()
	for _, w := range []struct {
		name  string
		write func(s *stack) (status int, code protocol.Code, msg string)
	}{
		{"PUT", httpWrite("PUT", "/v1/collections/c/records/b", "application/json", deep)},
		{"PATCH", httpWrite("PATCH", "/v1/collections/c/records/a", "application/merge-patch+json", `{"x":`+deep+`}`)},
		{"POST commits", httpWrite("POST", "/v1/collections/c/commits", "application/json", `{"ops":[{"op":"put","id":"b","value":`+deep+`}]}`)},
		{"POST call", httpWrite("POST", "/v1/calls/store", "application/json", `{"arg":`+deep+`}`)},
		{"WebSocket commit", func(s *stack) (int, protocol.Code, string) {
			m := s.exchange(sock, `{"type":"commit","id":"w1","collection":"c","ops":[{"op":"put","id":"b","value":`+deep+`}]}`)
			if m.Type != protocol.TypeError || m.ID != protocol.StringID("w1") {
				return 0, m.Code, fmt.Sprintf("a %s answer for %s: %s", m.Type, m.ID, m.Message)
			}
			return http.StatusBadRequest, m.Code, m.Message
		}},
		{"WebSocket call", func(s *stack) (int, protocol.Code, string) {
			m := s.exchange(sock, `{"type":"call","id":"w2","name":"store","arg":`+deep+`}`)
			if m.Type != protocol.TypeError || m.ID != protocol.StringID("w2") {
				return 0, m.Code, fmt.Sprintf("a %s answer for %s: %s", m.Type, m.ID, m.Message)
			}
			return http.StatusBadRequest, m.Code, m.Message
		}},
	} {
		t.Run(w.name, func(t *testing.T) {
			s := s.in(t)
			before := s.state("c")
			status, code, msg := w.write(s)
			if status != http.StatusBadRequest || code != protocol.CodeBadRequest || !strings.Contains(msg, "nested too deep") {
				t.Errorf("status %d, code %q, message %.120q; want 400 bad_request saying the value is nested too deep", status, code, msg)
			}
			if !strings.Contains(msg, "more than 32 levels") && !strings.Contains(msg, fmt.Sprintf("more than %d levels", protocol.MaxValueDepth+3)) {
				t.Errorf("message %.120q does not name the limit", msg)
			}
			if after := s.state("c"); !equalState(before, after) {
				t.Fatalf("the store changed: before %+v, after %+v", before, after)
			}
		})
	}
	s.wantReadable("c", 1)

	// After a restart, too.
	s.close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	newStack(t, openBolt(t, path)).wantReadable("c", 1)
}

// TestStoredValuesStillServed: values a store holds that the value rules
// now refuse, written before them (here straight into the store), are
// still served as they are stored by every reader: changes, snapshots,
// records, SSE and WebSocket resumes and resets. A patch of such a value
// is checked as any write.
func TestStoredValuesStillServed(t *testing.T) {
	st := openBolt(t, filepath.Join(t.TempDir(), "viewsync.db"))
	values := map[string]string{
		"deep":      `{"d":` + nested(200, `1`) + `}`,
		"duplicate": `{"k":1,"k":2}`,
		"surrogate": `"\ud800"`,
		"huge":      `[1e400]`,
	}
	for _, id := range []string{"deep", "duplicate", "surrogate", "huge"} {
		op := protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(values[id])}
		if _, err := st.Apply(t.Context(), "c", []protocol.Op{op}, nil); err != nil {
			t.Fatalf("store %s: %v", id, err)
		}
	}
	s := newStack(t, st)
	body := s.wantReadable("c", 4)
	for id, v := range values {
		if !strings.Contains(string(body), `"id":"`+id+`","value":`+v+`}`) {
			t.Errorf("changes do not carry %s as stored", id)
		}
		r := s.get("/v1/collections/c/records/" + id)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"value":`+v) {
			t.Errorf("record %s: %d %.80s", id, r.Status, r.Body)
		}
	}
	before := s.state("c")
	r := s.do("PATCH", "/v1/collections/c/records/deep", []byte(`{"x":1}`), "Content-Type", "application/merge-patch+json")
	if r.Status != http.StatusBadRequest {
		t.Fatalf("patch of a stored value too deep: status %d, want 400", r.Status)
	}
	wantError(t, r, http.StatusBadRequest, protocol.CodeBadRequest)
	if after := s.state("c"); !equalState(before, after) {
		t.Fatalf("a refused patch changed the store")
	}
}

// TestStoredDeepestValueServed: a value as deep as encoding/json reads a
// value alone (the 9,999 levels), taken before the value rules, is
// three levels deeper in its commit than encoding/json reads; every reader
// still serves it as stored. The answers are checked as bytes: a Go client
// using encoding/json could not decode them, which is why writes keep the
// value rules.
func TestStoredDeepestValueServed(t *testing.T) {
	st := openBolt(t, filepath.Join(t.TempDir(), "viewsync.db"))
	v := nested(9999, `1`)
	if _, err := st.Apply(t.Context(), "c", []protocol.Op{{Op: protocol.OpPut, ID: "deepest", Value: json.RawMessage(v)}}, nil); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, st)
	for _, path := range []string{"/v1/collections/c/changes?after=0", "/v1/collections/c", "/v1/collections/c/records/deepest"} {
		r := s.get(path)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"value":`+v) {
			t.Errorf("GET %s: status %d, value as stored: %v", path, r.Status, strings.Contains(string(r.Body), v))
		}
	}
	if name, data := s.firstEvent("c", "after=0"); name != "commit" || !strings.Contains(data, v) {
		t.Errorf("SSE resume: event %q, value as stored: %v", name, strings.Contains(data, v))
	}
	ws := s.dial()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := ws.WriteMessage(ctx, gws.OpText, []byte(`{"type":"subscribe","collection":"c","after":0}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.ReadMessage(ctx); err != nil || !strings.HasPrefix(string(b), `{"type":"commit"`) || !strings.Contains(string(b), v) {
		t.Errorf("WebSocket resume: %v, %.40s", err, b)
	}
}
