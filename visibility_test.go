package viewsync_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/store/memstore"
)

// visibleRecorder is a viewsync.Metrics that keeps Visible reports.
type visibleRecorder struct {
	mu      sync.Mutex
	visible map[string][]time.Duration
}

func (r *visibleRecorder) Committed(string, int, uint64, time.Duration) {}

func (r *visibleRecorder) Visible(collection string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.visible[collection] = append(r.visible[collection], d)
}

func (r *visibleRecorder) count(collection string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.visible[collection])
}

func TestRenderedAndLagging(t *testing.T) {
	rec := &visibleRecorder{visible: map[string][]time.Duration{}}
	hub := newHub(t, memstore.New(nil), viewsync.WithMetrics(rec))
	ctx := context.Background()
	c, err := hub.Collection("board")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Put(ctx, fmt.Sprintf("r%d", i), []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Head(ctx); err != nil { // load the head, as any reader does
		t.Fatal(err)
	}

	// One report per client and version; a repeat or an older version is
	// not measured again.
	hub.Rendered("a", "board", 3)
	hub.Rendered("a", "board", 3)
	hub.Rendered("a", "board", 2)
	if n := rec.count("board"); n != 1 {
		t.Fatalf("after repeated reports of one version: %d measurements, want 1", n)
	}
	hub.Rendered("b", "board", 1)
	if n := rec.count("board"); n != 2 {
		t.Fatalf("a second client: %d measurements, want 2", n)
	}
	// Unknown commit (never made) and anonymous clients are not measured.
	hub.Rendered("c", "board", 99)
	hub.Rendered("", "board", 3)
	if n := rec.count("board"); n != 2 {
		t.Fatalf("unknown version or client: %d measurements, want 2", n)
	}
	for _, d := range rec.visible["board"] {
		if d < 0 {
			t.Fatalf("negative visibility time %v", d)
		}
	}

	// Lagging: with a zero threshold every client behind the head lags
	// (b at 1, c at 99 is ahead and so current); with an hour none does.
	if got := hub.Lagging(0)["board"]; got != 1 {
		t.Fatalf("Lagging(0) = %d, want 1 (client b)", got)
	}
	if got, ok := hub.Lagging(time.Hour)["board"]; !ok || got != 0 {
		t.Fatalf("Lagging(1h) = %d (present %v), want 0 and present", got, ok)
	}
	hub.Rendered("b", "board", 3)
	if got := hub.Lagging(0)["board"]; got != 0 {
		t.Fatalf("after b caught up, Lagging(0) = %d, want 0", got)
	}
	// A client that goes away is forgotten.
	if _, err := c.Put(ctx, "r9", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if got := hub.Lagging(0)["board"]; got != 2 {
		t.Fatalf("after a new commit, Lagging(0) = %d, want 2 (a and b)", got)
	}
	hub.Forget("a", "board")
	if got := hub.Lagging(0)["board"]; got != 1 {
		t.Fatalf("after Forget(a), Lagging(0) = %d, want 1", got)
	}
}
