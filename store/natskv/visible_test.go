package natskv_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestClusterVisibleEverywhere: on a three-node cluster with Replicas 3,
// a store on each node watches a collection never written that store a
// (node 0) then commits to, first one commit at a time, then from eight
// writers at once, then in commits of several ops. Every store's watchers
// get every commit exactly once, in version order, each with the ops
// acknowledged at its version, the writer's store included: a commit made
// on one node is visible on all of them, in order. (How soon: 'viewsync
// bench visibility'.)
func TestClusterVisibleEverywhere(t *testing.T) {
	cl := newCluster(t)
	ctx := t.Context()
	var stores []*natskv.Store
	for i := range 3 {
		url := fmt.Sprintf("nats://127.0.0.1:%d", cl.opts[i].Port)
		stores = append(stores, openStore(t, url, natskv.Options{Replicas: 3, Logger: testLogger(t)}))
	}
	const coll = "visible"
	var epoch string
	recs := make([]*recorder, len(stores))
	for i, s := range stores {
		h, err := s.Head(ctx, coll)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			epoch = h.Epoch
		} else if h.Epoch != epoch || h.Version != 0 {
			t.Fatalf("store %d: Head = %+v; store 0 said %s:0", i, h, epoch)
		}
		recs[i] = newRecorder()
		defer s.Watch(recs[i].add)()
	}

	// acked maps each acknowledged version to the ids its commit wrote.
	var (
		mu    sync.Mutex
		acked = make(map[uint64][]string)
	)
	commit := func(ids ...string) {
		ops := make([]protocol.Op, len(ids))
		for k, id := range ids {
			ops[k] = protocol.Op{Op: protocol.OpPut, ID: id, Value: []byte(fmt.Sprintf("%q", id))}
		}
		ap, err := stores[0].Apply(ctx, coll, ops, nil)
		if err != nil {
			t.Errorf("Apply(%v): %v", ids, err)
			return
		}
		if ap.Epoch != epoch {
			t.Errorf("Apply(%v) in epoch %s; the collection read %s", ids, ap.Epoch, epoch)
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := acked[ap.Commit.Version]; ok {
			t.Errorf("version %d acknowledged twice", ap.Commit.Version)
		}
		acked[ap.Commit.Version] = ids
	}
	// One at a time.
	for n := range 50 {
		commit(fmt.Sprintf("one-%d", n))
	}
	// Eight writers at once.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := range 50 {
				commit(fmt.Sprintf("w%d-%d", w, n))
			}
		})
	}
	wg.Wait()
	// Several ops per commit.
	for n := range 20 {
		commit(fmt.Sprintf("m%d-a", n), fmt.Sprintf("m%d-b", n), fmt.Sprintf("m%d-c", n))
	}
	if t.Failed() {
		return
	}
	total := len(acked)
	for v := uint64(1); v <= uint64(total); v++ {
		if _, ok := acked[v]; !ok {
			t.Fatalf("%d commits acknowledged, none at version %d", total, v)
		}
	}

	for i, rec := range recs {
		what := fmt.Sprintf("store %d's watch to see %d commits", i, total)
		evs := rec.waitFor(t, what, func(evs []store.Event) bool {
			n := 0
			for _, ev := range evs {
				if ev.Collection == coll {
					n++
				}
			}
			return n >= total
		})
		v := uint64(0)
		for _, ev := range evs {
			if ev.Collection != coll {
				continue
			}
			v++
			if ev.Commit == nil || ev.Epoch != epoch || ev.Version != v || ev.Commit.Version != v {
				t.Fatalf("store %d: event %d = %+v (commit %v); want commit %d in %s", i, v, ev, ev.Commit, v, epoch)
			}
			ids := acked[v]
			if len(ev.Commit.Ops) != len(ids) {
				t.Fatalf("store %d: commit %d has %d ops; %d were acknowledged", i, v, len(ev.Commit.Ops), len(ids))
			}
			for k, op := range ev.Commit.Ops {
				if op.ID != ids[k] || string(op.Value) != fmt.Sprintf("%q", ids[k]) {
					t.Fatalf("store %d: commit %d op %d = %s=%s; acknowledged %s", i, v, k, op.ID, op.Value, ids[k])
				}
			}
		}
		if v != uint64(total) {
			t.Fatalf("store %d: %d commits; want %d", i, v, total)
		}
		t.Logf("store %d saw all %d commits in order", i, total)
	}
}
