package natskv_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestMemoryBound: a node serving a collection much larger than its
// caches holds far less than the collection: the values of the records
// written last up to Options.RecordCache, the ids and versions of those
// written last up to Options.RecordIndex, the log's newest commits up to
// Options.LogCache; and it still answers a snapshot, a catch-up and a Get
// with every record, read from the stream. With large values the values
// are what it sheds; with many small records, the index too, so that what
// it holds is bounded whatever the collection's size. Once closed, it
// holds none of it.
//
// The heap measured must be the store's alone: the test measures in a
// process of its own (the test binary run again for this test only), and
// the server runs in another. Run among the package's other tests, the
// goroutines those left winding down once added 3.4 MiB to a figure of
// 0.5 MiB.
func TestMemoryBound(t *testing.T) {
	if os.Getenv(measureEnv) == "" {
		measureAlone(t)
		return
	}
	for _, tc := range []struct {
		name             string
		records, size    int
		cache, index     int
		bound            func(data int) int64
		scanned, fetched bool
	}{
		// The values shed: a quarter of the data at most.
		{name: "large values", records: 8000, size: 4 << 10, cache: 1 << 20,
			bound: func(data int) int64 { return int64(data / 4) }, fetched: true},
		// The index shed too: 2 MiB, where the index of every record
		// alone would take some 5 MiB.
		{name: "many records", records: 50000, size: 100, cache: 64 << 10, index: 1000,
			bound: func(int) int64 { return 2 << 20 }, scanned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testMemoryBound(t, tc.records, tc.size, tc.cache, tc.index, tc.bound, tc.scanned, tc.fetched)
		})
	}
}

// measureEnv, set, makes TestMemoryBound measure in this process: the
// process runs it alone.
const measureEnv = "VIEWSYNC_TEST_MEASURE"

// measureAlone runs t's test in a process of its own, in the layout under
// test, and fails if it fails there; it logs what it logged there.
func measureAlone(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), measureEnv+"=1", "VIEWSYNC_TEST_NATS_LAYOUT="+natskv.LayoutUnderTest())
	out, err := cmd.CombinedOutput()
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "_test.go:") || strings.Contains(line, "--- FAIL") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if err != nil {
		t.Fatalf("the measuring process: %v", err)
	}
}

func testMemoryBound(t *testing.T, records, size, cache, index int, bound func(data int) int64, scanned, fetched bool) {
	ctx := t.Context()
	url := startChildServer(t)
	const (
		perCommit = 500
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
	r := openStore(t, url, natskv.Options{RecordCache: cache, RecordIndex: index, IdleAfter: -1})
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
	open := heapFloor()
	cu, err := r.CatchUp(ctx, name, 0)
	if err != nil || len(cu.Records) != records {
		t.Fatalf("CatchUp(0) = %d records, %v", len(cu.Records), err)
	}
	got, err := r.Get(ctx, name, "product-00007")
	if err != nil || !bytes.Equal(got.Value, value(7)) {
		t.Fatalf("Get = %.30q, %v", got.Value, err)
	}
	if fetched && r.RecordReads() < uint64(records) {
		t.Fatalf("%d values read from the stream, want the %d beyond the cache at least", r.RecordReads(), records)
	}
	if scanned && r.RecordsScanned() < uint64(records) {
		t.Fatalf("%d records scanned from the stream, want the %d at least", r.RecordsScanned(), records)
	}
	// Closed, the store lets its collections go, though still referenced.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// Its goroutines end a moment after Close (longer on a busy
	// machine): the memory must go within 10 s, a hang guard. The
	// baseline is the lower of the heap before the store opened and
	// after it closed: on a busy machine the writer's memory may still
	// be going when the first is measured.
	after := settledHeap()
	base := min(before, after)
	held := int64(open) - int64(base)
	t.Logf("%d records, %.1f MiB of values: the open collection holds %.2f MiB (%.0f B a record)", records, float64(data)/(1<<20), float64(held)/(1<<20), float64(held)/float64(records))
	if held <= 0 || held > bound(data) {
		t.Fatalf("the open collection holds %d bytes, bound %d (the collection's values: %d)", held, bound(data), data)
	}
	left := int64(after) - int64(base)
	for deadline := time.Now().Add(10 * time.Second); left > held/2 && time.Now().Before(deadline); {
		left = int64(heapFloor()) - int64(base)
	}
	t.Logf("closed, the store holds %.2f MiB", float64(left)/(1<<20))
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
