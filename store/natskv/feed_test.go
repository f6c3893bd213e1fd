package natskv_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestFeed: in the shared layout a store follows every collection it has
// open with one consumer, its feed. Two stores hold 40 collections each,
// and one writes them while the test deletes the feeds' consumers on the
// server, again and again: each store follows on with a new one, and the
// other store's watcher sees every commit of every collection once, in
// version order, with no gap.
func TestFeed(t *testing.T) {
	srv := startServer(t, serverOptions(t.TempDir()))
	opts := natskv.Options{Layout: natskv.LayoutShared, IdleAfter: -1, Heartbeat: 500 * time.Millisecond}
	a := openStore(t, srv.ClientURL(), opts)
	b := openStore(t, srv.ClientURL(), opts)
	js := testJetStream(t, srv.ClientURL())
	ctx := t.Context()

	const colls, commits = 40, 30
	name := func(i int) string { return fmt.Sprintf("feed.c%02d", i) }
	var mu sync.Mutex
	seen := make(map[string][]uint64)
	stop := b.Watch(func(ev store.Event) {
		if ev.Commit == nil {
			t.Errorf("%s: history replaced at %s:%d", ev.Collection, ev.Epoch, ev.Version)
			return
		}
		mu.Lock()
		seen[ev.Collection] = append(seen[ev.Collection], ev.Version)
		mu.Unlock()
	})
	defer stop()
	for i := range colls {
		defer a.Hold(name(i))()
		defer b.Hold(name(i))()
	}
	consumers := func() []string {
		var names []string
		for n := range mustStream(t, js, natskv.DefaultPrefix).ListConsumers(ctx).Info() {
			names = append(names, n.Name)
		}
		return names
	}
	eventually(t, "one consumer per store", func() (bool, string) {
		n := consumers()
		return len(n) == 2, fmt.Sprint(n)
	})

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for v := range commits {
			for i := range colls {
				op := putOp(fmt.Sprint("r", v%3), fmt.Sprintf(`{"v":%d}`, v+1))
				if _, err := a.Apply(ctx, name(i), []protocol.Op{op}, nil); err != nil {
					t.Errorf("Apply %s: %v", name(i), err)
					return
				}
			}
		}
	})
	// The feeds lose their consumers while the commits are made.
	deleted := 0
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		case <-time.After(300 * time.Millisecond):
			for _, n := range consumers() {
				if err := js.DeleteConsumer(ctx, natskv.DefaultPrefix, n); err == nil {
					deleted++
				}
			}
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("deleted %d feed consumers while writing", deleted)
	if deleted == 0 {
		t.Fatal("no consumer was deleted while the commits were made")
	}
	eventually(t, "every commit seen by the other store", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for i := range colls {
			if got := len(seen[name(i)]); got < commits {
				return false, fmt.Sprintf("%s: %d of %d", name(i), got, commits)
			}
		}
		return true, ""
	})
	mu.Lock()
	for i := range colls {
		for k, v := range seen[name(i)] {
			if v != uint64(k+1) {
				t.Fatalf("%s: commits seen in versions %v; want 1 to %d once each", name(i), seen[name(i)], commits)
			}
		}
	}
	mu.Unlock()
	eventually(t, "each store follows with one consumer again", func() (bool, string) {
		n := consumers()
		feeds := 0
		for _, c := range n {
			if strings.HasPrefix(c, "vs-feed-") {
				feeds++
			}
		}
		return len(n) == 2 && feeds == 2, fmt.Sprint(n)
	})
}

// mustStream returns the stream named name.
func mustStream(t *testing.T, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	st, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st
}
