package bench

// A three-node cluster for the scenarios that measure the NATS engine
// (--nats-cluster): three NATS JetStream servers, each the hidden
// 'viewsync bench nats-node' (an in-process server in a process of its
// own, so that its memory and CPU time can be read from /proc), routed to
// each other on loopback, and three 'viewsync serve --engine nats
// --nats-replicas 3' nodes, node i connected to NATS server i.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/internal/cliflag"
)

// clusterSize is how many NATS servers a spawned cluster has, and its
// viewsync nodes unless --nats-nodes says more.
const clusterSize = 3

// maxClusterNodes bounds --nats-nodes.
const maxClusterNodes = 32

// benchCluster is a spawned three-node cluster.
type benchCluster struct {
	// natsNodes are the NATS servers; natsURLs their client URLs.
	natsNodes []*spawnedServer
	natsURLs  []string
	// nodes are the viewsync nodes, node i on NATS server i mod 3.
	nodes []*spawnedServer
}

// startCluster starts the NATS servers, waits until JetStream can place
// a stream on all three, then starts nodes viewsync nodes (their
// connection limits raised to fit conns each, extra added to their
// command lines).
func startCluster(ctx context.Context, program func() (string, error), nodes, conns int, extra []string, stderr io.Writer) (_ *benchCluster, err error) {
	exe, err := program()
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	ports, err := freeLoopbackPorts(2 * clusterSize)
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	var routes []string
	for i := range clusterSize {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[clusterSize+i]))
	}
	cl := &benchCluster{}
	defer func() {
		if err != nil {
			cl.stop(stderr)
		}
	}()
	for i := range clusterSize {
		dir, err := os.MkdirTemp("", "viewsync-bench-nats-")
		if err != nil {
			return nil, fmt.Errorf("spawn: %w", err)
		}
		args := []string{"bench", "nats-node", "--name", fmt.Sprintf("n%d", i), "--port", strconv.Itoa(ports[i]),
			"--cluster-port", strconv.Itoa(ports[clusterSize+i]), "--routes", strings.Join(routes, ","), "--dir", dir}
		s, err := spawnProcess(ctx, exe, args, dir, fmt.Sprintf("NATS server n%d", i), stderr)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		cl.natsNodes = append(cl.natsNodes, s)
		cl.natsURLs = append(cl.natsURLs, "nats://"+s.addr)
	}
	if err := waitPlacement(ctx, strings.Join(cl.natsURLs, ",")); err != nil {
		return nil, err
	}
	for i := range nodes {
		args := append([]string{"--engine", "nats", "--nats-url", cl.natsURLs[i%clusterSize], "--nats-replicas", strconv.Itoa(clusterSize)}, extra...)
		s, err := spawnServer(ctx, program, conns, args, stderr)
		if err != nil {
			return nil, err
		}
		cl.nodes = append(cl.nodes, s)
	}
	return cl, nil
}

// stop stops the viewsync nodes, then the NATS servers, each group at
// once, and removes their data. Any that had exited on its own has its
// log's end shown.
func (cl *benchCluster) stop(stderr io.Writer) {
	stopAll := func(ss []*spawnedServer, what func(i int) string) {
		var wg sync.WaitGroup
		for i, s := range ss {
			wg.Go(func() {
				if s.stop() {
					fmt.Fprintf(stderr, "bench: %s exited during the run (%v); the end of its log:\n%s\n", what(i), s.cmd.ProcessState, s.stderr)
				}
			})
		}
		wg.Wait()
	}
	stopAll(cl.nodes, func(i int) string { return fmt.Sprintf("viewsync node %d", i) })
	stopAll(cl.natsNodes, func(i int) string { return fmt.Sprintf("NATS server n%d", i) })
}

// natsStats are the NATS servers' resident anonymous memory and storage,
// and the JetStream consumers of the cluster.
type natsStats struct {
	AnonBytes []uint64 `json:"anon_bytes"`
	DataBytes []int64  `json:"data_bytes"`
	// Consumers counts the account's consumers, -1 when the cluster did
	// not say.
	Consumers int `json:"consumers"`
}

