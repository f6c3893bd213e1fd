package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/transport/httpapi"
)

const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheNoStore   = "no-store"
)

// changesBody decodes any of the three answers of the changes endpoint.
type changesBody struct {
	Collection string            `json:"collection"`
	Epoch      string            `json:"epoch"`
	Version    uint64            `json:"version"`
	Commits    []protocol.Commit `json:"commits"`
	Compacted  bool              `json:"compacted"`
	Reset      bool              `json:"reset"`
	Records    []protocol.Record `json:"records"`
	Deleted    []string          `json:"deleted"`
}

// changes asks for the changes of collection c with the given query and
// decodes the answer.
func (s *testServer) changes(t *testing.T, query string) (changesBody, response) {
	t.Helper()
	r := s.get("/v1/collections/c/changes?" + query)
	var b changesBody
	wantJSON(t, r, &b)
	return b, r
}

// commitVersions lists the versions of commits.
func commitVersions(cs []protocol.Commit) []uint64 {
	vs := make([]uint64, len(cs))
	for i, c := range cs {
		vs[i] = c.Version
	}
	return vs
}

// span returns the versions from..to inclusive.
func span(from, to uint64) []uint64 {
	vs := []uint64{}
	for v := from; v <= to; v++ {
		vs = append(vs, v)
	}
	return vs
}

