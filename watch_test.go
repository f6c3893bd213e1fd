package viewsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// sharedStore is one memstore that several hubs share, standing for a
// store several processes share: it reports every commit and drop, made
// through any of its handles, to every handle's watchers.
type sharedStore struct {
	store.Store
	mu       sync.Mutex
	watchers map[int]func(store.Event)
	next     int
}

// handle is one process's view of the shared store.
type handle struct{ *sharedStore }

func (s *sharedStore) emit(ev store.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fn := range s.watchers {
		fn(ev)
	}
}

func (h handle) Apply(ctx context.Context, c string, ops []protocol.Op, ifs map[string]uint64) (store.Applied, error) {
	ap, err := h.Store.Apply(ctx, c, ops, ifs)
	if err == nil {
		cm := ap.Commit
		h.emit(store.Event{Collection: c, Epoch: ap.Epoch, Commit: &cm, Version: cm.Version})
	}
	return ap, err
}

func (h handle) Drop(ctx context.Context, c string) (protocol.Head, error) {
	hd, err := h.Store.Drop(ctx, c)
	if err == nil {
		h.emit(store.Event{Collection: c, Epoch: hd.Epoch, Version: hd.Version})
	}
	return hd, err
}

func (h handle) Watch(fn func(store.Event)) func() {
	h.mu.Lock()
	id := h.next
	h.next++
	h.watchers[id] = fn
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.watchers, id)
		h.mu.Unlock()
	}
}

// TestHubWatchesSharedStore: subscribers of one hub receive, in order and
// once each, the commits written through another hub on the same shared
// store, long-polls wake for them, and a drop through the other hub
// resets them.
func TestHubWatchesSharedStore(t *testing.T) {
	ms := memstore.New(nil)
	shared := &sharedStore{Store: ms, watchers: map[int]func(store.Event){}}
	writer, err := viewsync.New(handle{shared})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	reader, err := viewsync.New(handle{shared})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, _ := reader.Collection("board")
	wc, _ := writer.Collection("board")
	if _, err := rc.Head(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := rc.Subscribe(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ev, err := sub.Next(ctx)
	if err != nil || ev.Kind != fanout.EventReset {
		t.Fatalf("first event %v, %v; want a reset", ev.Kind, err)
	}

	// A long-poll on the reader wakes for a commit made through the writer.
	woke := make(chan viewsync.Head, 1)
	go func() {
		hd, _ := rc.Wait(ctx, viewsync.Cursor{Epoch: ev.Reset.Epoch, Version: 0})
		woke <- hd
	}()
	const n = 200
	for i := range n {
		if _, err := wc.Put(ctx, fmt.Sprintf("r%d", i%7), json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if hd := <-woke; hd.Version == 0 {
		t.Fatalf("long-poll on the reader woke at %+v; want a version > 0", hd)
	}
	var got uint64
	for got < n {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after version %d: %v", got, err)
		}
		if ev.Kind != fanout.EventCommits {
			t.Fatalf("after version %d: event %v; want commits", got, ev.Kind)
		}
		for _, f := range ev.Frames {
			if f.Version() != got+1 {
				t.Fatalf("got version %d after %d: not in order, gap-free and once", f.Version(), got)
			}
			got = f.Version()
		}
	}
	// The reader's head follows the watched commits; its subscriber may
	// have read the last ones from the store first.
	for {
		hd, err := rc.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if hd.Version == n {
			break
		}
		if hd.Version > n || ctx.Err() != nil {
			t.Fatalf("reader's head %+v; want version %d", hd, n)
		}
		time.Sleep(time.Millisecond)
	}

	// A drop through the writer resets the reader's subscriber.
	hd, err := wc.Drop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev, err = sub.Next(ctx)
	if err != nil || ev.Kind != fanout.EventReset || ev.Reset.Epoch != hd.Epoch || len(ev.Reset.Records) != 0 {
		t.Fatalf("after the drop: %v, %v; want a reset to the empty epoch %s", ev.Kind, err, hd.Epoch)
	}
}
