package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// heapAndStacks returns the bytes of live heap objects after a full
// collection, and of goroutine stacks.
func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// TestLiveCollectionsCost: many collections, each with one live stream,
// hold no goroutine each, and a live collection with its stream costs at
// most 4 KiB of live heap and stacks in all (the server's side: its
// collection, subscription, pump place and connection; the test's raw
// client side is counted too, with its read buffers dropped). With the
// collector's default headroom (GOGC=100) that is the 6 KiB of resident
// memory per live collection that 'viewsync bench collections' measures. Every stream still gets its
// collection's commit, and only that.
func TestLiveCollectionsCost(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 streams")
	}
	const n, bound = 1000, 4 << 10
	e := newEnv(t, config{})
	ctx := context.Background()
	put := func(i, v int) {
		c, err := e.hub.Collection(fmt.Sprintf("room-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "r", json.RawMessage(fmt.Sprint(v))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		put(i, 0)
	}
	// One stream opened and closed first, for what the first allocates
	// once.
	first := openRaw(t, e, "room-0")
	first.event(t)
	first.conn.Close()
	e.waitConnections(0)
	before := heapAndStacks()
	goroutines := runtime.NumGoroutine()

	streams := make([]*rawStream, n)
	for i := range streams {
		streams[i] = openRaw(t, e, fmt.Sprintf("room-%d", i))
		if kind := streams[i].event(t); kind != "reset" {
			t.Fatalf("stream %d: first event %q, want reset", i, kind)
		}
	}
	e.waitConnections(n)
	// Let the handler goroutines finish returning, their stacks and
	// buffers not counted: all but a few, within 20 s on a busy machine.
	var extra int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if extra = runtime.NumGoroutine() - goroutines; extra < 10 {
			break
		}
	}
	if extra >= n/10 {
		t.Fatalf("%d more goroutines with %d live collections: collections hold goroutines", extra, n)
	}
	for _, s := range streams {
		s.r = nil // the test's buffers are not the server's cost
	}
	after := heapAndStacks()
	for range 3 { // the least of a few: what is still returning goes
		time.Sleep(20 * time.Millisecond)
		after = min(after, heapAndStacks())
	}
	per := (int64(after) - int64(before)) / n
	t.Logf("%d live collections: %d more goroutines; heap and stacks %d → %d bytes, %d each", n, extra, before, after, per)
	if per > bound {
		t.Errorf("%d bytes of heap and stacks per live collection, want at most %d", per, bound)
	}

	for _, i := range []int{0, n / 2, n - 1} {
		put(i, 1)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		s := streams[i]
		s.r = bufio.NewReader(s.conn)
		if kind := s.event(t); kind != "commit" {
			t.Fatalf("stream of room-%d: event %q after its commit, want commit", i, kind)
		}
	}
	for _, s := range streams {
		s.conn.Close()
	}
	e.waitConnections(0)
}
