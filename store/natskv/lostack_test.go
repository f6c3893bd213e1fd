package natskv_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestLostAckExactlyOnce forces the case where the committer cannot see
// for itself whether a batch whose acknowledgement it lost was stored: the
// server stores the batch, the acknowledgement never reaches the store
// (a proxy lets the commit message through and nothing back, then cuts the
// connection), and before the store is back the batch's own messages are
// gone from the stream — its log entry trimmed by another store's commits
// (and its record rewritten, or not), or the whole history dropped. The store's follower then reloads a state
// that holds the batch (or a new epoch) without having read the batch's
// last message, so its id is nowhere to be found. The Apply must still be
// made exactly once: answered with the version it was stored at, and never
// committed again (a watcher on the other store sees its op once). On a
// connection that buffers publishes while reconnecting, the server's
// duplicate window cannot vouch for a second attempt, and the Apply that
// the stream cannot settle fails with ErrOutcomeUnknown instead — still
// made once.
func TestLostAckExactlyOnce(t *testing.T) {
	for _, mode := range []lostMode{trimmed, rewritten, dropped, droppedBuffering} {
		t.Run(mode.String(), func(t *testing.T) { testLostAckExactlyOnce(t, mode) })
	}
}

// lostMode is how the lost batch's messages go while the store is away.
type lostMode int

const (
	trimmed          lostMode = iota // its log entry trimmed
	rewritten                        // its log entry trimmed, its record rewritten
	dropped                          // the collection dropped
	droppedBuffering                 // dropped, on a connection that buffers publishes
)

func (m lostMode) String() string {
	return [...]string{"trimmed", "rewritten", "dropped", "dropped-buffering"}[m]
}

func testLostAckExactlyOnce(t *testing.T, mode lostMode) {
	drop, buffering := mode == dropped || mode == droppedBuffering, mode == droppedBuffering
	ctx := t.Context()
	srv := startServer(t, serverOptions(t.TempDir()))
	proxy := newAckProxy(t, srv.Addr().String())
	// A short log, so that a few commits trim the lost batch's entry.
	cfg := store.Config{RetainCommits: 8}
	natsOpts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)}
	if buffering {
		natsOpts = append(natsOpts, nats.ReconnectBufSize(nats.DefaultReconnectBufSize))
	}
	s := openStore(t, proxy.URL(), natskv.Options{
		Config:      cfg,
		Timeout:     2 * time.Second,
		NATSOptions: natsOpts,
		Logger:      testLogger(t),
	})
	other := openStore(t, srv.ClientURL(), natskv.Options{Config: cfg})
	const coll = "lost"
	put := func(id string) []protocol.Op {
		return []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte(`"` + id + `"`)}}
	}
	for i := range 3 {
		if _, err := s.Apply(ctx, coll, put(fmt.Sprint("s", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	stop := other.Watch(rec.add)
	defer stop()
	h, err := other.Head(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	epoch := h.Epoch
	hasOp := func(id string) func([]store.Event) bool {
		return func(evs []store.Event) bool { return countOp(evs, id) > 0 }
	}

	// The Apply whose acknowledgement is lost.
	proxy.arm()
	type result struct {
		a   store.Applied
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := s.Apply(ctx, coll, put("x"), nil)
		done <- result{a, err}
	}()
	select {
	case <-proxy.fired:
	case <-ctx.Done():
		t.Fatal("the commit message never went through")
	}
	evs := rec.waitFor(t, "the batch stored", hasOp("x"))
	var stored uint64
	for _, ev := range evs {
		if countOp([]store.Event{ev}, "x") > 0 {
			stored = ev.Version
		}
	}
	proxy.cut()
	t.Logf("batch stored at version %d of %s, its acknowledgement lost, the store cut off", stored, epoch)

	// Its messages go while the store is away.
	if drop {
		nh, err := other.Drop(ctx, coll)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("collection dropped: epoch %s", nh.Epoch)
	} else {
		for i := range 30 {
			ops := put(fmt.Sprint("o", i))
			if mode == rewritten && i == 0 {
				ops = []protocol.Op{{Op: protocol.OpPut, ID: "x", Value: []byte(`"other"`)}}
			}
			if _, err := other.Apply(ctx, coll, ops, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := other.Changes(ctx, coll, stored-1, store.Page{}); !errors.Is(err, store.ErrCompacted) {
			t.Fatalf("Changes after %d on the other store: %v; want the log trimmed past the lost batch", stored-1, err)
		}
	}
	proxy.allow()

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("Apply never returned")
	}
	switch {
	case buffering:
		if !errors.Is(r.err, natskv.ErrOutcomeUnknown) || !errors.Is(r.err, store.ErrUnavailable) {
			t.Fatalf("Apply whose acknowledgement was lost, on a buffering connection: %+v, %v; want ErrOutcomeUnknown", r.a, r.err)
		}
	case r.err != nil:
		t.Fatalf("Apply whose acknowledgement was lost: %v; want it answered as stored at %d", r.err, stored)
	case r.a.Epoch != epoch || r.a.Commit.Version != stored:
		t.Errorf("Apply answered %s:%d, the batch was stored at %s:%d", r.a.Epoch, r.a.Commit.Version, epoch, stored)
	}

	// One more commit through the store, seen by the other: everything
	// the store did before is in the stream.
	if _, err := s.Apply(ctx, coll, put("y"), nil); err != nil {
		t.Fatal(err)
	}
	evs = rec.waitFor(t, "the next commit", hasOp("y"))
	if n := countOp(evs, "x"); n != 1 {
		t.Fatalf("the lost batch's op was committed %d times, want once", n)
	}
	if drop {
		if _, err := s.Get(ctx, coll, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get x after the drop: %v; want not found (it was made before the drop)", err)
		}
	} else if rx, err := s.Get(ctx, coll, "x"); mode == trimmed && (err != nil || rx.Version != stored) {
		t.Fatalf("Get x = %+v, %v; want it at version %d", rx, err, stored)
	}
}

// countOp counts the commits among evs that put id's own value ("id").
func countOp(evs []store.Event, id string) int {
	n := 0
	for _, ev := range evs {
		if ev.Commit == nil {
			continue
		}
		for _, op := range ev.Commit.Ops {
			if op.ID == id && string(op.Value) == `"`+id+`"` {
				n++
				break
			}
		}
	}
	return n
}
