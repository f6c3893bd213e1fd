package natskv_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestClusterScanLeaderLoss: a store whose record index is far smaller
// than its collection answers snapshots and old catch-ups by reading
// every record from the stream with a consumer (which the cluster's meta
// leader makes). On a three-node cluster with Replicas 3, while another
// store keeps committing (each commit a new record), the meta leader's
// server and then the stream leader's are shut down and started again:
// every snapshot and catch-up is still answered, and whole — as many
// records as the version, since each commit adds one.
func TestClusterScanLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	cl := newCluster(t)
	ctx := t.Context()
	natsOpts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	w := openStore(t, cl.urls(), natskv.Options{Replicas: 3, Timeout: 3 * time.Second, NATSOptions: natsOpts, Logger: testLogger(t)})
	r := openStore(t, cl.urls(), natskv.Options{Replicas: 3, Timeout: 10 * time.Second, NATSOptions: natsOpts, Logger: testLogger(t), RecordIndex: 20})
	const coll = "scanned"
	waitPlaced(t, w, coll)
	var (
		stopped        atomic.Bool
		wg             sync.WaitGroup
		commits, reads atomic.Int64
		mu             sync.Mutex
		readErrs       []error
		applyFailed    atomic.Int64
	)
	wg.Go(func() {
		for i := 0; !stopped.Load(); i++ {
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, err := w.Apply(actx, coll, []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprintf("r-%05d", i), Value: []byte(fmt.Sprint(i))}}, nil)
			cancel()
			if err != nil {
				applyFailed.Add(1)
				continue
			}
			commits.Add(1)
		}
	})
	// Every read scans: the collection is larger than the index from
	// the first one on.
	waitFor := func(what string, cond func() bool) {
		eventually(t, what, func() (bool, string) {
			return cond(), fmt.Sprintf("%d commits, %d reads", commits.Load(), reads.Load())
		})
	}
	waitFor("200 commits", func() bool { return commits.Load() >= 200 })
	fail := func(err error) {
		t.Logf("read failed: %v", err)
		mu.Lock()
		readErrs = append(readErrs, err)
		mu.Unlock()
	}
	wg.Go(func() {
		for n := 0; !stopped.Load(); n++ {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			if n%2 == 0 {
				snap, err := r.Snapshot(rctx, coll)
				switch {
				case err != nil:
					fail(fmt.Errorf("snapshot: %w", err))
				case uint64(len(snap.Records)) != snap.Version:
					fail(fmt.Errorf("snapshot at version %d holds %d records", snap.Version, len(snap.Records)))
				}
			} else {
				cu, err := r.CatchUp(rctx, coll, 1)
				switch {
				case err != nil:
					fail(fmt.Errorf("catch-up: %w", err))
				case cu.Version > 0 && uint64(len(cu.Records)) != cu.Version-1:
					fail(fmt.Errorf("catch-up from 1 at version %d holds %d records", cu.Version, len(cu.Records)))
				}
			}
			cancel()
			reads.Add(1)
		}
	})
	waitFor("4 reads", func() bool { return reads.Load() >= 4 })
	for _, which := range []string{"meta", "stream"} {
		node := -1
		if which == "meta" {
			node = cl.metaLeader()
		} else {
			node = cl.streamLeader(collStream(coll))
		}
		t.Logf("%s: stopping node %d", which, node)
		cl.stop(node)
		base := reads.Load()
		waitFor("3 reads without the "+which+" leader", func() bool { return reads.Load() >= base+3 })
		t.Logf("%s: starting node %d", which, node)
		cl.start(node)
		cl.waitJetStream(node)
		t.Logf("%s: node %d back", which, node)
		base = reads.Load()
		waitFor("3 reads after the restart", func() bool { return reads.Load() >= base+3 })
	}
	stopped.Store(true)
	wg.Wait()
	t.Logf("%d commits (%d Applies failed), %d reads, %d records scanned", commits.Load(), applyFailed.Load(), reads.Load(), r.RecordsScanned())
	for _, err := range readErrs {
		t.Error(err)
	}
	if r.RecordsScanned() < uint64(200*reads.Load()) {
		t.Fatalf("%d records scanned in %d reads: some read did not scan the whole collection", r.RecordsScanned(), reads.Load())
	}
}
