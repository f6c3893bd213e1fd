package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/transport/httpapi"
)

func etagOf(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// wantRecordResponse checks the answer of a put or a patch and that the
// store holds what it says.
func wantRecordResponse(t *testing.T, s *testServer, r response, coll, id, value string, version uint64) {
	t.Helper()
	var rr protocol.RecordResponse
	wantJSON(t, r, &rr)
	if rr.Version != version || rr.Record.ID != id || rr.Record.Version != version || !sameJSON(t, rr.Record.Value, []byte(value)) {
		t.Fatalf("answer %s, want record %q = %s at version %d", r.Body, id, value, version)
	}
	if got := r.Header.Get("ETag"); got != etagOf(version) {
		t.Errorf("ETag %s, want %s", got, etagOf(version))
	}
	rec, err := s.Store.Get(t.Context(), coll, id)
	if err != nil {
		t.Fatalf("store get %q: %v", id, err)
	}
	if string(rec.Value) != value || rec.Version != version {
		t.Fatalf("store holds %s at version %d, want %s at %d", rec.Value, rec.Version, value, version)
	}
}

func TestPut(t *testing.T) {
	s := newTestServer(t, nil)
	const path = "/v1/collections/c/records/a"

	r := s.sendJSON(http.MethodPut, path, "{ \"n\" : 1,\n \"s\": \"a  b\" }")
	wantRecordResponse(t, s, r, "c", "a", `{"n":1,"s":"a  b"}`, 1)

	r = s.sendJSON(http.MethodPut, path, `2`)
	wantRecordResponse(t, s, r, "c", "a", `2`, 2)

	t.Run("content types", func(t *testing.T) {
		for _, ct := range []string{"application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"} {
			v := s.head("c").Version + 1
			r := s.do(http.MethodPut, path, []byte(`"x"`), "Content-Type", ct)
			wantRecordResponse(t, s, r, "c", "a", `"x"`, v)
		}
	})

	t.Run("If-Match", func(t *testing.T) {
		cur, err := s.Store.Get(t.Context(), "c", "a")
		if err != nil {
			t.Fatal(err)
		}
		r := s.sendJSON(http.MethodPut, path, `3`, "If-Match", etagOf(cur.Version))
		wantRecordResponse(t, s, r, "c", "a", `3`, s.head("c").Version)

		before := s.state("c")
		r = s.sendJSON(http.MethodPut, path, `4`, "If-Match", etagOf(cur.Version)) // now stale
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		if after := s.state("c"); !equalState(before, after) {
			t.Fatalf("a stale If-Match changed the store")
		}

		r = s.sendJSON(http.MethodPut, path, `5`, "If-Match", "*")
		wantRecordResponse(t, s, r, "c", "a", `5`, s.head("c").Version)

		before = s.state("c")
		r = s.sendJSON(http.MethodPut, "/v1/collections/c/records/missing", `5`, "If-Match", "*")
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		r = s.sendJSON(http.MethodPut, "/v1/collections/c/records/missing", `5`, "If-Match", `"1"`)
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		if after := s.state("c"); !equalState(before, after) {
			t.Fatalf("a failed If-Match changed the store")
		}
	})

	t.Run("If-None-Match", func(t *testing.T) {
		v := s.head("c").Version + 1
		r := s.sendJSON(http.MethodPut, "/v1/collections/c/records/new", `{}`, "If-None-Match", "*")
		wantRecordResponse(t, s, r, "c", "new", `{}`, v)

		before := s.state("c")
		r = s.sendJSON(http.MethodPut, "/v1/collections/c/records/new", `{"again":true}`, "If-None-Match", "*")
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		if after := s.state("c"); !equalState(before, after) {
			t.Fatalf("If-None-Match: * on an existing record changed the store")
		}
	})
}

// escapeID escapes a record id for a URL path so that it reaches the
// handler unchanged: besides what url.PathEscape escapes, '.' too, since the
// server's mux redirects paths with "." or ".." segments to their cleaned
// form.
func escapeID(id string) string {
	return strings.ReplaceAll(url.PathEscape(id), ".", "%2E")
}

// TestRecordIDs writes, reads and deletes records whose ids need escaping
// in a URL.
func TestRecordIDs(t *testing.T) {
	s := newTestServer(t, nil)
	ids := []string{
		"a b",
		"a/b",
		"/",
		"a//b",
		"x/",
		"../up",
		".",
		"..",
		"日本語/é",
		"🙂",
		"a?b#c&d=e",
		"100%",
		"a+b",
		`q"uote`,
		"\u2028",
	}
	for i, id := range ids {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			path := "/v1/collections/c/records/" + escapeID(id)
			value := strconv.Quote(id)
			r := s.sendJSON(http.MethodPut, path, value)
			wantRecordResponse(t, s, r, "c", id, value, s.head("c").Version)

			var rec protocol.Record
			wantJSON(t, s.get(path), &rec)
			if rec.ID != id || !sameJSON(t, rec.Value, []byte(value)) {
				t.Fatalf("GET %s = %s, want id %q", path, s.get(path).Body, id)
			}

			r = s.sendJSON(http.MethodPatch, path, `{"p":1}`)
			wantRecordResponse(t, s, r, "c", id, `{"p":1}`, s.head("c").Version)

			r = s.do(http.MethodDelete, path, nil)
			var cr protocol.CommitResponse
			wantJSON(t, r, &cr)
			if _, err := s.Store.Get(t.Context(), "c", id); !errors.Is(err, viewsync.ErrNotFound) {
				t.Fatalf("after DELETE %s: store get = %v, want not found", path, err)
			}
		})
	}

	// A '/' in an id may also be sent unescaped, as long as the path stays
	// clean (no empty, "." or ".." segments).
	r := s.sendJSON(http.MethodPut, "/v1/collections/c/records/dir/sub/leaf", `1`)
	wantRecordResponse(t, s, r, "c", "dir/sub/leaf", `1`, s.head("c").Version)
	var rec protocol.Record
	wantJSON(t, s.get("/v1/collections/c/records/dir%2Fsub/leaf"), &rec)
	if rec.ID != "dir/sub/leaf" {
		t.Fatalf("mixed escaping read id %q", rec.ID)
	}
}

