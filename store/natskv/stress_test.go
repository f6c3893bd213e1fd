package natskv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// stressDuration is how long TestClusterStress disturbs the cluster;
// VS_STRESS_SECONDS overrides it.
func stressDuration(t *testing.T) time.Duration {
	if s := os.Getenv("VS_STRESS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("VS_STRESS_SECONDS=%q: %v", s, err)
		}
		return time.Duration(n) * time.Second
	}
	return 15 * time.Second
}

// stressOutcome is what one Apply of TestClusterStress returned.
type stressOutcome struct {
	tag     string // the id of the record only this Apply writes
	ops     []protocol.Op
	version uint64 // acknowledged version, 0 unless acked
	// refused: the Apply failed a precondition or a delete found nothing,
	// so its commit must not be in the log.
	refused bool
}

// TestClusterStress: three stores, each connected to another node of a
// three-node cluster (Replicas 3), commit concurrently — unconditional
// puts, guarded read-modify-writes of shared records, deletes, several ops
// per commit — while the stream's leader is made to step down again and
// again and nodes are shut down and restarted; two of the stores keep the
// ids and versions of 8 records only (Options.RecordIndex), so that their
// commits check and replace records they read from the stream. Afterwards a fresh store
// reads the log: versions are contiguous from 1 to the head, every
// acknowledged commit is there at its version with its ops, no commit is
// there twice, no refused commit is there at all, and the snapshot is what
// replaying the log gives.
func TestClusterStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	cl := newCluster(t)
	ctx := t.Context()
	const coll = "stress"
	urls := cl.nodeURLs()

	// Store i connects to node i first and fails over to the others.
	var stores []*natskv.Store
	for i := range 3 {
		natsOpts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), nats.DontRandomize()}
		order := append([]string{urls[i]}, append(append([]string(nil), urls[:i]...), urls[i+1:]...)...)
		opts := natskv.Options{
			Replicas:    3,
			Timeout:     2 * time.Second,
			NATSOptions: natsOpts,
			Logger:      testLogger(t),
		}
		if i > 0 {
			// Two of the stores keep the ids and versions of a few
			// records only: their commits check and replace records
			// they read from the stream, through the failovers.
			opts.RecordIndex, opts.RecordCache = 8, 256
		}
		s := openStore(t, joinURLs(order), opts)
		// The first stream creation can find the cluster not quite ready
		// ("no suitable peers for placement").
		for deadline := time.Now().Add(30 * time.Second); ; {
			_, err := s.Head(ctx, coll)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		stores = append(stores, s)
	}

	var (
		mu       sync.Mutex
		outcomes []*stressOutcome
		acked    atomic.Int64
		refused  atomic.Int64
		unknown  atomic.Int64
		stopped  atomic.Bool
		wg       sync.WaitGroup
	)
	const shared = 4 // guarded records k0 … k3
	for si, s := range stores {
		for w := range 3 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(si), uint64(w)))
				var mine []string // tags of this writer's acknowledged commits, not deleted
				for n := 0; !stopped.Load(); n++ {
					tag := fmt.Sprintf("t%d-%d-%d", si, w, n)
					ops := []protocol.Op{{Op: protocol.OpPut, ID: tag, Value: []byte(strconv.Itoa(n))}}
					var ifs map[string]uint64
					switch k := rng.IntN(10); {
					case k < 4:
						// A guarded read-modify-write of a shared record.
						id := fmt.Sprintf("k%d", rng.IntN(shared))
						var have uint64
						val := 0
						r, err := s.Get(ctx, coll, id)
						switch {
						case err == nil:
							have = r.Version
							val, _ = strconv.Atoi(string(r.Value))
						case !errors.Is(err, store.ErrNotFound):
							t.Errorf("Get(%s): %v", id, err)
							return
						}
						ifs = map[string]uint64{id: have}
						ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: id, Value: []byte(strconv.Itoa(val + 1))})
					case k < 6 && len(mine) > 0:
						// Delete one of this writer's earlier records.
						i := rng.IntN(len(mine))
						ops = append(ops, protocol.Op{Op: protocol.OpDelete, ID: mine[i]})
						mine = append(mine[:i], mine[i+1:]...)
					case k < 7:
						// A larger commit.
						for j := range 1 + rng.IntN(5) {
							ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: fmt.Sprintf("%s.%d", tag, j), Value: []byte(`"x"`)})
						}
					}
					o := &stressOutcome{tag: tag, ops: ops}
					actx, cancel := context.WithTimeout(ctx, 30*time.Second)
					a, err := s.Apply(actx, coll, ops, ifs)
					cancel()
					switch {
					case err == nil:
						o.version = a.Commit.Version
						mine = append(mine, tag)
						acked.Add(1)
					case errors.Is(err, store.ErrPrecondition):
						o.refused = true
						refused.Add(1)
					case errors.Is(err, store.ErrNotFound):
						// Only this writer deletes its records, and only
						// those its store acknowledged.
						t.Errorf("Apply(%s): %v", tag, err)
						o.refused = true
					default:
						// The outcome is unknown (the store gave up).
						t.Logf("Apply(%s): %v", tag, err)
						unknown.Add(1)
					}
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
				}
			})
		}
	}
	waitFor := func(what string, n int64) {
		deadline := time.Now().Add(60 * time.Second)
		for acked.Load() < n {
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatalf("waiting for %s: %d commits acknowledged", what, acked.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the first commits", 50)

	// Disturb the cluster: step the stream's leader down every few hundred
	// milliseconds and, every few seconds, shut a node down (the leader
	// or another) and bring it back a moment later with its data.
	nc, err := nats.Connect(cl.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := collStream(coll)
	leader := func() int {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err := js.Stream(ictx, stream)
		if err != nil {
			return -1
		}
		info := st.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return -1
		}
		return cl.index(info.Cluster.Leader)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var stepdowns, kills int
	down := -1
	end := time.Now().Add(stressDuration(t))
	nextKill := time.Now().Add(2 * time.Second)
	for time.Now().Before(end) && ctx.Err() == nil {
		switch {
		case down >= 0 && time.Now().After(nextKill.Add(-time.Second)):
			cl.start(down)
			cl.waitJetStream(down)
			down = -1
		case down < 0 && time.Now().After(nextKill):
			victim := rng.IntN(3)
			if l := leader(); l >= 0 && rng.IntN(2) == 0 {
				victim = l
			}
			cl.stop(victim)
			down = victim
			kills++
			nextKill = time.Now().Add(time.Duration(2000+rng.IntN(2000)) * time.Millisecond)
		default:
			resp, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, time.Second)
			if err == nil && bytes.Contains(resp.Data, []byte(`"success":true`)) {
				stepdowns++
			}
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
	}
	if down >= 0 {
		cl.start(down)
		cl.waitJetStream(down)
	}
	before := acked.Load()
	waitFor("commits after the disturbance", before+20)
	stopped.Store(true)
	wg.Wait()
	t.Logf("%d leader stepdowns, %d node restarts; %d commits acknowledged, %d refused, %d unknown",
		stepdowns, kills, acked.Load(), refused.Load(), unknown.Load())
	if t.Failed() {
		return
	}

	// A fresh store reads what the cluster holds, once it holds every
	// acknowledged commit.
	var maxAcked uint64
	for _, o := range outcomes {
		maxAcked = max(maxAcked, o.version)
	}
	fresh := openStore(t, cl.urls(), natskv.Options{Replicas: 3, NATSOptions: []nats.Option{nats.MaxReconnects(-1)}})
	deadline := time.Now().Add(60 * time.Second)
	for {
		h, err := fresh.Head(ctx, coll)
		if err != nil {
			t.Fatal(err)
		}
		if h.Version >= maxAcked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fresh store at version %d, commits were acknowledged up to %d", h.Version, maxAcked)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkStressLog(t, fresh, coll, outcomes)

	// The writers' stores, once they have followed the stream to the
	// same head, hold the same records.
	want, err := fresh.Snapshot(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		for {
			snap, err := s.Snapshot(ctx, coll)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Version >= want.Version {
				if snap.Epoch != want.Epoch || snap.Version != want.Version || !slices.EqualFunc(snap.Records, want.Records, func(a, b protocol.Record) bool {
					return a.ID == b.ID && a.Version == b.Version && bytes.Equal(a.Value, b.Value)
				}) {
					t.Errorf("store %d: snapshot at %s/%d with %d records, the fresh store's at %s/%d with %d", i, snap.Epoch, snap.Version, len(snap.Records), want.Epoch, want.Version, len(want.Records))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("store %d at version %d, the stream at %d", i, snap.Version, want.Version)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// checkStressLog checks the log and snapshot s holds against the Applies'
// outcomes.
func checkStressLog(t *testing.T, s store.Store, coll string, outcomes []*stressOutcome) {
	t.Helper()
	ctx := t.Context()
	snap, err := s.Snapshot(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Changes(ctx, coll, 0, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != snap.Version || ch.Epoch != snap.Epoch {
		t.Fatalf("Changes at %s/%d, Snapshot at %s/%d", ch.Epoch, ch.Version, snap.Epoch, snap.Version)
	}
	log := ch.Commits
	if uint64(len(log)) != ch.Version {
		t.Fatalf("log holds %d commits, head is %d", len(log), ch.Version)
	}
	tags := make(map[string]uint64) // tag → version of the commit that wrote it
	model := make(map[string]protocol.Record)
	for i, c := range log {
		if c.Version != uint64(i+1) {
			t.Fatalf("log entry %d has version %d: versions are not contiguous", i, c.Version)
		}
		if len(c.Ops) == 0 {
			t.Fatalf("commit %d has no ops", c.Version)
		}
		tag := c.Ops[0].ID
		if v, dup := tags[tag]; dup {
			t.Errorf("commit %s is in the log twice: at %d and %d", tag, v, c.Version)
		}
		tags[tag] = c.Version
		for _, op := range c.Ops {
			switch op.Op {
			case protocol.OpPut:
				model[op.ID] = protocol.Record{ID: op.ID, Value: op.Value, Version: c.Version}
			case protocol.OpDelete:
				if _, ok := model[op.ID]; !ok {
					t.Errorf("commit %d deletes %q, which does not exist", c.Version, op.ID)
				}
				delete(model, op.ID)
			}
		}
	}
	var lost, refusedIn int
	for _, o := range outcomes {
		v, in := tags[o.tag]
		switch {
		case o.version != 0 && v != o.version:
			lost++
			if lost <= 10 {
				t.Errorf("commit %s acknowledged at version %d, the log has it at %d (0: not there)", o.tag, o.version, v)
				if o.version <= uint64(len(log)) {
					t.Logf("  the log's commit %d: %s", o.version, opsString(log[o.version-1].Ops))
				}
			}
		case o.version != 0 && !sameOps(log[v-1].Ops, o.ops):
			t.Errorf("commit %s at version %d: the log has ops %s, the Apply had %s", o.tag, v, opsString(log[v-1].Ops), opsString(o.ops))
		case o.refused && in:
			refusedIn++
			if refusedIn <= 10 {
				t.Errorf("commit %s was refused, yet the log has it at version %d", o.tag, v)
			}
		}
	}
	if lost > 0 || refusedIn > 0 {
		t.Errorf("%d acknowledged commits lost or moved, %d refused commits committed", lost, refusedIn)
	}
	if len(snap.Records) != len(model) {
		t.Errorf("snapshot has %d records, replaying the log gives %d", len(snap.Records), len(model))
	}
	for _, r := range snap.Records {
		m, ok := model[r.ID]
		if !ok || m.Version != r.Version || !bytes.Equal(m.Value, r.Value) {
			t.Errorf("snapshot record %+v, replaying the log gives %+v", r, m)
		}
	}
	t.Logf("log: %d commits", len(log))
}

func sameOps(a, b []protocol.Op) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Op != b[i].Op || a[i].ID != b[i].ID || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func opsString(ops []protocol.Op) string {
	b, _ := json.Marshal(ops)
	return string(b)
}

// nodeURLs lists the client URL of each node.
func (c *cluster) nodeURLs() []string {
	var u []string
	for _, o := range c.opts {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return u
}

func joinURLs(u []string) string {
	s := ""
	for i, x := range u {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}