func TestChanges(t *testing.T) {
	s := newTestServer(t, nil)
	epoch := s.head("c").Epoch

	b, r := s.changes(t, "after=0")
	if b.Epoch != epoch || b.Version != 0 || b.Commits == nil || len(b.Commits) != 0 {
		t.Fatalf("changes of an empty collection: %s", r.Body)
	}

	start := time.Now().UTC().Truncate(time.Second)
	s.put("c", "a", `{"n": 1}`)
	s.put("c", "b", `2`)
	s.del("c", "a")
	if _, err := s.coll("c").Commit(t.Context(), []protocol.Op{
		{Op: protocol.OpPut, ID: "x", Value: json.RawMessage(`"x"`)},
		{Op: protocol.OpPut, ID: "y", Value: json.RawMessage(`null`)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	s.put("c", "b", `[3]`)

	b, r = s.changes(t, "after=0&epoch="+epoch)
	if b.Epoch != epoch || b.Version != 5 || b.Compacted || b.Reset {
		t.Fatalf("changes: %s", r.Body)
	}
	if got := commitVersions(b.Commits); !slices.Equal(got, span(1, 5)) {
		t.Fatalf("commit versions %v", got)
	}
	if cc := r.Header.Get("Cache-Control"); cc != cacheNoStore {
		t.Errorf("Cache-Control %q for a page reaching the head", cc)
	}
	wantOps := [][]string{{`put a {"n":1}`}, {`put b 2`}, {`delete a `}, {`put x "x"`, `put y null`}, {`put b [3]`}}
	for i, c := range b.Commits {
		var ops []string
		for _, op := range c.Ops {
			ops = append(ops, string(op.Op)+" "+op.ID+" "+string(op.Value))
		}
		if !slices.Equal(ops, wantOps[i]) {
			t.Errorf("commit %d ops %q, want %q", c.Version, ops, wantOps[i])
		}
		if c.At.Before(start) || c.At.Location() != time.UTC {
			t.Errorf("commit %d at %v, before the test started at %v or not UTC", c.Version, c.At, start)
		}
	}

	// The commits are those of the log, as the store holds them.
	want, err := s.Store.Changes(t.Context(), "c", 0, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	served, _ := json.Marshal(b.Commits)
	logged, _ := json.Marshal(want.Commits)
	if string(served) != string(logged) {
		t.Fatalf("commits %s, store log %s", served, logged)
	}

	tests := []struct {
		query string
		want  []uint64
	}{
		{"", span(1, 5)},
		{"after=0", span(1, 5)},
		{"after=3", span(4, 5)},
		{"after=3&epoch=" + epoch, span(4, 5)},
		{"after=3&epoch=", span(4, 5)},
		{"after=5", span(1, 0)},
		{"after=0&limit=2", span(1, 2)},
		{"after=2&limit=1&epoch=" + epoch, span(3, 3)},
		{"after=4&limit=100", span(5, 5)},
		{"after=3&cachebuster=123", span(4, 5)},
		{"after=0&wait=0", span(1, 5)},
		{"after=0&wait=0s", span(1, 5)},
		{"after=4&wait=30s", span(5, 5)}, // commits to answer: no wait
	}
	for _, tt := range tests {
		b, r := s.changes(t, tt.query)
		wantVersion := uint64(5)
		if r.Header.Get("Cache-Control") == "public, max-age=31536000, immutable" {
			wantVersion = tt.want[len(tt.want)-1] // an immutable page ends at its own last commit
		}
		if got := commitVersions(b.Commits); !slices.Equal(got, tt.want) || b.Version != wantVersion || b.Epoch != epoch {
			t.Errorf("?%s: %s; want versions %v", tt.query, r.Body, tt.want)
		}
	}

	r = s.do(http.MethodHead, "/v1/collections/c/changes?after=0", nil)
	if r.Status != http.StatusOK || len(r.Body) != 0 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("HEAD: status %d, Content-Type %q, body %q", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
}

func TestChangesLongPoll(t *testing.T) {
	t.Run("released by a write", func(t *testing.T) {
		s := newTestServer(t, nil)
		s.put("c", "a", `1`)
		epoch := s.head("c").Epoch

		type result struct {
			b changesBody
			r response
		}
		done := make(chan result, 1)
		go func() {
			// The wait is far longer than the test: only the write can
			// end it in time for the assertions below.
			r := s.get("/v1/collections/c/changes?after=1&wait=60s&epoch=" + epoch)
			var b changesBody
			_ = json.Unmarshal(r.Body, &b)
			done <- result{b, r}
		}()
		waitForWaiters(t, 1)
		select {
		case res := <-done:
			t.Fatalf("long-poll answered before any write: %s", res.r.Body)
		default:
		}
		v := s.put("c", "b", `"later"`)

		var res result
		select {
		case res = <-done:
		case <-time.After(waitTimeout):
			t.Fatal("the long-poll was not released by the write")
		}
		if res.r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", res.r.Status, res.r.Body)
		}
		if got := commitVersions(res.b.Commits); !slices.Equal(got, []uint64{v}) || res.b.Version != v {
			t.Fatalf("released with %s, want commit %d", res.r.Body, v)
		}
		if op := res.b.Commits[0].Ops[0]; op.ID != "b" || string(op.Value) != `"later"` {
			t.Fatalf("released with op %+v", op)
		}
		if cc := res.r.Header.Get("Cache-Control"); cc != cacheNoStore {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
	})

	t.Run("times out empty", func(t *testing.T) {
		s := newTestServer(t, nil)
		s.put("c", "a", `1`)
		hd := s.head("c")
		const wait = 200 * time.Millisecond
		for _, q := range []string{
			"after=1&wait=200ms",
			"after=1&wait=200ms&epoch=" + hd.Epoch,
			"after=1&wait=0.2s&limit=5",
		} {
			start := time.Now()
			b, r := s.changes(t, q)
			if took := time.Since(start); took < wait {
				t.Errorf("?%s answered after %v, before its wait of %v", q, took, wait)
			}
			if b.Commits == nil || len(b.Commits) != 0 || b.Version != hd.Version || b.Epoch != hd.Epoch || b.Reset || b.Compacted {
				t.Errorf("?%s: %s, want no commits at %+v", q, r.Body, hd)
			}
			if cc := r.Header.Get("Cache-Control"); cc != cacheNoStore {
				t.Errorf("?%s: Cache-Control %q", q, cc)
			}
		}
	})

	t.Run("released by hub close", func(t *testing.T) {
		s := newTestServer(t, nil)
		s.put("c", "a", `1`)
		done := make(chan response, 1)
		go func() { done <- s.get("/v1/collections/c/changes?after=1&wait=60s") }()
		waitForWaiters(t, 1)
		s.Hub.Close()
		select {
		case r := <-done:
			var b changesBody
			wantJSON(t, r, &b)
			if b.Commits == nil || len(b.Commits) != 0 || b.Version != 1 {
				t.Fatalf("after hub close: %s", r.Body)
			}
		case <-time.After(waitTimeout):
			t.Fatal("closing the hub did not release the long-poll")
		}
	})

	t.Run("many waiters", func(t *testing.T) {
		s := newTestServer(t, nil)
		const n = 8
		done := make(chan changesBody, n)
		for range n {
			go func() {
				r := s.get("/v1/collections/c/changes?after=0&wait=60s")
				var b changesBody
				_ = json.Unmarshal(r.Body, &b)
				done <- b
			}()
		}
		waitForWaiters(t, n)
		v := s.put("c", "a", `1`)
		for range n {
			select {
			case b := <-done:
				if got := commitVersions(b.Commits); !slices.Equal(got, []uint64{v}) {
					t.Errorf("a waiter got %v, want [%d]", got, v)
				}
			case <-time.After(waitTimeout):
				t.Fatal("a waiter was not released")
			}
		}
	})
}

func TestChangesReset(t *testing.T) {
	s := newTestServer(t, nil)
	s.put("c", "b", `2`)
	s.put("c", "a", `1`)
	s.put("c", "c", `3`)
	hd := s.head("c")

	wantReset := func(t *testing.T, query string, hd protocol.Head, ids ...string) {
		t.Helper()
		b, r := s.changes(t, query)
		if !b.Reset || b.Compacted || b.Commits != nil || b.Epoch != hd.Epoch || b.Version != hd.Version || b.Records == nil {
			t.Fatalf("?%s: %s, want a reset at %+v", query, r.Body, hd)
		}
		var got []string
		for _, rec := range b.Records {
			got = append(got, rec.ID)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("?%s: reset records %q, want %q", query, got, ids)
		}
		if cc := r.Header.Get("Cache-Control"); cc != cacheNoStore {
			t.Errorf("?%s: Cache-Control %q", query, cc)
		}
	}

	wantReset(t, "after=1&epoch=otherEpoch", hd, "a", "b", "c")
	wantReset(t, "after=0&epoch=otherEpoch", hd, "a", "b", "c")
	wantReset(t, "after=3&epoch=otherEpoch&wait=30s", hd, "a", "b", "c")
	wantReset(t, "after=4", hd, "a", "b", "c")
	wantReset(t, "after=4&epoch="+hd.Epoch, hd, "a", "b", "c")
	wantReset(t, "after=18446744073709551615&wait=30s", hd, "a", "b", "c")

	// A drop starts another epoch: clients of the old one get a reset.
	nh, err := s.coll("c").Drop(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if nh.Epoch == hd.Epoch {
		t.Fatalf("drop kept the epoch %s", hd.Epoch)
	}
	wantReset(t, "after=3&epoch="+hd.Epoch, nh)
	wantReset(t, "after=0&epoch="+hd.Epoch, nh)
	v := s.put("c", "new", `1`)
	wantReset(t, "after=3&epoch="+hd.Epoch, protocol.Head{Epoch: nh.Epoch, Version: v}, "new")
	b, _ := s.changes(t, "after=0&epoch="+nh.Epoch)
	if got := commitVersions(b.Commits); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("new epoch commits %v", got)
	}
}

func TestChangesCatchUp(t *testing.T) {
	s := newTestServerWith(t, serverConfig{Store: store.Config{RetainCommits: 2}})
	s.put("c", "a", `1`) // 1
	s.put("c", "b", `1`) // 2
	s.put("c", "c", `1`) // 3
	s.del("c", "a")      // 4
	s.put("c", "b", `2`) // 5
	s.put("c", "x", `1`) // 6
	s.del("c", "x")      // 7
	s.put("c", "x", `2`) // 8
	s.put("c", "d", `1`) // 9
	s.del("c", "d")      // 10
	for i := range 3 {
		s.put("c", "e", strconv.Itoa(i)) // 11..13
	}
	hd := s.head("c")
	if _, err := s.Store.Changes(t.Context(), "c", 2, store.Page{}); err == nil {
		t.Fatalf("the log still holds commit 3 with RetainCommits 2: this test needs a trimmed log")
	}

	b, r := s.changes(t, "after=2&epoch="+hd.Epoch)
	if !b.Compacted || b.Reset || b.Commits != nil || b.Epoch != hd.Epoch || b.Version != hd.Version {
		t.Fatalf("changes after a trimmed cursor: %s, want a catch-up to %+v", r.Body, hd)
	}
	type rv struct {
		id      string
		version uint64
		value   string
	}
	var got []rv
	for _, rec := range b.Records {
		got = append(got, rv{rec.ID, rec.Version, string(rec.Value)})
	}
	wantRecs := []rv{{"c", 3, "1"}, {"b", 5, "2"}, {"x", 8, "2"}, {"e", 13, "2"}}
	if !slices.Equal(got, wantRecs) {
		t.Errorf("catch-up records %v, want %v", got, wantRecs)
	}
	deleted := slices.Clone(b.Deleted)
	slices.Sort(deleted)
	if !slices.Equal(deleted, []string{"a", "d"}) {
		t.Errorf("catch-up deleted %q, want a and d", b.Deleted)
	}
	if cc := r.Header.Get("Cache-Control"); cc != cacheNoStore {
		t.Errorf("Cache-Control %q", cc)
	}

	// The log still covers a recent cursor: plain commits.
	b, _ = s.changes(t, fmt.Sprintf("after=%d", hd.Version-1))
	if b.Compacted || !slices.Equal(commitVersions(b.Commits), []uint64{hd.Version}) {
		t.Fatalf("recent cursor got compacted=%v commits %v", b.Compacted, commitVersions(b.Commits))
	}
	// A catch-up from another epoch is a reset.
	b, _ = s.changes(t, "after=2&epoch=elsewhere")
	if !b.Reset {
		t.Fatalf("after=2 in another epoch: not a reset")
	}
}

// TestChangesHistoryGone checks that a cursor older than the tombstone
// horizon gets a reset.
func TestChangesHistoryGone(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := newTestServerWith(t, serverConfig{Store: store.Config{RetainCommits: 1, RetainTombstones: time.Hour, Now: clock}})
	s.put("c", "a", `1`) // 1
	s.put("c", "b", `1`) // 2
	s.del("c", "a")      // 3
	s.put("c", "b", `2`) // 4
	now.Add(int64(2 * time.Hour))
	s.put("c", "b", `3`) // 5: forgets the tombstone of a
	s.put("c", "c", `1`) // 6

	b, r := s.changes(t, "after=2")
	if !b.Reset || b.Version != 6 {
		t.Fatalf("cursor before a forgotten deletion: %s, want a reset", r.Body)
	}
	var ids []string
	for _, rec := range b.Records {
		ids = append(ids, rec.ID)
	}
	if !slices.Equal(ids, []string{"b", "c"}) {
		t.Fatalf("reset records %q", ids)
	}
	// After the forgotten deletion a catch-up is still possible.
	b, r = s.changes(t, "after=3")
	if !b.Compacted || b.Version != 6 {
		t.Fatalf("cursor after the forgotten deletion: %s, want a catch-up", r.Body)
	}
}

func TestChangesPages(t *testing.T) {
	s := newTestServer(t, &httpapi.Options{PageSize: 10})
	epoch := s.head("c").Epoch
	for i := range 20 {
		s.put("c", "k", strconv.Itoa(i))
	}

	type page struct {
		query string
		want  []uint64
		cache string
	}
	check := func(t *testing.T, pages []page) {
		t.Helper()
		for _, p := range pages {
			b, r := s.changes(t, p.query)
			if got := commitVersions(b.Commits); !slices.Equal(got, p.want) {
				t.Errorf("?%s: versions %v, want %v", p.query, got, p.want)
			}
			if cc := r.Header.Get("Cache-Control"); cc != p.cache {
				t.Errorf("?%s: Cache-Control %q, want %q", p.query, cc, p.cache)
			}
		}
	}

	// Head at 20: the page 11..20 reaches the head, so it is live.
	check(t, []page{
		{"after=3&epoch=" + epoch, span(4, 10), cacheImmutable},
		{"after=10&epoch=" + epoch, span(11, 20), cacheNoStore},
		{"after=0&epoch=" + epoch, span(1, 10), cacheImmutable},
	})

	for i := range 5 {
		s.put("c", "k", strconv.Itoa(100+i))
	}
	// Head at 25.
	check(t, []page{
		{"after=3&epoch=" + epoch, span(4, 10), cacheImmutable},
		{"after=10&epoch=" + epoch, span(11, 20), cacheImmutable},
		{"after=20&epoch=" + epoch, span(21, 25), cacheNoStore},
		{"after=15&epoch=" + epoch, span(16, 20), cacheImmutable},
		{"after=19&epoch=" + epoch, span(20, 20), cacheImmutable},
		{"after=25&epoch=" + epoch, span(1, 0), cacheNoStore},
		// Without its epoch a page cannot be immutable: the same URL
		// means another history after a drop.
		{"after=3", span(4, 10), cacheNoStore},
		{"after=10&epoch=", span(11, 20), cacheNoStore},
		// A smaller limit cuts the page shorter, never longer.
		{"after=3&limit=100&epoch=" + epoch, span(4, 10), cacheImmutable},
		{"after=21&limit=2&epoch=" + epoch, span(22, 23), cacheImmutable},
		{"after=21&limit=4&epoch=" + epoch, span(22, 25), cacheNoStore},
	})

	// A client walking from after=3 lands on the aligned pages.
	after := uint64(3)
	var walked []uint64
	for {
		b, _ := s.changes(t, fmt.Sprintf("after=%d&epoch=%s", after, epoch))
		if len(b.Commits) == 0 {
			break
		}
		if after%10 != 0 && after != 3 {
			t.Fatalf("walk requested an unaligned page after=%d", after)
		}
		walked = append(walked, commitVersions(b.Commits)...)
		after = b.Commits[len(b.Commits)-1].Version
	}
	if !slices.Equal(walked, span(4, 25)) {
		t.Fatalf("walk got %v", walked)
	}
}
