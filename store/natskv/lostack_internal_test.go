package natskv

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nuid"
	"github.com/viewsync/viewsync/protocol"
)

// TestLostAckFound: a batch whose acknowledgement the committer missed is
// found by its id however many batches other processes commit before the
// committer looks, and however often the state is reloaded meanwhile.
// (The committer used to remember only the latest 1024 batch ids, in a
// ring that a reload, replaying the stream, filled with duplicates whose
// eviction forgot ids it still held: it then planned the group again over
// its own stored batch, committing it twice.)
func TestLostAckFound(t *testing.T) {
	ctx := t.Context()
	s, other := openPair(t, Options{})
	const name = "lost"
	put := func(id string) []protocol.Op {
		return []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte("1")}}
	}
	if _, err := s.Apply(ctx, name, put("a"), nil); err != nil {
		t.Fatal(err)
	}
	c, err := s.coll(ctx, name)
	if err != nil {
		t.Fatal(err)
	}

	// Publish a batch as the committer does, and lose its acknowledgement.
	ops := put("b")
	r := &request{ops: ops, opsJSON: protocol.AppendOps(nil, ops), done: make(chan struct{})}
	c.wmu.Lock()
	c.mu.RLock()
	p, err := c.plan([]*request{r}, true, nil, nil)
	c.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	p.id = nuid.Next()
	c.mu.Lock()
	c.awaited[p.id] = 0
	c.mu.Unlock()
	if _, err := c.publish(p); err != nil {
		t.Fatal(err)
	}
	c.wmu.Unlock()

	// Other processes commit hundreds of batches; the state is reloaded
	// (replaying the stream) twice.
	const n = 600
	for i := range n {
		if _, err := other.Apply(ctx, name, put(fmt.Sprint("o", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		c.mu.Lock()
		c.breakLocked(errors.New("test: reload"))
		c.mu.Unlock()
		err := c.waitFor(ctx, func() bool {
			return !c.broken && c.fol.ld == nil && c.st.Version == n+2
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c.mu.RLock()
	found, _ := c.committed([]*plan{p})
	c.mu.RUnlock()
	if found != p {
		t.Fatal("the stored batch whose acknowledgement was lost is not found: the committer would commit it again")
	}
	c.forget(p)
}
