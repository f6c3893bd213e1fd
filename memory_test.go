package viewsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/viewsync/viewsync"
	vsmetrics "github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/store/boltstore"
)

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestIdleCollectionsMemory: a written collection that nobody follows
// costs the hub (its change-log cache, the visibility tracker, the
// Prometheus adapter) at most 2 KiB of heap, measured over 10,000
// one-record collections with the runtime's own accounting.
func TestIdleCollectionsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10,000 collections")
	}
	const n, bound = 10000, 2048
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st, viewsync.WithMetrics(vsmetrics.New()))
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	ctx := context.Background()
	value := json.RawMessage(`{"title":"a room of its own","members":3}`)
	write := func(from, to int) {
		for i := from; i < to; i++ {
			c, err := hub.Collection(fmt.Sprintf("room-%05d", i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Put(ctx, "r", value); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 100) // what the first collections allocate once
	before := liveHeap()
	write(100, 100+n)
	after := liveHeap()
	runtime.KeepAlive(hub)
	per := (int64(after) - int64(before)) / n
	t.Logf("%d written collections: live heap %d → %d bytes, %d bytes each", n, before, after, per)
	if per > bound {
		t.Fatalf("%d bytes of heap per idle written collection, want at most %d", per, bound)
	}
}
