package natskv_test

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/natskv"
)

// BenchmarkColdOpen measures what a node that has never opened a large
// collection pays for its first snapshot: the collection (N records of
// about 100 bytes, written in commits of 1,000) is written by one store,
// then each iteration opens a fresh store on the same server and reads a
// snapshot. It reports the time to the first snapshot, the records
// replayed per second, and the heap the open collection holds per record
// (after a collection, with the snapshot released), the time its second
// snapshot takes, and the time another cold node takes for its first
// catch-up, of the newer half: with every record whole in memory
// (cache=all), with the record cache (Options.RecordCache) at its default
// and at 1 MiB, where the snapshot reads the other values from the
// stream, and with the record index (Options.RecordIndex) bounded too, at
// its default and at 1,000 records, where every snapshot reads all the
// records from the stream. The server runs in a process of its own, so
// that the heap is the store's alone.
//
//	go test -run '^$' -bench BenchmarkColdOpen -benchtime 3x ./store/natskv/
func BenchmarkColdOpen(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run("records="+strconv.Itoa(n), func(b *testing.B) {
			url := startChildServer(b)
			writeCold(b, url, n)
			for _, c := range []struct {
				name string
				opts natskv.Options
			}{
				{"all", natskv.Options{RecordCache: -1, RecordIndex: -1}},
				{"32MiB", natskv.Options{RecordIndex: -1}},
				{"1MiB", natskv.Options{RecordCache: 1 << 20, RecordIndex: -1}},
				{"1MiB/index=default", natskv.Options{RecordCache: 1 << 20}},
				{"1MiB/index=1000", natskv.Options{RecordCache: 1 << 20, RecordIndex: 1000}},
			} {
				b.Run("cache="+c.name, func(b *testing.B) {
					benchmarkColdOpen(b, url, n, c.opts)
				})
			}
		})
	}
}

// writeCold writes the collection BenchmarkColdOpen reads.
func writeCold(b *testing.B, url string, records int) {
	ctx := b.Context()
	w := openStore(b, url, natskv.Options{})
	ops := make([]protocol.Op, 0, perCommit)
	for i := range records {
		ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprintf("product-%07d", i), Value: benchValue})
		if len(ops) == perCommit || i == records-1 {
			if _, err := w.Apply(ctx, "cold", ops, nil); err != nil {
				b.Fatalf("writing record %d: %v", i, err)
			}
			ops = ops[:0]
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// perCommit is how many records writeCold writes a commit.
const perCommit = 1000

func benchmarkColdOpen(b *testing.B, url string, records int, opts natskv.Options) {
	ctx := b.Context()
	var total, warm, catchUps time.Duration
	var heapPerRecord float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		before := heapInUse()
		r := openStore(b, url, opts)
		b.StartTimer()
		start := time.Now()
		snap, err := r.Snapshot(ctx, "cold")
		total += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.Records) != records {
			b.Fatalf("snapshot of %d records, want %d", len(snap.Records), records)
		}
		half := snap.Version / 2
		snap = protocol.Snapshot{}
		heapPerRecord = float64(int64(heapInUse())-int64(before)) / float64(records)
		start = time.Now()
		if snap, err = r.Snapshot(ctx, "cold"); err != nil || len(snap.Records) != records {
			b.Fatalf("second snapshot: %d records, %v", len(snap.Records), err)
		}
		warm += time.Since(start)
		snap = protocol.Snapshot{}
		runtime.KeepAlive(r)
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}

		// Another cold node's first read: a catch-up of the newer half.
		r = openStore(b, url, opts)
		start = time.Now()
		cu, err := r.CatchUp(ctx, "cold", half)
		catchUps += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if want := records - int(half)*perCommit; len(cu.Records) != want {
			b.Fatalf("catch-up of %d records, want %d", len(cu.Records), want)
		}
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(per.Milliseconds()), "ms/first-snapshot")
	b.ReportMetric(float64((warm / time.Duration(b.N)).Milliseconds()), "ms/second-snapshot")
	b.ReportMetric(float64((catchUps / time.Duration(b.N)).Milliseconds()), "ms/first-catch-up-half")
	b.ReportMetric(float64(records)/per.Seconds(), "records/s")
	b.ReportMetric(heapPerRecord, "heap-B/record")
}
