package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/ws"
)

// TestSubscribeResetThenLive: without a cursor a subscription starts with
// a reset at the current version, then every later commit follows, in
// order and gap-free, even when concurrent writers finish out of order.
func TestSubscribeResetThenLive(t *testing.T) {
	e := newEnv(t, nil)
	e.put("items", "a", `{"n":0}`)
	e.put("items", "b", `"x"`)
	c := e.dial()
	c.subscribe("items", nil, "")

	v := newView("items")
	r := c.expect(protocol.TypeReset)
	v.apply(t, r)
	if r.Version != 2 || len(r.Records) != 2 {
		t.Fatalf("reset at %d with %d records, want 2 and 2", r.Version, len(r.Records))
	}
	v.checkEqual(t, e.hub)

	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			col := e.collection("items")
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i%5)
				if _, err := col.Put(context.Background(), id, json.RawMessage(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for v.version < 2+writers*each {
		v.apply(t, c.expect(protocol.TypeCommit))
	}
	wg.Wait()
	if v.commits != writers*each || v.resets != 1 || v.catchUps != 0 {
		t.Fatalf("got %d commits, %d resets, %d catch-ups; want %d, 1, 0", v.commits, v.resets, v.catchUps, writers*each)
	}
	v.checkEqual(t, e.hub)
}

// TestTwoCollections: one connection carries several subscriptions, each
// in its own order.
func TestTwoCollections(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	c.subscribe("a", nil, "")
	c.subscribe("b", nil, "")
	views := map[string]*view{"a": newView("a"), "b": newView("b")}
	for range 2 {
		m := c.expect(protocol.TypeReset)
		views[m.Collection].apply(t, m)
	}
	for i := range 20 {
		e.put("a", fmt.Sprint("k", i%4), fmt.Sprint(i))
		if i%2 == 0 {
			e.put("b", fmt.Sprint("k", i%3), fmt.Sprint(i))
		}
	}
	for views["a"].version < 20 || views["b"].version < 10 {
		m := c.expect(protocol.TypeCommit)
		views[m.Collection].apply(t, m)
	}
	for _, v := range views {
		v.checkEqual(t, e.hub)
	}
}

// TestUnsubscribe: after an unsubscribe nothing more of that collection
// arrives; unsubscribing again is an error and the connection goes on.
func TestUnsubscribe(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	c.subscribe("a", nil, "")
	c.subscribe("b", nil, "")
	c.expect(protocol.TypeReset)
	c.expect(protocol.TypeReset)

	c.send(&protocol.UnsubscribeMessage{Collection: "a"})
	put := func(id, coll string) protocol.ClientMessage {
		return &protocol.CommitMessage{ID: protocol.StringID(id), Collection: coll, Ops: []protocol.Op{{Op: protocol.OpPut, ID: "x", Value: json.RawMessage(`1`)}}}
	}
	c.send(put("to-a", "a"))
	c.send(put("to-b", "b"))
	results, sawB := 0, false
	for results < 2 || !sawB {
		m := c.next()
		switch {
		case m.Type == protocol.TypeResult:
			results++
		case m.Type == protocol.TypeCommit && m.Collection == "b":
			sawB = true
		default:
			t.Fatalf("after unsubscribing from a, got %+v", m)
		}
	}

	c.send(&protocol.UnsubscribeMessage{Collection: "a"})
	c.expectError("", protocol.CodeNotFound)
	c.send(&protocol.UnsubscribeMessage{Collection: "never"})
	c.expectError("", protocol.CodeNotFound)

	e.put("b", "y", `2`)
	if m := c.expect(protocol.TypeCommit); m.Collection != "b" || m.Version != 2 {
		t.Fatalf("got %+v, want commit 2 of b", m)
	}
}

// TestResubscribeReplaces: subscribing again to a collection replaces the
// subscription, from the new cursor.
func TestResubscribeReplaces(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	c.subscribe("a", nil, "")
	c.expect(protocol.TypeReset)
	for i := range 3 {
		e.put("a", "k", fmt.Sprint(i))
		c.expect(protocol.TypeCommit)
	}

	c.subscribe("a", u64(1), "")
	for _, want := range []uint64{2, 3} {
		if m := c.expect(protocol.TypeCommit); m.Version != want {
			t.Fatalf("got commit %d, want %d", m.Version, want)
		}
	}
	c.subscribe("a", nil, "")
	if m := c.expect(protocol.TypeReset); m.Version != 3 {
		t.Fatalf("reset at %d, want 3", m.Version)
	}
	e.put("a", "k", `"last"`)
	if m := c.expect(protocol.TypeCommit); m.Version != 4 {
		t.Fatalf("got commit %d, want 4: one subscription, not two", m.Version)
	}
	// Exactly one: a commit through the connection is answered, and no
	// second copy of commit 4 came before it.
	c.send(&protocol.CommitMessage{ID: protocol.StringID("b1"), Collection: "b", Ops: []protocol.Op{{Op: protocol.OpDelete, ID: "none"}}})
	c.expectError("b1", protocol.CodeNotFound)
}

// TestMaxSubscriptions: past the limit a subscribe is refused with
// rate_limited; replacing one or unsubscribing first works.
func TestMaxSubscriptions(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{MaxSubscriptions: 2}})
	c := e.dial()
	c.subscribe("a", nil, "")
	c.subscribe("b", nil, "")
	c.expect(protocol.TypeReset)
	c.expect(protocol.TypeReset)
	c.subscribe("c", nil, "")
	m := c.expectError("", protocol.CodeRateLimited)
	if !strings.Contains(m.Message, `"c"`) {
		t.Errorf("error message %q does not name the collection", m.Message)
	}
	c.subscribe("a", nil, "")
	if m := c.expect(protocol.TypeReset); m.Collection != "a" {
		t.Fatalf("got a reset of %q, want a", m.Collection)
	}
	c.send(&protocol.UnsubscribeMessage{Collection: "b"})
	c.subscribe("c", nil, "")
	if m := c.expect(protocol.TypeReset); m.Collection != "c" {
		t.Fatalf("got a reset of %q, want c", m.Collection)
	}
}

