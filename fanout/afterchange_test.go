package fanout_test

import (
	"sync/atomic"
	"testing"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// TestAfterChange: a function registered with AfterChange is called once,
// at the next commit of its topic (of its view, for a filtered
// subscription: a commit that does not concern the view does not call
// it); a cancelled one is not called; on a closed broker it is called at
// once.
func TestAfterChange(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		b := newBroker(t, st, fanout.Options{})
		ap := apply(t, st, put("a", `{"owner":"a"}`))
		cur := protocol.Cursor{Epoch: ap.Epoch, Version: ap.Commit.Version}
		all := subscribe(t, b, &cur)
		mine := subscribeView(t, b, filter.MustParse(`{"owner":"a"}`), &cur)

		var allCalls, mineCalls, cancelledCalls atomic.Int32
		all.AfterChange(func() { allCalls.Add(1) })
		mine.AfterChange(func() { mineCalls.Add(1) })
		stop := all.AfterChange(func() { cancelledCalls.Add(1) })
		if !stop() {
			t.Fatal("stop before the change: false, want true")
		}
		if stop() {
			t.Fatal("a second stop: true, want false")
		}

		publish(b, apply(t, st, put("b", `{"owner":"b"}`))) // not the view's
		if n := allCalls.Load(); n != 1 {
			t.Fatalf("after a commit: called %d times, want 1", n)
		}
		if n := mineCalls.Load(); n != 0 {
			t.Fatalf("the view's function after a commit outside it: called %d times, want 0", n)
		}
		publish(b, apply(t, st, put("c", `{"owner":"a"}`)))
		if n := allCalls.Load(); n != 1 {
			t.Fatalf("after a second commit: called %d times, want once in all", n)
		}
		if n := mineCalls.Load(); n != 1 {
			t.Fatalf("the view's function after a commit in it: called %d times, want 1", n)
		}
		if n := cancelledCalls.Load(); n != 0 {
			t.Fatalf("a cancelled function was called %d times", n)
		}

		var late atomic.Int32
		all.AfterChange(func() { late.Add(1) })
		b.Close()
		if n := late.Load(); n != 1 {
			t.Fatalf("a function waiting when the broker closed: called %d times, want 1", n)
		}
		all.AfterChange(func() { late.Add(1) })
		if n := late.Load(); n != 2 {
			t.Fatal("registered on a closed broker: not called at once")
		}
	})
}
