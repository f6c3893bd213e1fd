package natskv_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestMemoryBound: a node serving a collection much larger than its record
// cache holds far less than the collection: each record's id and version,
// the values of the records written last up to Options.RecordCache, the
// log's newest commits up to Options.LogCache; and it still answers a
// snapshot, a catch-up and a Get with every value, read from the stream.
// Once closed, it holds none of it. (The server runs in a process of its
// own, so that the heap measured is the store's alone.)
func TestMemoryBound(t *testing.T) {
	ctx := t.Context()
	url := startChildServer(t)
	const (
		records   = 8000
		size      = 4 << 10
		perCommit = 500
		cache     = 1 << 20
		name      = "large"
	)
	value := func(i int) []byte {
		return fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), size))
	}
	w := openStore(t, url, natskv.Options{})
	var ops []protocol.Op
	for i := range records {
		ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprintf("product-%05d", i), Value: value(i)})
		if len(ops) == perCommit {
			if _, err := w.Apply(ctx, name, ops, nil); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data := records * size

	before := settledHeap()
	r := openStore(t, url, natskv.Options{RecordCache: cache, IdleAfter: -1})
	snap, err := r.Snapshot(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Records) != records {
		t.Fatalf("snapshot of %d records, want %d", len(snap.Records), records)
	}
	for i, rec := range snap.Records {
		if !bytes.Equal(rec.Value, value(i)) {
			t.Fatalf("snapshot record %d: %s %.30q", i, rec.ID, rec.Value)
		}
	}
	snap = protocol.Snapshot{}
	held := int64(heapFloor()) - int64(before)
	t.Logf("%d records, %d MiB of values: the open collection holds %.1f MiB (%.0f B a record)", records, data>>20, float64(held)/(1<<20), float64(held)/records)
	if held <= 0 || held > int64(data/4) {
		t.Fatalf("the open collection holds %d bytes of the collection's %d: more than a quarter", held, data)
	}

	cu, err := r.CatchUp(ctx, name, 0)
	if err != nil || len(cu.Records) != records {
		t.Fatalf("CatchUp(0) = %d records, %v", len(cu.Records), err)
	}
	got, err := r.Get(ctx, name, "product-00007")
	if err != nil || !bytes.Equal(got.Value, value(7)) {
		t.Fatalf("Get = %.30q, %v", got.Value, err)
	}
	if r.RecordReads() < records {
		t.Fatalf("%d values read from the stream, want the %d beyond the cache at least", r.RecordReads(), records)
	}

	// Closed, the store lets its collections go, though still referenced.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// Its goroutines end a moment after Close (longer on a busy
	// machine): the memory must go within 10 s, a hang guard.
	left := int64(heapFloor()) - int64(before)
	for deadline := time.Now().Add(10 * time.Second); left > held/2 && time.Now().Before(deadline); {
		left = int64(heapFloor()) - int64(before)
	}
	t.Logf("closed, the store holds %.1f MiB", float64(left)/(1<<20))
	if left > held/2 {
		t.Fatalf("closed, the store still holds %d bytes of the %d it held open", left, held)
	}
	runtime.KeepAlive(r)
}

// settledHeap returns the heap in use once it no longer shrinks (by 1 MiB
// from one heapFloor to the next), within 10 s: the goroutines of a store
// just closed may hold on to its memory for a while on a busy machine.
func settledHeap() uint64 {
	prev := heapFloor()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		cur := heapFloor()
		if cur+1<<20 >= prev {
			return min(cur, prev)
		}
		prev = cur
	}
	return prev
}

// heapFloor returns the least heap in use over a quarter of a second: a
// store just closed may have goroutines that still hold on to its memory
// for a moment.
func heapFloor() uint64 {
	least := heapInUse()
	for range 5 {
		time.Sleep(50 * time.Millisecond)
		least = min(least, heapInUse())
	}
	return least
}
