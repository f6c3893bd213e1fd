package viewsync_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/store/natskv"
)

// waitOpen polls until the store has want collections open, for at most
// a generous deadline.
func waitOpen(t *testing.T, s *natskv.Store, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		n := s.OpenCollections()
		if n == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d open collections: %d open", want, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestSubscriptionHoldsCollection: on a node whose NATS store releases
// idle collections, a collection with a subscriber is held: it stays open
// while the node's other collections go, and the subscriber gets every
// commit another node makes. Once the subscriber leaves the collection is
// released; the node's head then follows the other node's commits again
// as soon as asked (Head), and a waiter (a long-poll) holds it and wakes
// on the other node's next commit.
func TestSubscriptionHoldsCollection(t *testing.T) {
	srv := startNATS(t)
	sa := openNATSWith(t, srv, natskv.Options{IdleAfter: 50 * time.Millisecond})
	a := newHub(t, sa)
	b := newHub(t, openNATS(t, srv))
	ctx := t.Context()
	live, other := collection(t, a, "live"), collection(t, a, "other")
	bl := collection(t, b, "live")

	sub, err := live.Subscribe(&viewsync.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	// The subscriber is live, at version 0: what comes next comes from
	// the node's watcher.
	if _, err := sub.NextNow(ctx); !errors.Is(err, fanout.ErrWouldBlock) {
		t.Fatalf("NextNow on an empty collection: %v, want ErrWouldBlock", err)
	}
	if _, err := other.Head(ctx); err != nil {
		t.Fatal(err)
	}
	// The sweep has run once the collection nobody subscribes to is gone.
	waitOpen(t, sa, 1)

	const commits = 4
	for i := range commits {
		if _, err := bl.Put(ctx, fmt.Sprintf("r%d", i), []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond) // sweeps pass between commits
	}
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []uint64
	for len(got) < commits {
		ev, err := sub.Next(nctx)
		if err != nil {
			t.Fatalf("Next after %v: %v", got, err)
		}
		if ev.Kind != fanout.EventCommits {
			t.Fatalf("event %v after %v, want commits", ev.Kind, got)
		}
		for _, f := range ev.Frames {
			got = append(got, f.Commit.Version)
		}
	}
	if fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("subscriber got versions %v, want 1 2 3 4", got)
	}
	if n := sa.OpenCollections(); n != 1 {
		t.Fatalf("%d collections open with a subscriber, want 1", n)
	}

	sub.Close()
	waitOpen(t, sa, 0)

	// Released: another commit is not watched, but the head is read.
	if _, err := bl.Put(ctx, "r", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	hd, err := live.Head(ctx)
	if err != nil || hd.Version != commits+1 {
		t.Fatalf("Head after release = %+v, %v; want version %d", hd, err, commits+1)
	}

	// A waiter holds the collection until it is woken.
	waitOpen(t, sa, 0)
	woken := make(chan viewsync.Head, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		h, err := live.Wait(wctx, hd.Cursor())
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		woken <- h
	}()
	waitOpen(t, sa, 1)
	time.Sleep(150 * time.Millisecond) // sweeps pass; the waiter holds it
	if _, err := bl.Put(ctx, "r", []byte(`3`)); err != nil {
		t.Fatal(err)
	}
	if h := <-woken; h.Version != commits+2 {
		t.Fatalf("Wait woke at %+v, want version %d", h, commits+2)
	}
	waitOpen(t, sa, 0)
}
