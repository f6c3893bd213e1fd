package natskv_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// freePorts returns n loopback ports free at the time of the call. They
// are taken below the usual ephemeral range (32768 and up): while a node
// is down, an outgoing connection could otherwise get its port as a local
// port, and the node could not listen on it again.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for attempt := 0; len(ports) < n; attempt++ {
		if attempt == 1000 {
			t.Fatal("no free port")
		}
		p := 10000 + rand.IntN(22000)
		if slices.Contains(ports, p) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports
}

// cluster is three in-process JetStream servers routed on loopback.
type cluster struct {
	t       testing.TB
	opts    []*server.Options
	mu      sync.Mutex
	servers []*server.Server
}

func newCluster(t testing.TB) *cluster {
	ports := freePorts(t, 6)
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
	}
	c := &cluster{t: t, servers: make([]*server.Server, 3)}
	dir := t.TempDir()
	for i := range 3 {
		o := serverOptions(filepath.Join(dir, fmt.Sprintf("n%d", i)))
		o.ServerName = fmt.Sprintf("n%d", i)
		o.Port = ports[i]
		o.Cluster = server.ClusterOpts{Name: "vs", Host: "127.0.0.1", Port: ports[3+i]}
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.opts = append(c.opts, o)
	}
	for i := range 3 {
		c.start(i)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.servers {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	for i := range 3 {
		c.waitJetStream(i)
	}
	return c
}

// start starts node i (again).
func (c *cluster) start(i int) {
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatal(err)
	}
	s.Start()
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	if !s.ReadyForConnections(30 * time.Second) {
		c.t.Fatalf("node %d not ready", i)
	}
}

// waitJetStream waits until node i's JetStream is part of a cluster with a
// meta leader, and the meta leader counts every running node as an online
// peer: until it does, a stream with Replicas 3 cannot be placed.
func (c *cluster) waitJetStream(i int) {
	eventually(c.t, fmt.Sprintf("node %d in the JetStream cluster", i), func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		s := c.servers[i]
		return s.JetStreamIsClustered() && s.JetStreamIsCurrent() && c.peersOnlineLocked(), "not yet"
	})
}

// peersOnlineLocked reports whether the meta leader sees every running
// node online with JetStream.
func (c *cluster) peersOnlineLocked() bool {
	running := 0
	for _, s := range c.servers {
		if s != nil {
			running++
		}
	}
	for _, s := range c.servers {
		if s != nil && s.JetStreamIsLeader() {
			return len(s.JetStreamClusterPeers()) >= running
		}
	}
	return false
}

// stop shuts node i down.
func (c *cluster) stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	s.Shutdown()
	s.WaitForShutdown()
}

// urls lists the client URLs of every node.
func (c *cluster) urls() string {
	var u []string
	for _, o := range c.opts {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(u, ",")
}

// index returns the node named name.
func (c *cluster) index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	c.t.Fatalf("no node %q", name)
	return -1
}

// TestClusterLeaderLoss: on a three-node cluster with Replicas 3, writers
// keep committing while the stream's leader is shut down and restarted.
// Every acknowledged commit is in the log afterwards, at the version it
// was acknowledged with, and the versions are contiguous.
func TestClusterLeaderLoss(t *testing.T) {
	cl := newCluster(t)
	natsOpts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	s := openStore(t, cl.urls(), natskv.Options{Replicas: 3, Timeout: 3 * time.Second, NATSOptions: natsOpts, Logger: testLogger(t)})
	ctx := t.Context()
	const coll = "c"
	if _, err := s.Head(ctx, coll); err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		acked   = make(map[string]uint64)
		failed  atomic.Int64
		stopped atomic.Bool
		wg      sync.WaitGroup
		count   atomic.Int64
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stopped.Load(); i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				a, err := s.Apply(actx, coll, []protocol.Op{{Op: protocol.OpPut, ID: id, Value: []byte(fmt.Sprint(i))}}, nil)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				acked[id] = a.Commit.Version
				mu.Unlock()
				count.Add(1)
			}
		})
	}
	waitCommits := func(n int64) {
		for count.Load() < n && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCommits(100)

	// Shut the stream's leader down mid-writes, let the others go on,
	// then bring it back with its data.
	nc, err := nats.Connect(cl.urls(), natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, collStream("c"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream is not replicated: replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	leader := cl.index(info.Cluster.Leader)
	cl.stop(leader)
	before := count.Load()
	waitCommits(before + 100)
	cl.start(leader)
	cl.waitJetStream(leader)
	waitCommits(count.Load() + 100)
	stopped.Store(true)
	wg.Wait()
	t.Logf("%d commits acknowledged, %d Applies failed across the leader change", count.Load(), failed.Load())

	// A fresh store reads the log from the restarted cluster.
	fresh := openStore(t, cl.urls(), natskv.Options{Replicas: 3, NATSOptions: natsOpts})
	var log []protocol.Commit
	for {
		ch, err := fresh.Changes(ctx, coll, uint64(len(log)), store.Page{Commits: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.Commits) == 0 {
			if ch.Version != uint64(len(log)) {
				t.Fatalf("log ends at %d, head %d", len(log), ch.Version)
			}
			break
		}
		log = append(log, ch.Commits...)
	}
	inLog := make(map[string]uint64, len(log))
	for i, c := range log {
		if c.Version != uint64(i+1) {
			t.Fatalf("log entry %d has version %d: versions not contiguous", i, c.Version)
		}
		inLog[c.Ops[0].ID] = c.Version
	}
	for id, v := range acked {
		if inLog[id] != v {
			t.Fatalf("commit %q acknowledged at version %d, the log has it at %d (0: lost)", id, v, inLog[id])
		}
	}
	if len(log) < len(acked) {
		t.Fatalf("log has %d commits, %d were acknowledged", len(log), len(acked))
	}
	if _, err := fresh.Get(ctx, coll, "w0-0"); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
}

// testLogger logs the store's warnings to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// metaLeader returns the node that leads the cluster's meta layer.
func (c *cluster) metaLeader() int {
	return c.leader("meta", func(s *server.Server) bool { return s.JetStreamIsLeader() })
}

// streamLeader returns the node that leads stream.
func (c *cluster) streamLeader(stream string) int {
	return c.leader("stream", func(s *server.Server) bool {
		return s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
	})
}

// leader returns the running node that leads says leads, once one does.
func (c *cluster) leader(what string, leads func(*server.Server) bool) int {
	node := -1
	eventually(c.t, "a "+what+" leader", func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, s := range c.servers {
			if s != nil && leads(s) {
				node = i
				return true, ""
			}
		}
		return false, "none"
	})
	return node
}

// waitPlaced waits until s has made coll's stream: the first stream
// creation can find a new cluster not quite ready ("no suitable peers for
// placement").
func waitPlaced(tb testing.TB, s *natskv.Store, coll string) {
	tb.Helper()
	eventually(tb, "the stream of "+coll+" placed", func() (bool, string) {
		_, err := s.Head(tb.Context(), coll)
		return err == nil, fmt.Sprint(err)
	})
}