// TestAckErrors: an ack must name a subscribed collection and not be
// ahead of what was sent; a valid ack gets no answer.
func TestAckErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.put("a", "k", `1`)
	c := e.dial()
	c.send(&protocol.AckMessage{Collection: "a", Version: 1})
	c.expectError("", protocol.CodeNotFound)
	c.subscribe("a", nil, "")
	c.expect(protocol.TypeReset)
	c.send(&protocol.AckMessage{Collection: "a", Version: 2})
	c.expectError("", protocol.CodeBadRequest)
	c.send(&protocol.AckMessage{Collection: "a", Version: 1})
	c.send(&protocol.AckMessage{Collection: "a", Version: 0})
	e.put("a", "k", `2`)
	if m := c.expect(protocol.TypeCommit); m.Version != 2 {
		t.Fatalf("got %+v, want commit 2 (and no answer to valid acks)", m)
	}
}

// TestHubCloseClosesConnections: when the hub closes, subscriptions end and
// their connections close with 1001 (going away).
func TestHubCloseClosesConnections(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	c.subscribe("a", nil, "")
	c.subscribe("b", u64(0), "")
	c.expect(protocol.TypeReset)
	e.hub.Close()
	err := c.expectClosed(gws.StatusGoingAway)
	if !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("close reason in %v does not say the server is shutting down", err)
	}
	eventually(t, "the connection is gone", func() bool { return e.h.Connections() == 0 })

	// A connection made after the hub closed is closed at its first
	// subscribe.
	c2 := e.dial()
	c2.subscribe("a", nil, "")
	c2.expectClosed(gws.StatusGoingAway)
}