// natsStats reads the NATS servers' memory and data directories, and asks
// the cluster how many consumers it holds.
func (cl *benchCluster) natsStats() natsStats {
	var st natsStats
	for _, s := range cl.natsNodes {
		a, _ := readAnon(s.pid())
		st.AnonBytes = append(st.AnonBytes, a)
		st.DataBytes = append(st.DataBytes, dirSize(s.dir))
	}
	st.Consumers = consumers(strings.Join(cl.natsURLs, ","))
	return st
}

// consumers returns how many consumers the cluster at urls holds, -1 when
// it cannot tell within a few seconds.
func consumers(urls string) int {
	nc, err := nats.Connect(urls)
	if err != nil {
		return -1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := js.AccountInfo(ctx)
	if err != nil {
		return -1
	}
	return info.Consumers
}

// freeLoopbackPorts returns n loopback ports free at the time of the call.
func freeLoopbackPorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// placementProbe is the stream waitPlacement creates and deletes.
const placementProbe = "VIEWSYNC_BENCH_PROBE"

// waitPlacement waits, for at most a minute, until the cluster at urls
// can place a stream on all its servers: it creates a stream with a
// replica on each, then deletes it.
func waitPlacement(ctx context.Context, urls string) error {
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to the NATS cluster: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(actx, jetstream.StreamConfig{Name: placementProbe, Subjects: []string{"viewsync.bench.probe"}, Replicas: clusterSize, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(actx, placementProbe)
		}
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the NATS cluster cannot place a stream on %d servers: %w", clusterSize, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// natsNode is the hidden 'viewsync bench nats-node': one JetStream server
// of a bench's cluster, until ctx ends.
func natsNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench nats-node", "Usage: viewsync bench nats-node [flags]\n\nOne NATS JetStream server of the cluster that 'viewsync bench ... --nats-cluster' starts; not for use by hand.\n\n", stderr)
	name := fs.String("name", "n0", "server name")
	port := fs.Int("port", 0, "client port on 127.0.0.1")
	clusterPort := fs.Int("cluster-port", 0, "route port on 127.0.0.1")
	routes := fs.String("routes", "", "the cluster's routes, comma-separated")
	dir := fs.String("dir", "", "JetStream storage directory")
	syncAlways := fs.Bool("sync-always", false, "fsync every write")
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	if *port <= 0 || *clusterPort <= 0 || *dir == "" || *routes == "" {
		return fmt.Errorf("%w: --port, --cluster-port, --routes and --dir are needed", cliflag.ErrBadFlag)
	}
	o := &server.Options{
		ServerName: *name,
		Host:       "127.0.0.1",
		Port:       *port,
		JetStream:  true,
		StoreDir:   *dir,
		SyncAlways: *syncAlways,
		NoLog:      true,
		NoSigs:     true,
		Cluster:    server.ClusterOpts{Name: "viewsync-bench", Host: "127.0.0.1", Port: *clusterPort},
		Routes:     server.RoutesFromStr(*routes),
	}
	s, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("nats-node: %w", err)
	}
	s.Start()
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	if !s.ReadyForConnections(30 * time.Second) {
		return errors.New("nats-node: not ready for connections within 30s")
	}
	// The line spawnProcess waits for (a NATS URL, not HTTP).
	fmt.Fprintf(stdout, "viewsync listening on http://127.0.0.1:%d\n", *port)
	<-ctx.Done()
	return nil
}

// registerCluster registers --nats-cluster.
func (c *benchCommon) registerCluster(fs *flag.FlagSet) {
	fs.BoolVar(&c.natsCluster, "nats-cluster", false, "with --spawn: start three NATS JetStream servers (in processes of their own) and three viewsync nodes on them (--engine nats --nats-replicas 3) instead of one server on bbolt; reports the NATS servers' memory and storage")
}

// registerClusterNodes registers --nats-nodes.
func (c *benchCommon) registerClusterNodes(fs *flag.FlagSet, use string) {
	fs.IntVar(&c.natsNodes, "nats-nodes", clusterSize, "with --nats-cluster: how many viewsync nodes, node i on NATS server i mod 3 ("+strconv.Itoa(clusterSize)+" to "+strconv.Itoa(maxClusterNodes)+"); "+use)
}

// clusterNodes is how many viewsync nodes --nats-cluster starts.
func (c *benchCommon) clusterNodes() int { return max(c.natsNodes, clusterSize) }
