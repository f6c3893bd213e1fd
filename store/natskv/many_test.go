package natskv_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestManyCollections: in the shared layout many collections cost the
// server one stream and each store one consumer, and a store holding
// them open keeps no goroutine per collection and little memory: store a
// writes 2,000 collections, store b holds every one (as subscribers
// would), then a commit to each reaches b's watcher once. The memory
// bound, 16 KiB of heap and stacks per held collection, is a regression
// guard several times the ~3 KiB measured (docs/benchmarks.md); the
// goroutine bound fails if each collection kept one.
func TestManyCollections(t *testing.T) {
	if natskv.LayoutUnderTest() != natskv.LayoutShared {
		t.Skip("the shared layout's test: it sets the layout itself, and runs in that pass")
	}
	srv := startServer(t, serverOptions(t.TempDir()))
	opts := natskv.Options{Layout: natskv.LayoutShared, IdleAfter: -1}
	a := openStore(t, srv.ClientURL(), opts)
	b := openStore(t, srv.ClientURL(), opts)
	js := testJetStream(t, srv.ClientURL())
	ctx := t.Context()

	const n, workers = 2000, 16
	name := func(i int) string { return fmt.Sprintf("many.c%04d", i) }
	each := func(fn func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		var failed atomic.Bool
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n && !failed.Load(); i += workers {
					if err := fn(i); err != nil {
						t.Errorf("%s: %v", name(i), err)
						failed.Store(true)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() {
			t.FailNow()
		}
	}
	put := func(i int, v string) error {
		_, err := a.Apply(ctx, name(i), []protocol.Op{putOp("r", v)}, nil)
		return err
	}
	each(func(i int) error { return put(i, `1`) })

	before := heapAndStacks()
	goroutines := runtime.NumGoroutine()
	var releases []func()
	var mu sync.Mutex
	each(func(i int) error {
		release := b.Hold(name(i))
		mu.Lock()
		releases = append(releases, release)
		mu.Unlock()
		h, err := b.Head(ctx, name(i))
		if err == nil && h.Version != 1 {
			err = fmt.Errorf("head %d, want 1", h.Version)
		}
		return err
	})
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	perColl := (int64(heapAndStacks()) - int64(before)) / n
	extra := runtime.NumGoroutine() - goroutines
	t.Logf("%d collections held: %d B of heap and stacks each, %d goroutines more in all", n, perColl, extra)
	if perColl > 16<<10 {
		t.Errorf("%d B per held collection, want at most 16 KiB", perColl)
	}
	if extra > n/10 {
		t.Errorf("%d goroutines more for %d held collections: an idle collection keeps one", extra, n)
	}

	streams, consumers := 0, 0
	for range js.StreamNames(ctx).Name() {
		streams++
	}
	for range mustStream(t, js, natskv.DefaultPrefix).ListConsumers(ctx).Info() {
		consumers++
	}
	if streams != 1 || consumers != 2 {
		t.Errorf("%d streams and %d consumers for %d collections on two stores, want 1 and 2", streams, consumers, n)
	}

	var seenMu sync.Mutex
	seen := make(map[string]int)
	stop := b.Watch(func(ev store.Event) {
		if ev.Commit != nil && ev.Version == 2 {
			seenMu.Lock()
			seen[ev.Collection]++
			seenMu.Unlock()
		}
	})
	defer stop()
	each(func(i int) error { return put(i, `2`) })
	eventually(t, "the second commit of every collection seen by b", func() (bool, string) {
		seenMu.Lock()
		defer seenMu.Unlock()
		return len(seen) == n, fmt.Sprintf("%d of %d", len(seen), n)
	})
	seenMu.Lock()
	defer seenMu.Unlock()
	for c, k := range seen {
		if k != 1 {
			t.Errorf("%s: its second commit seen %d times", c, k)
		}
	}
}

// heapAndStacks returns the live heap and the goroutine stacks in use,
// after a collection.
func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
