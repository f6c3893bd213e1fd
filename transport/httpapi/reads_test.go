package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestSnapshot(t *testing.T) {
	s := newTestServer(t, nil)

	r := s.get("/v1/collections/c")
	var empty protocol.Snapshot
	wantJSON(t, r, &empty)
	hd := s.head("c")
	if hd.Epoch == "" || hd.Version != 0 {
		t.Fatalf("head of a new collection = %+v", hd)
	}
	if empty.Collection != "c" || empty.Epoch != hd.Epoch || empty.Version != 0 || empty.Reset || empty.Records == nil || len(empty.Records) != 0 {
		t.Fatalf("empty snapshot = %s", r.Body)
	}
	if got, want := r.Header.Get("ETag"), fmt.Sprintf(`"%s:0"`, hd.Epoch); got != want {
		t.Fatalf("ETag %s, want %s", got, want)
	}

	s.put("c", "b", `{"n": 2}`)
	s.put("c", "a", `[1, 2]`)
	s.put("c", "b", `"two"`)
	hd = s.head("c")
	etag := fmt.Sprintf(`"%s:%d"`, hd.Epoch, hd.Version)

	r = s.get("/v1/collections/c")
	var snap protocol.Snapshot
	wantJSON(t, r, &snap)
	if got := r.Header.Get("ETag"); got != etag {
		t.Fatalf("ETag %s, want %s", got, etag)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	want := []protocol.Record{
		{ID: "a", Value: json.RawMessage(`[1,2]`), Version: 2},
		{ID: "b", Value: json.RawMessage(`"two"`), Version: 3},
	}
	if snap.Collection != "c" || snap.Epoch != hd.Epoch || snap.Version != 3 || len(snap.Records) != len(want) {
		t.Fatalf("snapshot = %s", r.Body)
	}
	for i, rec := range snap.Records {
		if rec.ID != want[i].ID || string(rec.Value) != string(want[i].Value) || rec.Version != want[i].Version {
			t.Errorf("record %d = %+v (value %s), want %+v (value %s)", i, rec, rec.Value, want[i], want[i].Value)
		}
	}

	t.Run("conditional", func(t *testing.T) {
		tests := []struct {
			ifNoneMatch string
			want        int
		}{
			{etag, http.StatusNotModified},
			{"W/" + etag, http.StatusNotModified},
			{`"other", ` + etag, http.StatusNotModified},
			{"*", http.StatusNotModified},
			{fmt.Sprintf(`"%s:%d"`, hd.Epoch, hd.Version-1), http.StatusOK},
			{fmt.Sprintf(`"x%s:%d"`, hd.Epoch, hd.Version), http.StatusOK},
			{fmt.Sprintf(`%s:%d`, hd.Epoch, hd.Version), http.StatusOK}, // unquoted: not an entity tag
		}
		for _, tt := range tests {
			r := s.get("/v1/collections/c", "If-None-Match", tt.ifNoneMatch)
			if r.Status != tt.want {
				t.Errorf("If-None-Match %s: status %d, want %d", tt.ifNoneMatch, r.Status, tt.want)
				continue
			}
			if got := r.Header.Get("ETag"); got != etag {
				t.Errorf("If-None-Match %s: ETag %s, want %s", tt.ifNoneMatch, got, etag)
			}
			if tt.want == http.StatusNotModified && len(r.Body) != 0 {
				t.Errorf("304 with a body: %q", r.Body)
			}
		}
	})

	t.Run("stale after a write", func(t *testing.T) {
		v := s.put("c", "z", `1`)
		r := s.get("/v1/collections/c", "If-None-Match", etag)
		var snap protocol.Snapshot
		wantJSON(t, r, &snap)
		if snap.Version != v {
			t.Fatalf("version %d, want %d", snap.Version, v)
		}
		if got, want := r.Header.Get("ETag"), fmt.Sprintf(`"%s:%d"`, hd.Epoch, v); got != want {
			t.Fatalf("ETag %s, want %s", got, want)
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		hd := s.head("c")
		r := s.do(http.MethodHead, "/v1/collections/c", nil)
		if r.Status != http.StatusOK || len(r.Body) != 0 {
			t.Fatalf("HEAD: status %d, body %q", r.Status, r.Body)
		}
		if got, want := r.Header.Get("ETag"), fmt.Sprintf(`"%s:%d"`, hd.Epoch, hd.Version); got != want {
			t.Fatalf("HEAD: ETag %s, want %s", got, want)
		}
	})
}

func TestVersion(t *testing.T) {
	s := newTestServer(t, nil)

	check := func(t *testing.T, r response) protocol.Head {
		t.Helper()
		var v protocol.Head
		wantJSON(t, r, &v)
		hd := s.head("c")
		if v != hd {
			t.Fatalf("version body %s, store head %+v", r.Body, hd)
		}
		if want := fmt.Sprintf(`{"epoch":%q,"version":%d}`, hd.Epoch, hd.Version); string(r.Body) != want {
			t.Errorf("body %s, want %s", r.Body, want)
		}
		if got, want := r.Header.Get("ETag"), fmt.Sprintf(`"%s:%d"`, hd.Epoch, hd.Version); got != want {
			t.Errorf("ETag %s, want %s", got, want)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("Cache-Control %q, want no-cache", cc)
		}
		return v
	}

	v0 := check(t, s.get("/v1/collections/c/version"))
	if v0.Version != 0 {
		t.Fatalf("new collection at version %d", v0.Version)
	}
	s.put("c", "a", `1`)
	s.put("c", "b", `2`)
	v2 := check(t, s.get("/v1/collections/c/version"))
	if v2.Version != 2 || v2.Epoch != v0.Epoch {
		t.Fatalf("after two writes: %+v", v2)
	}

	etag := fmt.Sprintf(`"%s:%d"`, v2.Epoch, v2.Version)
	r := s.get("/v1/collections/c/version", "If-None-Match", etag)
	if r.Status != http.StatusNotModified || len(r.Body) != 0 || r.Header.Get("ETag") != etag {
		t.Fatalf("If-None-Match current: status %d, ETag %s, body %q", r.Status, r.Header.Get("ETag"), r.Body)
	}
	old := fmt.Sprintf(`"%s:%d"`, v0.Epoch, v0.Version)
	check(t, s.get("/v1/collections/c/version", "If-None-Match", old))

	// Another collection has its own version.
	if r := versionOf(t, s, "other"); r.Version != 0 {
		t.Fatalf("other collection at %d", r.Version)
	}

	r = s.do(http.MethodHead, "/v1/collections/c/version", nil)
	if r.Status != http.StatusOK || len(r.Body) != 0 || r.Header.Get("ETag") != etag {
		t.Fatalf("HEAD: status %d, ETag %s, body %q", r.Status, r.Header.Get("ETag"), r.Body)
	}

	// A drop starts a new epoch; the old entity tag no longer matches.
	if _, err := s.coll("c").Drop(t.Context()); err != nil {
		t.Fatal(err)
	}
	v := check(t, s.get("/v1/collections/c/version", "If-None-Match", etag))
	if v.Epoch == v0.Epoch || v.Version != 0 {
		t.Fatalf("after drop: %+v (old epoch %s)", v, v0.Epoch)
	}
}

// versionOf reads a collection's version endpoint and checks it against
// the store's head.
func versionOf(t *testing.T, s *testServer, coll string) protocol.Head {
	t.Helper()
	var v protocol.Head
	wantJSON(t, s.get("/v1/collections/"+coll+"/version"), &v)
	if hd := s.head(coll); v != hd {
		t.Fatalf("version of %s = %+v, store head %+v", coll, v, hd)
	}
	return v
}

func TestGetRecord(t *testing.T) {
	s := newTestServer(t, nil)
	s.put("c", "other", `0`)
	v := s.put("c", "a", `{"x": [1, 2.50]}`)
	etag := `"` + strconv.FormatUint(v, 10) + `"`

	r := s.get("/v1/collections/c/records/a")
	var rec protocol.Record
	wantJSON(t, r, &rec)
	if rec.ID != "a" || string(rec.Value) != `{"x":[1,2.50]}` || rec.Version != v {
		t.Fatalf("record = %s", r.Body)
	}
	if got := r.Header.Get("ETag"); got != etag {
		t.Fatalf("ETag %s, want %s", got, etag)
	}

	r = s.get("/v1/collections/c/records/a", "If-None-Match", etag)
	if r.Status != http.StatusNotModified || len(r.Body) != 0 || r.Header.Get("ETag") != etag {
		t.Fatalf("If-None-Match current: status %d, ETag %s, body %q", r.Status, r.Header.Get("ETag"), r.Body)
	}
	r = s.get("/v1/collections/c/records/a", "If-None-Match", `"1"`)
	wantJSON(t, r, &rec)

	r = s.do(http.MethodHead, "/v1/collections/c/records/a", nil)
	if r.Status != http.StatusOK || len(r.Body) != 0 || r.Header.Get("ETag") != etag {
		t.Fatalf("HEAD: status %d, ETag %s, body %q", r.Status, r.Header.Get("ETag"), r.Body)
	}

	wantError(t, s.get("/v1/collections/c/records/missing"), http.StatusNotFound, protocol.CodeNotFound)
	wantError(t, s.get("/v1/collections/never/records/a"), http.StatusNotFound, protocol.CodeNotFound)
	s.del("c", "a")
	wantError(t, s.get("/v1/collections/c/records/a"), http.StatusNotFound, protocol.CodeNotFound)
}