func TestPatch(t *testing.T) {
	s := newTestServer(t, nil)
	const path = "/v1/collections/c/records/a"
	v := s.put("c", "a", `{"keep":1,"obj":{"drop":true,"stay":"s"},"n":1}`)

	r := s.do(http.MethodPatch, path, []byte(`{"obj":{"drop":null,"add":[1]},"n":null,"big":12345678901234567890,"dec":1.10}`),
		"Content-Type", "application/merge-patch+json")
	v++
	wantRecordResponse(t, s, r, "c", "a", `{"big":12345678901234567890,"dec":1.10,"keep":1,"obj":{"add":[1],"stay":"s"}}`, v)

	r = s.sendJSON(http.MethodPatch, path, `{"keep":null}`)
	v++
	wantRecordResponse(t, s, r, "c", "a", `{"big":12345678901234567890,"dec":1.10,"obj":{"add":[1],"stay":"s"}}`, v)

	// A patch that is not an object replaces the value (RFC 7396).
	r = s.do(http.MethodPatch, path, []byte(`[ "whole" ]`), "Content-Type", "application/merge-patch+json; charset=utf-8")
	v++
	wantRecordResponse(t, s, r, "c", "a", `["whole"]`, v)

	t.Run("preconditions", func(t *testing.T) {
		before := s.state("c")
		r := s.sendJSON(http.MethodPatch, path, `{"x":1}`, "If-Match", etagOf(v-1))
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		r = s.sendJSON(http.MethodPatch, path, `{"x":1}`, "If-None-Match", "*")
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		if after := s.state("c"); !equalState(before, after) {
			t.Fatalf("a failed precondition changed the store")
		}

		r = s.sendJSON(http.MethodPatch, path, `{"x":1}`, "If-Match", etagOf(v))
		v++
		wantRecordResponse(t, s, r, "c", "a", `{"x":1}`, v)
		r = s.sendJSON(http.MethodPatch, path, `{"y":2}`, "If-Match", "*")
		v++
		wantRecordResponse(t, s, r, "c", "a", `{"x":1,"y":2}`, v)
	})

	t.Run("missing record", func(t *testing.T) {
		before := s.state("c")
		for _, hdr := range [][]string{nil, {"If-Match", "*"}} {
			r := s.sendJSON(http.MethodPatch, "/v1/collections/c/records/missing", `{"x":1}`, hdr...)
			want, code := http.StatusNotFound, protocol.CodeNotFound
			if hdr != nil {
				want, code = http.StatusPreconditionFailed, protocol.CodePreconditionFailed
			}
			wantError(t, r, want, code)
		}
		if after := s.state("c"); !equalState(before, after) {
			t.Fatalf("a patch of a missing record changed the store")
		}
	})
}

