package natskv_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkLayout measures what the NATS servers hold for many small
// collections in two layouts, to weigh the store's (a stream per
// collection) against the alternative (one stream, a subject tree per
// collection): each iteration adds one collection, a record and its log
// entry (two messages); then each collection gets a follower (a pull
// consumer of its own, in memory, as the store's followers are; in the
// shared stream filtered on the collection's subjects). It reports the
// servers' heap per collection (all the servers of the run, in this
// process, after a GC), their storage per collection, ns/op (the time to
// add one), and per follower the time to start it and the heap it adds
// (the servers' and the client's). Run it with a
// fixed count, e.g. -benchtime=2000x: the figures are per collection at
// that count.
func BenchmarkLayout(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, layout := range []string{"streams", "subjects"} {
			b.Run(fmt.Sprintf("replicas=%d/layout=%s", replicas, layout), func(b *testing.B) {
				benchmarkLayout(b, replicas, layout == "subjects")
			})
		}
	}
}

func benchmarkLayout(b *testing.B, replicas int, shared bool) {
	var url string
	var dirs []string
	if replicas == 1 {
		dir := b.TempDir()
		o := serverOptions(dir)
		o.SyncAlways = false
		srv := startServer(b, o)
		url, dirs = srv.ClientURL(), []string{dir}
	} else {
		cl := newCluster(b)
		url = cl.urls()
		for _, o := range cl.opts {
			dirs = append(dirs, o.StoreDir)
		}
	}
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	stream := func(name, subject string) jetstream.StreamConfig {
		return jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage,
			Replicas: replicas, MaxMsgsPerSubject: 1, AllowAtomicPublish: true, AllowDirect: true}
	}
	if shared {
		if err := retry(ctx, func(ctx context.Context) error {
			_, err := js.CreateStream(ctx, stream("L", "L.>"))
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	heap0, disk0 := heapInUse(), dirsSize(dirs)
	names := make([]string, b.N)
	bases := make([]string, b.N)
	b.ResetTimer()
	for i := range b.N {
		name, base := "L", fmt.Sprintf("L.c%d.e", i)
		if !shared {
			name = fmt.Sprintf("L_c%d", i)
			if err := retry(ctx, func(ctx context.Context) error {
				_, err := js.CreateStream(ctx, stream(name, base+".>"))
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
		for _, subj := range []string{base + ".r.eA", base + ".c.1.0"} {
			if _, err := js.Publish(ctx, subj, benchValue); err != nil {
				b.Fatal(err)
			}
		}
		names[i], bases[i] = name, base
	}
	b.StopTimer()
	// Let the replicas settle before reading.
	time.Sleep(2 * time.Second)
	n := float64(b.N)
	heap1 := heapInUse()
	b.ReportMetric((float64(heap1)-float64(heap0))/n, "heap-B/coll")
	b.ReportMetric(float64(dirsSize(dirs)-disk0)/n, "disk-B/coll")

	// A follower of each.
	var consumers []jetstream.ConsumeContext
	defer func() {
		for _, cc := range consumers {
			cc.Stop()
		}
	}()
	start := time.Now()
	for i := range b.N {
		cfg := jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, Replicas: 1, MemoryStorage: true}
		if shared {
			cfg.FilterSubject = bases[i] + ".>"
		}
		var cons jetstream.Consumer
		if err := retry(ctx, func(ctx context.Context) error {
			var err error
			cons, err = js.CreateConsumer(ctx, names[i], cfg)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		cc, err := cons.Consume(func(jetstream.Msg) {}, jetstream.PullHeartbeat(2*time.Second), jetstream.PullExpiry(30*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		consumers = append(consumers, cc)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/n, "follow-ns/coll")
	time.Sleep(2 * time.Second)
	// The consumers' heap: the servers' and this process's client side.
	b.ReportMetric((float64(heapInUse())-float64(heap1))/n, "follow-heap-B/coll")
}

// retry calls fn, with a 5s context each time, until it succeeds or ctx
// ends; a cluster may refuse a stream or consumer while it is busy.
func retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heapInUse returns this process's heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// dirsSize returns the bytes of the files under dirs.
func dirsSize(dirs []string) int64 {
	var n int64
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}
