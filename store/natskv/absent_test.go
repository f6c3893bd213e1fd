package natskv_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// jsCounts is what the JetStream API reports of the account: streams and
// consumers, KV buckets (streams named KV_…) among them.
type jsCounts struct {
	streams, consumers, buckets int
	names                       []string
}

// countJetStream asks the cluster how many streams, consumers and KV
// buckets the account holds.
func countJetStream(t *testing.T, js jetstream.JetStream) jsCounts {
	t.Helper()
	ctx := t.Context()
	var c jsCounts
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		c.names = append(c.names, n)
		c.streams++
		if len(n) > 3 && n[:3] == "KV_" {
			c.buckets++
		}
		st, err := js.Stream(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for range st.ListConsumers(ctx).Info() {
			c.consumers++
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Streams != c.streams || info.Consumers != c.consumers {
		t.Fatalf("account info counts %d streams and %d consumers; the listings %d and %d", info.Streams, info.Consumers, c.streams, c.consumers)
	}
	return c
}

// TestClusterReadsCreateNothing: on a three-node cluster with Replicas 3,
// reading collections never written (Head, Get, Snapshot, Changes,
// CatchUp, a failed conditional Apply) and subscribing to one through a
// hub, from two stores on different nodes, creates no stream, consumer or
// KV bucket; both answer an empty collection at version 0 in one epoch,
// the same on both stores, on every read and after reopening. The first
// write, on the other node, creates the stream in that epoch and reaches
// the subscription made before it, as a commit.
func TestClusterReadsCreateNothing(t *testing.T) {
	cl := newCluster(t)
	ctx := t.Context()
	nc, err := nats.Connect(cl.urls())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	url := func(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", cl.opts[i].Port) }
	a := openStore(t, url(0), natskv.Options{Replicas: 3, Logger: testLogger(t)})
	b := openStore(t, url(1), natskv.Options{Replicas: 3, Logger: testLogger(t)})
	before := countJetStream(t, js)

	ghosts := []string{"ghost", "ghost.with.dots", "g-2"}
	var epochs []string
	read := func(s *natskv.Store, name string) protocol.Head {
		t.Helper()
		h, err := s.Head(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if h.Version != 0 || h.Epoch == "" {
			t.Fatalf("Head(%s) = %+v; want version 0 in an epoch", name, h)
		}
		if _, err := s.Get(ctx, name, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(%s, x): %v; want ErrNotFound", name, err)
		}
		snap, err := s.Snapshot(ctx, name)
		if err != nil || snap.Records == nil || len(snap.Records) != 0 || snap.Version != 0 || snap.Epoch != h.Epoch {
			t.Fatalf("Snapshot(%s) = %+v, %v; want empty at %s:0", name, snap, err, h.Epoch)
		}
		ch, err := s.Changes(ctx, name, 0, store.Page{Commits: 10})
		if err != nil || len(ch.Commits) != 0 || ch.Version != 0 || ch.Epoch != h.Epoch {
			t.Fatalf("Changes(%s) = %+v, %v", name, ch, err)
		}
		cu, err := s.CatchUp(ctx, name, 0)
		if err != nil || len(cu.Records) != 0 || len(cu.Deleted) != 0 || cu.Version != 0 || cu.Epoch != h.Epoch {
			t.Fatalf("CatchUp(%s) = %+v, %v", name, cu, err)
		}
		// A commit whose precondition fails writes nothing.
		_, err = s.Apply(ctx, name, []protocol.Op{{Op: protocol.OpPut, ID: "x", Value: []byte(`1`)}}, map[string]uint64{"x": 5})
		if !errors.Is(err, store.ErrPrecondition) {
			t.Fatalf("Apply(%s) with a failing precondition: %v", name, err)
		}
		return h
	}
	for _, name := range ghosts {
		ha, hb := read(a, name), read(b, name)
		if ha != hb {
			t.Fatalf("%s: store a reads %+v, store b %+v: want one epoch", name, ha, hb)
		}
		if again := read(a, name); again != ha {
			t.Fatalf("%s: read %+v, then %+v", name, ha, again)
		}
		epochs = append(epochs, ha.Epoch)
	}
	if epochs[0] == epochs[1] || epochs[0] == epochs[2] || epochs[1] == epochs[2] {
		t.Fatalf("collections share an epoch: %v", epochs)
	}

	// A subscription through a hub on b, at the cursor read.
	hub, err := viewsync.New(b)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	coll, err := hub.Collection(ghosts[0])
	if err != nil {
		t.Fatal(err)
	}
	sub, err := coll.Subscribe(&viewsync.Cursor{Epoch: epochs[0], Version: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev, err := sub.TryNext(); err == nil {
		t.Fatalf("subscription at %s:0 of an empty collection delivered %v", epochs[0], ev.Kind)
	}

	// Reopened, a store reads the same epoch.
	c := openStore(t, url(2), natskv.Options{Replicas: 3})
	if h := read(c, ghosts[0]); h.Epoch != epochs[0] {
		t.Fatalf("a store opened later reads %+v; want epoch %s", h, epochs[0])
	}
	consumers := before.consumers
	if testShared() {
		consumers++ // the feed of store c, made when it opened
	}
	if after := countJetStream(t, js); after.streams != before.streams || after.consumers != consumers || after.buckets != before.buckets {
		t.Fatalf("reads of collections never written created streams %v (%d consumers, %d buckets); before: %v (%d, %d)",
			after.names, after.consumers, after.buckets, before.names, before.consumers, before.buckets)
	}

	// The first write, on node 0, keeps the epoch and reaches b's hub
	// subscription, made before the stream existed.
	ap, err := a.Apply(ctx, ghosts[0], []protocol.Op{{Op: protocol.OpPut, ID: "p1", Value: []byte(`{"n":1}`)}}, map[string]uint64{"p1": 0})
	if err != nil {
		t.Fatal(err)
	}
	if ap.Epoch != epochs[0] || ap.Commit.Version != 1 {
		t.Fatalf("first commit = %s:%d; want %s:1", ap.Epoch, ap.Commit.Version, epochs[0])
	}
	if _, err := a.Apply(ctx, ghosts[0], []protocol.Op{{Op: protocol.OpPut, ID: "p2", Value: []byte(`2`)}}, nil); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for len(got) < 2 {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind != fanout.EventCommits {
			t.Fatalf("subscription got a %v; want the commits", ev.Kind)
		}
		for _, f := range ev.Frames {
			if f.Epoch != epochs[0] {
				t.Fatalf("commit %d in epoch %s; want %s", f.Commit.Version, f.Epoch, epochs[0])
			}
			got = append(got, f.Commit.Version)
		}
	}
	if got[0] != 1 || got[1] != 2 || len(got) != 2 {
		t.Fatalf("subscription got commits %v; want [1 2]", got)
	}
	for _, s := range []*natskv.Store{b, c} {
		var rec protocol.Record
		for ctx.Err() == nil {
			if rec, err = s.Get(ctx, ghosts[0], "p1"); !errors.Is(err, store.ErrNotFound) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if rec.Version != 1 || string(rec.Value) != `{"n":1}` {
			t.Fatalf("Get(p1) on another store = %+v, %v", rec, err)
		}
	}
	after := countJetStream(t, js)
	if want := before.streams + 1; after.streams != want && !testShared() {
		t.Fatalf("after the first write: streams %v; want one more than %v", after.names, before.names)
	}
	if testShared() {
		// One stream for all, made when the stores opened: only the
		// written collection has messages in it.
		if after.streams != before.streams {
			t.Fatalf("after the first write: streams %v; want %v", after.names, before.names)
		}
		for i, name := range ghosts {
			if _, last := collTip(ctx, t, nc, name); (last != 0) != (i == 0) {
				t.Fatalf("after the first write, %s's last message is at %d", name, last)
			}
		}
	}
	// Only the written collection has a stream; the others still none.
	for _, name := range ghosts[1:] {
		if h := read(b, name); h.Version != 0 {
			t.Fatalf("Head(%s) = %+v", name, h)
		}
	}
	if again := countJetStream(t, js); again.streams != after.streams {
		t.Fatalf("streams %v after reading again; were %v", again.names, after.names)
	}
}
