package store_test

import (
	"testing"
	"time"

	"github.com/viewsync/viewsync/store"
)

// TestRelay: events sent while the function is busy wait for it, none is
// lost or reordered, and Run returns once done is closed.
func TestRelay(t *testing.T) {
	r := store.NewRelay()
	done := make(chan struct{})
	got := make(chan uint64, 100)
	busy := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(done, func(batch []store.Event) {
			for _, ev := range batch {
				if ev.Version == 1 {
					<-busy // Send must not wait for this
				}
				got <- ev.Version
			}
		})
	}()
	for v := range uint64(100) {
		r.Send(store.Event{Collection: "c", Version: v + 1})
	}
	close(busy)
	for want := range uint64(100) {
		select {
		case v := <-got:
			if v != want+1 {
				t.Fatalf("event %d, want %d", v, want+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d not relayed", want+1)
		}
	}
	close(done)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after done was closed")
	}
}