func TestDelete(t *testing.T) {
	s := newTestServer(t, nil)
	s.put("c", "a", `1`)
	vb := s.put("c", "b", `2`)

	r := s.do(http.MethodDelete, "/v1/collections/c/records/a", nil)
	var cr protocol.CommitResponse
	wantJSON(t, r, &cr)
	if cr.Version != 3 || string(r.Body) != `{"version":3}` {
		t.Fatalf("DELETE answered %s, want version 3", r.Body)
	}
	if _, err := s.Store.Get(t.Context(), "c", "a"); !errors.Is(err, viewsync.ErrNotFound) {
		t.Fatalf("record still there: %v", err)
	}

	before := s.state("c")
	wantError(t, s.do(http.MethodDelete, "/v1/collections/c/records/a", nil), http.StatusNotFound, protocol.CodeNotFound)
	wantError(t, s.do(http.MethodDelete, "/v1/collections/c/records/b", nil, "If-Match", etagOf(vb+1)), http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
	wantError(t, s.do(http.MethodDelete, "/v1/collections/c/records/b", nil, "If-None-Match", "*"), http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
	wantError(t, s.do(http.MethodDelete, "/v1/collections/c/records/a", nil, "If-Match", "*"), http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
	if after := s.state("c"); !equalState(before, after) {
		t.Fatalf("a refused delete changed the store")
	}

	wantJSON(t, s.do(http.MethodDelete, "/v1/collections/c/records/b", nil, "If-Match", etagOf(vb)), &cr)
	if cr.Version != 4 {
		t.Fatalf("DELETE with If-Match answered version %d, want 4", cr.Version)
	}
	s.put("c", "c", `3`)
	wantJSON(t, s.do(http.MethodDelete, "/v1/collections/c/records/c", nil, "If-Match", "*"), &cr)
	if cr.Version != 6 {
		t.Fatalf("DELETE with If-Match: * answered version %d, want 6", cr.Version)
	}
}

func TestCommits(t *testing.T) {
	s := newTestServer(t, nil)
	const path = "/v1/collections/c/commits"

	commit := func(t *testing.T, body string) uint64 {
		t.Helper()
		var cr protocol.CommitResponse
		wantJSON(t, s.sendJSON(http.MethodPost, path, body), &cr)
		return cr.Version
	}

	v := commit(t, `{"ops":[{"op":"put","id":"a","value":{ "n" : 1 }},{"op":"put","id":"b","value":"B"},{"op":"put","id":"tmp","value":0},{"op":"delete","id":"tmp"}]}`)
	if v != 1 {
		t.Fatalf("first commit at version %d", v)
	}
	ch, err := s.Store.Changes(t.Context(), "c", 0, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Commits) != 1 || len(ch.Commits[0].Ops) != 4 {
		t.Fatalf("one request made commits %+v", ch.Commits)
	}
	wantOps := []string{`put a {"n":1}`, `put b "B"`, `put tmp 0`, `delete tmp `}
	for i, op := range ch.Commits[0].Ops {
		if got := string(op.Op) + " " + op.ID + " " + string(op.Value); got != wantOps[i] {
			t.Errorf("op %d = %s, want %s", i, got, wantOps[i])
		}
	}

	t.Run("if", func(t *testing.T) {
		v := commit(t, `{"ops":[{"op":"put","id":"new","value":1}],"if":{"new":0}}`)
		before := s.state("c")
		r := s.sendJSON(http.MethodPost, path, `{"ops":[{"op":"put","id":"new","value":2}],"if":{"new":0}}`)
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		if !equalState(before, s.state("c")) {
			t.Fatal("a failed if changed the store")
		}
		// Preconditions may name records the ops do not touch.
		v2 := commit(t, `{"ops":[{"op":"put","id":"x","value":1}],"if":{"new":`+strconv.FormatUint(v, 10)+`,"a":1,"absent":0}}`)
		if v2 != v+1 {
			t.Fatalf("commit at %d, want %d", v2, v+1)
		}
	})

	t.Run("all or nothing", func(t *testing.T) {
		cases := []struct {
			name   string
			body   string
			status int
			code   protocol.Code
		}{
			{"one stale precondition", `{"ops":[{"op":"put","id":"a","value":9},{"op":"put","id":"b","value":9}],"if":{"a":1,"b":2}}`, http.StatusPreconditionFailed, protocol.CodePreconditionFailed},
			{"delete of a missing record last", `{"ops":[{"op":"put","id":"a","value":9},{"op":"delete","id":"nope"}]}`, http.StatusNotFound, protocol.CodeNotFound},
			{"delete twice", `{"ops":[{"op":"delete","id":"b"},{"op":"delete","id":"b"}]}`, http.StatusNotFound, protocol.CodeNotFound},
			{"bad op last", `{"ops":[{"op":"put","id":"a","value":9},{"op":"put","id":"","value":9}]}`, http.StatusBadRequest, protocol.CodeBadRequest},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := s.state("c")
				wantError(t, s.sendJSON(http.MethodPost, path, tc.body), tc.status, tc.code)
				if !equalState(before, s.state("c")) {
					t.Fatal("a refused commit changed the store")
				}
			})
		}
	})

	t.Run("delete after put in one commit", func(t *testing.T) {
		v := commit(t, `{"ops":[{"op":"put","id":"p","value":1},{"op":"delete","id":"p"},{"op":"put","id":"q","value":[]}]}`)
		if _, err := s.Store.Get(t.Context(), "c", "p"); !errors.Is(err, viewsync.ErrNotFound) {
			t.Fatalf("p exists after put+delete: %v", err)
		}
		rec, err := s.Store.Get(t.Context(), "c", "q")
		if err != nil || rec.Version != v || string(rec.Value) != `[]` {
			t.Fatalf("q = %+v, %v", rec, err)
		}
	})
}

// equalState reports whether two states are the same, values compared as
// bytes.
func equalState(a, b storeState) bool {
	if a.Commits != b.Commits || len(a.Heads) != len(b.Heads) || len(a.Snaps) != len(b.Snaps) {
		return false
	}
	for k, h := range a.Heads {
		if b.Heads[k] != h {
			return false
		}
	}
	for k, sa := range a.Snaps {
		sb, ok := b.Snaps[k]
		if !ok {
			return false
		}
		ja, _ := json.Marshal(sa)
		jb, _ := json.Marshal(sb)
		if string(ja) != string(jb) {
			return false
		}
	}
	return true
}

// TestWritesAnswerWhatTheCallerMayRead: a caller who may write a
// collection but not read it learns, from every write endpoint, only the
// version its write made: no record value (a patch's answer would hold the
// value it merged into), and from a failed precondition neither the
// record's version nor whether it exists. A caller who may read both gets
// the full answers (the control).
func TestWritesAnswerWhatTheCallerMayRead(t *testing.T) {
	const secret = `{"secret":"hidden-5b1c"}`
	writer := auth.Principal{Subject: "wanda", Rights: auth.Rights{Write: []string{"*"}}}
	reader := auth.Principal{Subject: "rita", Rights: auth.Rights{Read: []string{"*"}, Write: []string{"*"}}}
	s := newTestServer(t, &httpapi.Options{Policy: &auth.Policy{
		Authenticate: func(r *http.Request) (auth.Principal, error) {
			if r.Header.Get("Authorization") == "Bearer reader" {
				return reader, nil
			}
			return writer, nil
		},
	}})
	// Record a of c1 is at version 13 (its collection moves on to 17);
	// c2 has no record a.
	restoreAt13(t, s, secret)
	s.put("c2", "filler", `0`)
	const hidden = "13" // what a writer must not learn

	type write struct {
		name, method, path, contentType, body string
		header                                []string
	}
	rec := func(c string) string { return "/v1/collections/" + c + "/records/a" }
	commits := func(c string) string { return "/v1/collections/" + c + "/commits" }
	send := func(who string, w write, c string) response {
		t.Helper()
		kv := append([]string{"Authorization", "Bearer " + who}, w.header...)
		var body []byte
		if w.body != "" {
			body = []byte(w.body)
			kv = append(kv, "Content-Type", w.contentType)
		}
		return s.do(w.method, strings.ReplaceAll(w.path, "{c}", c), body, kv...)
	}

	t.Run("accepted", func(t *testing.T) {
		for _, w := range []write{
			{name: "PUT", method: http.MethodPut, path: rec("{c}"), contentType: "application/json", body: `{"n":1}`},
			{name: "PUT If-Match", method: http.MethodPut, path: rec("{c}"), contentType: "application/json", body: `{"n":1}`, header: []string{"If-Match", `"13"`}},
			{name: "PUT If-Match *", method: http.MethodPut, path: rec("{c}"), contentType: "application/json", body: `{"n":1}`, header: []string{"If-Match", "*"}},
			{name: "PATCH {}", method: http.MethodPatch, path: rec("{c}"), contentType: "application/merge-patch+json", body: `{}`},
			{name: "PATCH a field", method: http.MethodPatch, path: rec("{c}"), contentType: "application/merge-patch+json", body: `{"n":2}`},
			{name: "DELETE", method: http.MethodDelete, path: rec("{c}")},
			{name: "POST commits", method: http.MethodPost, path: commits("{c}"), contentType: "application/json",
				body: `{"ops":[{"op":"put","id":"b","value":1}],"if":{"a":13}}`},
		} {
			t.Run(w.name, func(t *testing.T) {
				// Each write finds a back at version 13 with the secret.
				restoreAt13(t, s, secret)
				v := s.head("c1").Version + 1
				r := send("writer", w, "c1")
				if r.Status != http.StatusOK {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				var got map[string]json.RawMessage
				wantJSON(t, r, &got)
				if len(got) != 1 || string(got["version"]) != strconv.FormatUint(v, 10) {
					t.Errorf("a writer without read got %s, want only {\"version\":%d}", r.Body, v)
				}
				if strings.Contains(string(r.Body), "hidden") {
					t.Errorf("a writer without read got the record's value: %s", r.Body)
				}
				if et := r.Header.Get("ETag"); et != "" && et != etagOf(v) {
					t.Errorf("ETag %s, want none or the new version %s", et, etagOf(v))
				}
			})
		}
	})

	t.Run("precondition failed", func(t *testing.T) {
		for _, w := range []write{
			{name: "PUT If-Match", method: http.MethodPut, path: rec("{c}"), contentType: "application/json", body: `{"n":1}`, header: []string{"If-Match", `"7"`}},
			{name: "PATCH If-Match", method: http.MethodPatch, path: rec("{c}"), contentType: "application/merge-patch+json", body: `{}`, header: []string{"If-Match", `"7"`}},
			{name: "DELETE If-Match", method: http.MethodDelete, path: rec("{c}"), header: []string{"If-Match", `"7"`}},
			{name: "POST commits if", method: http.MethodPost, path: commits("{c}"), contentType: "application/json",
				body: `{"ops":[{"op":"put","id":"b","value":1}],"if":{"a":7}}`},
			{name: "POST commits two ifs", method: http.MethodPost, path: commits("{c}"), contentType: "application/json",
				body: `{"ops":[{"op":"put","id":"b","value":1}],"if":{"a":7,"z":0}}`},
		} {
			t.Run(w.name, func(t *testing.T) {
				before := s.state("c1", "c2")
				// The same write where a exists at 13 and where it does
				// not: the writer cannot tell them apart.
				present, absent := send("writer", w, "c1"), send("writer", w, "c2")
				for _, r := range []response{present, absent} {
					wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
					if strings.Contains(string(r.Body), hidden) || strings.Contains(string(r.Body), "hidden") {
						t.Errorf("the 412 tells a writer without read the record's version: %s", r.Body)
					}
					if et := r.Header.Get("ETag"); et != "" {
						t.Errorf("the 412 carries ETag %s", et)
					}
				}
				if !bytes.Equal(present.Body, bytes.ReplaceAll(absent.Body, []byte("c2"), []byte("c1"))) {
					t.Errorf("the 412 tells whether the record exists:\n present: %s\n absent:  %s", present.Body, absent.Body)
				}
				if after := s.state("c1", "c2"); !equalState(before, after) {
					t.Errorf("a failed precondition changed the store")
				}
				// The control: a caller who may read is told the version.
				r := send("reader", w, "c1")
				wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
				if !strings.Contains(string(r.Body), hidden) {
					t.Errorf("a reader's 412 does not tell the version: %s", r.Body)
				}
			})
		}
	})

	t.Run("create only", func(t *testing.T) {
		// If-None-Match: * tells existence by its nature, nothing more.
		r := send("writer", write{method: http.MethodPut, path: rec("{c}"), contentType: "application/json", body: `1`,
			header: []string{"If-None-Match", "*"}}, "c1")
		wantError(t, r, http.StatusPreconditionFailed, protocol.CodePreconditionFailed)
		if strings.Contains(string(r.Body), hidden) || r.Header.Get("ETag") != "" {
			t.Errorf("If-None-Match: * told a writer without read more than existence: %v %s", r.Header, r.Body)
		}
	})

	t.Run("reader", func(t *testing.T) {
		restoreAt13(t, s, secret)
		v := s.head("c1").Version + 1
		r := send("reader", write{method: http.MethodPatch, path: rec("{c}"), contentType: "application/merge-patch+json", body: `{}`}, "c1")
		wantRecordResponse(t, s, r, "c1", "a", secret, v)
	})
}

// restoreAt13 makes record a of c1 hold value at version 13, in a new
// epoch of c1 whose head is at 17.
func restoreAt13(t *testing.T, s *testServer, value string) {
	t.Helper()
	col := s.coll("c1")
	if _, err := col.Drop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 12 {
		s.put("c1", "filler", `0`)
	}
	if v := s.put("c1", "a", value); v != 13 {
		t.Fatalf("a at version %d, want 13", v)
	}
	for range 4 {
		s.put("c1", "filler", `0`)
	}
}
