package viewsync_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// startNATS starts an in-process JetStream server and shuts it down when
// the test ends.
func startNATS(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return s
}

// openNATS opens a NATS store on srv, as one node of a cluster does, and
// closes it when the test ends.
func openNATS(t testing.TB, srv *server.Server) *natskv.Store {
	t.Helper()
	return openNATSWith(t, srv, natskv.Options{})
}

// openNATSWith is openNATS with opts (its URL set to srv's).
func openNATSWith(t testing.TB, srv *server.Server, opts natskv.Options) *natskv.Store {
	t.Helper()
	opts.URL = srv.ClientURL()
	s, err := natskv.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// waitHead waits until the collection's head, as its hub knows it, is
// want.
func waitHead(t testing.TB, c *viewsync.Collection, want viewsync.Head) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cur := viewsync.Cursor{}
	for {
		hd, err := c.Wait(ctx, cur)
		if err != nil {
			t.Fatalf("waiting for head %v: at %v: %v", want, cur, err)
		}
		if hd == want {
			return
		}
		cur = hd.Cursor()
	}
}

// waitBooked polls cond until it holds, failing the test after 30 s (a
// hang guard, not a bound).
func waitBooked(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestVisibilityAcrossNodes: two hubs on one NATS JetStream server, two
// nodes of a cluster. A commit made on node A is in node B's books as if B
// had made it: a client of B behind it is counted by Lagging only once the
// commit is older than the threshold (not as soon as it arrives, with no
// time known), and a client of B that renders it gives B a commit→visible
// sample. A drop on A makes both nodes forget their clients' positions in
// the old history, and the new history is measured from its first commit.
func TestVisibilityAcrossNodes(t *testing.T) {
	srv := startNATS(t)
	recA := &visibleRecorder{visible: map[string][]time.Duration{}}
	recB := &visibleRecorder{visible: map[string][]time.Duration{}}
	a := newHub(t, openNATS(t, srv), viewsync.WithMetrics(recA))
	b := newHub(t, openNATS(t, srv), viewsync.WithMetrics(recB))
	ac, bc := collection(t, a, "board"), collection(t, b, "board")
	ctx := t.Context()

	// B reads the board (a node follows the collections it serves) and
	// its client b1 shows it empty.
	hd, err := bc.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Rendered("b1", "board", hd.Version)

	start := time.Now()
	for _, id := range []string{"x", "y", "z"} {
		if _, err := ac.Put(ctx, id, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	waitHead(t, bc, viewsync.Head{Epoch: hd.Epoch, Version: 3})
	// B's head may come from its store before its watcher's events reach
	// its books: wait for the books.
	waitBooked(t, "B has booked commit 3", func() bool { return b.Booked("board", 3) })
	a.Rendered("a1", "board", 3)

	// b1 is three commits behind, made just now.
	if got, ok := b.Lagging(time.Hour)["board"]; !ok || got != 0 {
		t.Fatalf("B: Lagging(1h) = %d (present %v), want 0 and present: the commits were just made", got, ok)
	}
	if got := b.Lagging(0)["board"]; got != 1 {
		t.Fatalf("B: Lagging(0) = %d, want 1 (b1)", got)
	}

	// b1 renders them: B measures commit→visible for a commit A made.
	b.Rendered("b1", "board", 3)
	recB.mu.Lock()
	samples := append([]time.Duration(nil), recB.visible["board"]...)
	recB.mu.Unlock()
	if len(samples) != 1 || samples[0] < 0 || samples[0] > time.Since(start) {
		t.Fatalf("B's commit→visible samples %v, want one within [0, %v]", samples, time.Since(start))
	}
	if got := b.Lagging(0)["board"]; got != 0 {
		t.Fatalf("B: after b1 rendered the head, Lagging(0) = %d, want 0", got)
	}
	if n := recA.count("board"); n != 1 {
		t.Fatalf("A: %d samples, want 1 (a1)", n)
	}

	// A drops the board and writes it anew: each node forgets the
	// positions its clients held in the old history, and measures the
	// new one (b1 at version 1 is no longer taken for a client that has
	// seen version 3).
	dropped, err := ac.Drop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Put(ctx, "x", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	waitHead(t, bc, viewsync.Head{Epoch: dropped.Epoch, Version: 1})
	waitBooked(t, "B has forgotten the old history and booked the new one's commit 1", func() bool {
		return !b.Booked("board", 3) && b.Booked("board", 1)
	})
	for name, h := range map[string]*viewsync.Hub{"A": a, "B": b} {
		if got, ok := h.Lagging(0)["board"]; ok {
			t.Fatalf("%s: after the drop, Lagging(0) = %d for the board, want no clients", name, got)
		}
	}
	b.Rendered("b1", "board", 1)
	a.Rendered("a1", "board", 1)
	if nb, na := recB.count("board"), recA.count("board"); nb != 2 || na != 2 {
		t.Fatalf("after rendering the new history's first commit: %d samples on B, %d on A; want 2 each", nb, na)
	}
}

// TestViewAcrossNodesRecordCache: a filtered view served by node B follows
// commits made on node A although B keeps no record values in memory
// (natskv's record cache of one byte) and the ids and versions of one
// record only (its record index): a record moving into the view is a
// put, one moving out of it a delete, one that never was in it nothing,
// which B can tell only from the values the commits replaced, carried by
// their log entries.
func TestViewAcrossNodesRecordCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv := startNATS(t)
	opts := natskv.Options{RecordCache: 1, RecordIndex: 1}
	a, err := viewsync.New(openNATSWith(t, srv, opts))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := viewsync.New(openNATSWith(t, srv, opts))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ca, _ := a.Collection("orders")
	cb, _ := b.Collection("orders")
	put(t, ca, "o1", `{"owner":"alice","n":1}`)
	put(t, ca, "o2", `{"owner":"bob","n":1}`)
	waitHead(t, cb, head(t, ca))

	alice := cb.Where(filter.MustParse(`{"owner":"alice"}`))
	sub, err := alice.Subscribe(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ev, err := sub.Next(ctx)
	if err != nil || ev.Kind != fanout.EventReset || len(ev.Reset.Records) != 1 || ev.Reset.Records[0].ID != "o1" {
		t.Fatalf("first event %v %+v, %v; want a reset with o1", ev.Kind, ev.Reset, err)
	}

	put(t, ca, "o2", `{"owner":"bob","n":2}`)   // never in the view
	put(t, ca, "o1", `{"owner":"bob","n":2}`)   // moves out
	put(t, ca, "o3", `{"owner":"carol","n":1}`) // never in the view
	put(t, ca, "o2", `{"owner":"alice","n":3}`) // moves in
	want := []string{"delete o1", "put o2"}
	var got []string
	for len(got) < len(want) {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if ev.Kind != fanout.EventCommits {
			t.Fatalf("after %v: event %v; want commits", got, ev.Kind)
		}
		for _, f := range ev.Frames {
			for _, op := range f.Commit.Ops {
				got = append(got, string(op.Op)+" "+op.ID)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the view on node B got %v; want %v", got, want)
	}
}
