package sse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/transport/sse"
)

func TestHeadersAndRetryComeAtOnce(t *testing.T) {
	e := newEnv(t, config{})
	e.put("a", 1)
	hd := e.head()
	// A cursor at the head: nothing to send but the headers and the
	// retry hint, which must still arrive at once (get bounds the wait
	// for the headers; the default ping is 15s away).
	cl := e.newClient("items", fmt.Sprintf("after=%d&epoch=%s", hd.Version, hd.Epoch), nil)
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := cl.resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if first := cl.next(); first.Retry != strconv.Itoa(int(sse.DefaultRetry.Milliseconds())) || first.Event != "" {
		t.Fatalf("first item %+v, want the retry hint", first)
	}
	if e.h.Connections() != 1 {
		t.Fatalf("Connections() = %d, want 1", e.h.Connections())
	}
}

func TestResetFirstWithoutCursor(t *testing.T) {
	e := newEnv(t, config{SSE: sse.Options{Retry: 1500 * time.Millisecond}})
	e.put("a", 1)
	e.put("b", 2)
	hd := e.head()
	cl := e.newClient("items", "", nil)
	if first := cl.next(); first.Retry != "1500" {
		t.Fatalf("first item %+v, want retry: 1500", first)
	}
	ev := cl.nextEvent()
	if ev.Event != "reset" || ev.ID != hd.Cursor().String() || ev.DataLines != 1 {
		t.Fatalf("first event %+v, want reset with id %s", ev, hd.Cursor())
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal([]byte(ev.Data), &body); err != nil {
		t.Fatalf("reset data: %v", err)
	}
	want := map[string]string{
		"collection": `"items"`,
		"epoch":      `"` + hd.Epoch + `"`,
		"version":    "2",
		"reset":      "true",
		"records":    `[{"id":"a","value":{"n":1},"version":1},{"id":"b","value":{"n":2},"version":2}]`,
	}
	for k, v := range want {
		if string(body[k]) != v {
			t.Errorf("reset %s = %s, want %s", k, body[k], v)
		}
	}
	if len(body) != len(want) {
		t.Errorf("reset has fields %v, want exactly %v", slices.Sorted(maps.Keys(body)), slices.Sorted(maps.Keys(want)))
	}
	e.put("c", 3)
	cl.expectCommits(hd.Epoch, 3, 3)
}

func TestEmptyCollectionResetsToEmptyRecords(t *testing.T) {
	e := newEnv(t, config{})
	cl := e.newClient("empty", "", nil)
	ev := cl.nextEvent()
	var s struct {
		Records json.RawMessage `json:"records"`
		Version uint64          `json:"version"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || ev.Event != "reset" || string(s.Records) != "[]" || s.Version != 0 {
		t.Fatalf("event %+v (%v), want a reset at 0 with records []", ev, err)
	}
}

// TestCommitsInOrder has concurrent writers, whose commits reach the hub
// in any order, and checks the stream carries each once, in version order,
// with its cursor as id, and ends in the store's state.
func TestCommitsInOrder(t *testing.T) {
	e := newEnv(t, config{})
	cl := e.follow("items", "", nil, nil)
	cl.waitStarted()
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i%7)
				if _, err := e.coll.Put(context.Background(), id, json.RawMessage(strconv.Itoa(i))); err != nil {
					t.Errorf("put: %v", err)
					return
				}
				if i%5 == 4 {
					if _, err := e.coll.Delete(context.Background(), id); err != nil {
						t.Errorf("delete: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	hd := e.head()
	cl.waitVersion(hd.Version)
	got := cl.state()
	_, want := e.snapshot()
	if !maps.Equal(got.records, want) {
		t.Fatalf("client state %v, store %v", got.records, want)
	}
	if got.resets != 1 || got.catchups != 0 || uint64(got.commits) != hd.Version {
		t.Fatalf("got %d resets, %d catch-ups, %d commits; want 1, 0, %d", got.resets, got.catchups, got.commits, hd.Version)
	}
}

// TestResume resumes from a cursor given each way the contract allows:
// exactly the commits after it come, then live ones.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query func(epoch string) string
		hdr   func(epoch string) http.Header
	}{
		{"Last-Event-ID", nil, func(ep string) http.Header { return http.Header{"Last-Event-ID": {ep + ":7"}} }},
		{"Last-Event-ID without epoch", nil, func(string) http.Header { return http.Header{"Last-Event-ID": {":7"}} }},
		{"after and epoch", func(ep string) string { return "after=7&epoch=" + ep }, nil},
		{"after alone", func(string) string { return "after=7" }, nil},
		{"after and empty epoch", func(string) string { return "after=7&epoch=" }, nil},
		{"Last-Event-ID overrides the query",
			func(ep string) string { return "after=15&epoch=" + ep },
			func(ep string) http.Header { return http.Header{"Last-Event-ID": {ep + ":7"}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, config{})
			for i := range 20 {
				e.put(fmt.Sprintf("r%d", i%6), i)
			}
			ep := e.head().Epoch
			var q string
			var hdr http.Header
			if tc.query != nil {
				q = tc.query(ep)
			}
			if tc.hdr != nil {
				hdr = tc.hdr(ep)
			}
			cl := e.newClient("items", q, hdr)
			cl.expectCommits(ep, 8, 20)
			for i := range 5 {
				e.put("live", i)
			}
			cl.expectCommits(ep, 21, 25)
		})
	}
}

// TestResumeWhileWriting connects at a cursor while a writer commits: the
// backlog read from the store and the live commits join without a gap or a
// duplicate.
func TestResumeWhileWriting(t *testing.T) {
	e := newEnv(t, config{})
	for i := range 50 {
		e.put(fmt.Sprintf("r%d", i%9), i)
	}
	pre, state := e.snapshot()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if _, err := e.coll.Put(context.Background(), fmt.Sprintf("r%d", i%13), json.RawMessage(strconv.Itoa(i))); err != nil {
				t.Errorf("put: %v", err)
				return
			}
		}
	}()
	cursor := protocol.Cursor{Epoch: pre.Epoch, Version: pre.Version}
	cl := e.follow("items", "", http.Header{"Last-Event-ID": {cursor.String()}}, at(pre.Epoch, pre.Version, state))
	<-done
	hd := e.head()
	cl.waitVersion(hd.Version)
	got := cl.state()
	_, want := e.snapshot()
	if !maps.Equal(got.records, want) || got.resets != 0 || got.catchups != 0 {
		t.Fatalf("after %d commits, %d resets, %d catch-ups: state %v, store %v", got.commits, got.resets, got.catchups, got.records, want)
	}
}

func TestOtherEpochResets(t *testing.T) {
	e := newEnv(t, config{})
	for i := range 5 {
		e.put("a", i)
	}
	old := e.head()
	if _, err := e.coll.Drop(context.Background()); err != nil {
		t.Fatalf("drop: %v", err)
	}
	e.put("b", 1)
	e.put("c", 2)
	hd := e.head()
	if hd.Epoch == old.Epoch {
		t.Fatalf("drop kept epoch %q", hd.Epoch)
	}
	cl := e.newClient("items", "", http.Header{"Last-Event-ID": {old.Cursor().String()}})
	ev := cl.nextEvent()
	var s protocol.Snapshot
	if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || ev.Event != "reset" || ev.ID != hd.Cursor().String() || len(s.Records) != 2 {
		t.Fatalf("event %+v, want a reset at %s with 2 records", ev, hd.Cursor())
	}
	e.put("d", 3)
	cl.expectCommits(hd.Epoch, 3, 3)
}

// TestDropWhileConnected: a stream whose collection is dropped gets a
// reset to the new epoch, then its commits.
func TestDropWhileConnected(t *testing.T) {
	e := newEnv(t, config{})
	e.put("a", 1)
	old := e.head()
	cl := e.newClient("items", "after=1&epoch="+old.Epoch, nil)
	cl.next() // retry hint: the stream is up
	hd, err := e.coll.Drop(context.Background())
	if err != nil {
		t.Fatalf("drop: %v", err)
	}
	ev := cl.nextEvent()
	if ev.Event != "reset" || ev.ID != hd.Cursor().String() {
		t.Fatalf("event %+v, want a reset at %s", ev, hd.Cursor())
	}
	e.put("b", 2)
	cl.expectCommits(hd.Epoch, 1, 1)
}

func TestCursorAheadResets(t *testing.T) {
	for _, cursor := range []string{"after=1000&epoch=EPOCH", "after=4", "LEI EPOCH:99"} {
		t.Run(cursor, func(t *testing.T) {
			e := newEnv(t, config{})
			for i := range 3 {
				e.put("a", i)
			}
			hd := e.head()
			q, hdr := "", http.Header(nil)
			if rest, ok := strings.CutPrefix(cursor, "LEI "); ok {
				hdr = http.Header{"Last-Event-ID": {strings.ReplaceAll(rest, "EPOCH", hd.Epoch)}}
			} else {
				q = strings.ReplaceAll(cursor, "EPOCH", hd.Epoch)
			}
			cl := e.newClient("items", q, hdr)
			ev := cl.nextEvent()
			if ev.Event != "reset" || ev.ID != hd.Cursor().String() {
				t.Fatalf("event %+v, want a reset at %s", ev, hd.Cursor())
			}
			e.put("b", 9)
			cl.expectCommits(hd.Epoch, 4, 4)
		})
	}
}

// TestTrimmedLogCatchUp: a cursor older than the retained log gets one
// catch-up (the records changed and ids deleted since), then live commits.
func TestTrimmedLogCatchUp(t *testing.T) {
	e := newEnv(t, config{Store: store.Config{RetainCommits: 5}})
	e.put("r0", 0) // version 1: the client's state
	at1 := map[string]string{"r0": `{"n":0}`}
	for i := 1; i < 60; i++ {
		e.put(fmt.Sprintf("r%d", i%10), i)
	}
	if _, err := e.coll.Delete(context.Background(), "r3"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	hd := e.head()
	cl := e.newClient("items", "after=1&epoch="+hd.Epoch, nil)
	ev := cl.nextEvent()
	if ev.Event != "catchup" || ev.ID != hd.Cursor().String() {
		t.Fatalf("event %+v, want a catch-up at %s", ev, hd.Cursor())
	}
	v := at(hd.Epoch, 1, at1)
	if err := v.apply(ev); err != nil {
		t.Fatal(err)
	}
	var cu protocol.CatchUp
	if err := json.Unmarshal([]byte(ev.Data), &cu); err != nil {
		t.Fatal(err)
	}
	if cu.Collection != "items" || len(cu.Deleted) != 1 || cu.Deleted[0] != "r3" {
		t.Fatalf("catch-up %+v: want collection items, deleted [r3]", cu)
	}
	if _, want := e.snapshot(); !maps.Equal(v.records, want) {
		t.Fatalf("state after catch-up %v, store %v", v.records, want)
	}
	e.put("live", 1)
	cl.expectCommits(hd.Epoch, hd.Version+1, hd.Version+1)
}

func TestPingWhenIdle(t *testing.T) {
	e := newEnv(t, config{SSE: sse.Options{PingInterval: 50 * time.Millisecond}})
	cl := e.newClient("items", "after=0", nil)
	cl.next() // the retry hint
	for range 3 {
		if ev := cl.next(); !ev.IsComment || ev.Comment != "ping" {
			t.Fatalf("got %+v, want a ping comment", ev)
		}
	}
	// A commit still comes through between pings.
	e.put("a", 1)
	cl.expectCommits(e.head().Epoch, 1, 1)
}

func TestHubCloseEndsStreams(t *testing.T) {
	e := newEnv(t, config{})
	a := e.newClient("items", "", nil)
	b := e.newClient("other", "after=0", nil)
	a.nextEvent() // the reset
	b.next()      // the retry hint
	e.waitConnections(2)
	e.hub.Close()
	a.expectEnd()
	b.expectEnd()
	e.waitConnections(0)
	resp := e.get("items", "", nil)
	defer resp.Body.Close()
	wantError(t, resp, http.StatusServiceUnavailable, protocol.CodeUnavailable)
}

func TestConnectionsCounts(t *testing.T) {
	e := newEnv(t, config{})
	if n := e.h.Connections(); n != 0 {
		t.Fatalf("Connections() = %d before any stream", n)
	}
	var cls []*client
	for i := range 3 {
		cls = append(cls, e.newClient("items", "", nil))
		e.waitConnections(i + 1)
	}
	for i, cl := range cls {
		cl.close()
		e.waitConnections(len(cls) - i - 1)
	}
}

// TestHTTP2 streams over HTTP/2, where write deadlines and flushes go
// through the HTTP/2 server's own ResponseWriter.
func TestHTTP2(t *testing.T) {
	e := newEnv(t, config{HTTP2: true, SSE: sse.Options{PingInterval: 50 * time.Millisecond}})
	e.put("a", 1)
	cl := e.newClient("items", "", nil)
	if cl.resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", cl.resp.Proto)
	}
	hd := e.head()
	if ev := cl.nextEvent(); ev.Event != "reset" || ev.ID != hd.Cursor().String() {
		t.Fatalf("event %+v, want a reset at %s", ev, hd.Cursor())
	}
	if ev := cl.next(); !ev.IsComment || ev.Comment != "ping" {
		t.Fatalf("got %+v, want a ping", ev)
	}
	e.put("b", 2)
	cl.expectCommits(hd.Epoch, 2, 2)
	resumed := e.newClient("items", "", http.Header{"Last-Event-ID": {hd.Cursor().String()}})
	resumed.expectCommits(hd.Epoch, 2, 2)
	e.hub.Close()
	cl.expectEnd()
	resumed.expectEnd()
	e.waitConnections(0)
}

// TestHTTP1OverTLS streams over HTTP/1.1 on TLS: the connection is
// hijacked, but a TLS connection takes no non-blocking writes, so the
// stream is served by its own goroutine on the raw connection.
func TestHTTP1OverTLS(t *testing.T) {
	e := newEnv(t, config{TLS: true, SSE: sse.Options{PingInterval: 50 * time.Millisecond}})
	e.put("a", 1)
	cl := e.newClient("items", "", nil)
	if cl.resp.ProtoMajor != 1 || cl.resp.TLS == nil {
		t.Fatalf("served over %s (TLS %v), want HTTP/1.1 on TLS", cl.resp.Proto, cl.resp.TLS != nil)
	}
	hd := e.head()
	if ev := cl.nextEvent(); ev.Event != "reset" || ev.ID != hd.Cursor().String() {
		t.Fatalf("event %+v, want a reset at %s", ev, hd.Cursor())
	}
	if ev := cl.next(); !ev.IsComment || ev.Comment != "ping" {
		t.Fatalf("got %+v, want a ping", ev)
	}
	e.put("b", 2)
	cl.expectCommits(hd.Epoch, 2, 2)
	e.hub.Close()
	cl.expectEnd()
	e.waitConnections(0)
}

// TestServerReadTimeoutDoesNotEndStreams: http.Server.ReadTimeout bounds
// reading the request, not the stream that answers it, as the package
// documentation promises.
func TestServerReadTimeoutDoesNotEndStreams(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("HTTP2=%v", h2), func(t *testing.T) {
			// Long enough for a TLS handshake on a loaded machine (the
			// server bounds it by ReadTimeout too).
			const readTimeout = time.Second
			const ping = 250 * time.Millisecond
			e := newEnv(t, config{ReadTimeout: readTimeout, HTTP2: h2, SSE: sse.Options{PingInterval: ping}})
			cl := e.newClient("items", "after=0", nil)
			cl.next() // the retry hint
			// Pings for at least two read timeouts, then a commit.
			for range 2 * readTimeout / ping {
				if ev := cl.next(); !ev.IsComment || ev.Comment != "ping" {
					t.Fatalf("got %+v, want a ping", ev)
				}
			}
			e.put("a", 1)
			cl.expectCommits(e.head().Epoch, 1, 1)
		})
	}
}
