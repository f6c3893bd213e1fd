package natskv

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestReplacedConsumerDeleted: in the stream layout, a follower replaced
// (a reload after a break) has its consumer deleted at once, not left on
// the server until its inactivity threshold (Options.Timeout, a minute
// here): however often the collection reloads, its stream keeps one
// consumer per store following it.
func TestReplacedConsumerDeleted(t *testing.T) {
	ctx := t.Context()
	s, _ := openPair(t, Options{Layout: LayoutStream, IdleAfter: -1, Timeout: time.Minute})
	const name = "replaced"
	for i := range 3 {
		ops := []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprint("r", i), Value: []byte(`1`)}}
		if _, err := s.Apply(ctx, name, ops, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := openAt(t, s, name, 3)
	consumers := func() int {
		stream, err := s.js.Stream(ctx, c.names.stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	for i := range 5 {
		c.mu.Lock()
		f := c.fol
		c.breakLocked(errors.New("test: reload"))
		c.mu.Unlock()
		waitUntil(t, fmt.Sprintf("reload %d", i+1), func() bool {
			c.mu.RLock()
			defer c.mu.RUnlock()
			return c.fol != f && c.fol.ld == nil && c.fol.cc != nil && !c.broken
		})
	}
	deadline := time.Now().Add(30 * time.Second) // well within the threshold
	for n := consumers(); n != 1; n = consumers() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 reloads the stream has %d consumers, want 1", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
