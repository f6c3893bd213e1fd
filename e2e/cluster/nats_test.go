package cluster

// An in-process three-node NATS JetStream cluster on loopback, whose nodes
// can be shut down and restarted with their data.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/store/natskv"
)

// clusterWait bounds every wait of these tests: a hang guard, never an
// expectation of speed.
const clusterWait = 60 * time.Second

// maxBatch is the servers' jetstream max_batch_size and the stores'
// MaxBatch, as the natskv documentation advises for the hub's commits.
const maxBatch = 2048

// natsCluster is three JetStream servers, n1..n3, routed to each other on
// ports fixed up front, so that a node restarted with the same options
// (and data directory) rejoins the others.
//
// Every route goes through a proxy (routeProxy) in front of the node it
// reaches, the address the node advertises to the others, so that a node
// can be cut off the cluster at once (crash): its peers hear nothing more
// from it, not even the leadership hand-over of a graceful shutdown.
type natsCluster struct {
	t    *testing.T
	opts []*server.Options
	net  *routeNet
	// layout is the natskv layout of the stores on the cluster.
	layout string

	mu      sync.Mutex
	servers []*server.Server // nil while a node is down
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var ls []net.Listener
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startNATSCluster starts the three servers, waits until JetStream is
// clustered with a meta leader and answers clients, and shuts them down
// when the test ends.
func startNATSCluster(t *testing.T, layout string) *natsCluster {
	t.Helper()
	// Client ports, cluster ports, route proxies' ports.
	ports := freePorts(t, 9)
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[6+i]))
	}
	c := &natsCluster{t: t, servers: make([]*server.Server, 3), net: newRouteNet(t), layout: layout}
	for i := range 3 {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			// A commit is acknowledged once a quorum stored it; each
			// node also fsyncs before it answers.
			SyncAlways: true,
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: "viewsync",
				Host: "127.0.0.1",
				Port: ports[3+i],
				// The others reach it through its proxy only.
				Advertise: fmt.Sprintf("127.0.0.1:%d", ports[6+i]),
				// The proxies read each route's CONNECT line.
				Compression: server.CompressionOpts{Mode: server.CompressionOff},
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		o.JetStreamLimits.MaxBatchSize = maxBatch
		c.opts = append(c.opts, o)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.stop(i)
		}
		c.net.close()
	})
	for i := range 3 {
		c.net.listen(i, fmt.Sprintf("127.0.0.1:%d", ports[6+i]), fmt.Sprintf("127.0.0.1:%d", ports[3+i]))
	}
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.waitJetStream(i)
	}
	c.waitAccount()
	return c
}

// start starts node i, again if it ran before: same name, ports and data.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatalf("nats server %s: %v", c.opts[i].ServerName, err)
	}
	c.net.identify(s.ID(), i)
	s.Start()
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	if !s.ReadyForConnections(clusterWait) {
		c.t.Fatalf("nats server %s not ready for connections", c.opts[i].ServerName)
	}
}

// stop shuts node i down, if it runs.
func (c *natsCluster) stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// crash cuts node i off the cluster (every route to or from it, at once;
// new ones are refused) and then shuts it down: the others see it vanish,
// as if its process died, and must elect new leaders on their own. It
// returns how many routes it cut.
func (c *natsCluster) crash(i int) int {
	n := c.net.cut(i)
	c.stop(i)
	return n
}

// restart starts node i again, routes to it allowed, and waits until its
// JetStream is current.
func (c *natsCluster) restart(i int) {
	c.t.Helper()
	c.net.heal(i)
	c.start(i)
	c.waitJetStream(i)
	c.waitAccount()
}

// waitJetStream waits until node i's JetStream is clustered and current
// with the meta leader.
func (c *natsCluster) waitJetStream(i int) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		c.mu.Lock()
		s := c.servers[i]
		ready := s != nil && s.JetStreamIsClustered() && s.JetStreamIsCurrent() && c.peersOnlineLocked()
		c.mu.Unlock()
		if ready {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats server %s: JetStream not clustered and current after %v", c.opts[i].ServerName, clusterWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peersOnlineLocked reports whether the meta leader sees every running
// node online with JetStream: until it does, a stream with Replicas 3
// cannot be placed.
func (c *natsCluster) peersOnlineLocked() bool {
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

// waitAccount waits until a client of the cluster gets the JetStream
// account information: the meta layer has a leader and answers.
func (c *natsCluster) waitAccount() {
	c.t.Helper()
	nc, js := c.client()
	defer nc.Close()
	deadline := time.Now().Add(clusterWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream account info after %v: %v", clusterWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// url returns the client URL of node i.
func (c *natsCluster) url(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port)
}

// urlsFrom lists every node's client URL, node first first: a client
// that does not randomise the list connects to first while it is up.
func (c *natsCluster) urlsFrom(first int) string {
	var u []string
	for k := range 3 {
		u = append(u, c.url((first+k)%3))
	}
	return strings.Join(u, ",")
}

// natsOptions are the connection options of every client of the cluster:
// reconnect forever, soon, to the URLs in the order given.
func natsOptions(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(20*time.Millisecond, 20*time.Millisecond),
		nats.DontRandomize(),
		nats.Timeout(2 * time.Second),
	}
}

// client connects an observer of the cluster (not a viewsync node).
func (c *natsCluster) client() (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	nc, err := nats.Connect(c.urlsFrom(0), natsOptions("observer")...)
	if err != nil {
		c.t.Fatalf("connect to the cluster: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		c.t.Fatal(err)
	}
	return nc, js
}

// index returns the node named name.
func (c *natsCluster) index(name string) int {
	c.t.Helper()
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	c.t.Fatalf("no nats server named %q", name)
	return -1
}

// stream is the stream holding a collection of the stores (default
// prefix; the tests' collection names have no '.').
func (c *natsCluster) stream(collection string) string {
	if c.layout == natskv.LayoutShared {
		return natskv.DefaultPrefix
	}
	return natskv.DefaultPrefix + "_" + collection
}

// streamInfo returns the stream's info, retried while the cluster cannot
// answer (a leader election).
func (c *natsCluster) streamInfo(js jetstream.JetStream, stream string) *jetstream.StreamInfo {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var info *jetstream.StreamInfo
		st, err := js.Stream(ctx, stream)
		if err == nil {
			info, err = st.Info(ctx)
		}
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return info
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: no info with a leader after %v: %v", stream, clusterWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStreamCurrent waits until the stream has a leader and every replica
// is current (a restarted node has caught up).
func (c *natsCluster) waitStreamCurrent(js jetstream.JetStream, stream string) *jetstream.StreamInfo {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		info := c.streamInfo(js, stream)
		ok := len(info.Cluster.Replicas) == len(c.opts)-1
		for _, p := range info.Cluster.Replicas {
			ok = ok && p.Current && !p.Offline
		}
		if ok {
			return info
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: replicas not current after %v: leader %s, replicas %s", stream, clusterWait, info.Cluster.Leader, describePeers(info.Cluster.Replicas))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describePeers(ps []*jetstream.PeerInfo) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s(current %v, offline %v, lag %d)", p.Name, p.Current, p.Offline, p.Lag))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// routeNet is the proxies in front of the nodes' cluster ports. Each
// proxied route knows the node it reaches (the proxy's) and the node that
// dialled it (from the server id in the route's CONNECT), so that cut can
// sever a node from the others both ways.
type routeNet struct {
	t  *testing.T
	wg sync.WaitGroup

	mu     sync.Mutex
	closed bool
	ls     []net.Listener
	cuts   map[int]bool
	ids    map[string]int // server id → node
	routes map[*route]struct{}
}

// route is one proxied connection: from dialled to (-1: not known yet).
type route struct {
	from, to int
	down, up net.Conn // to the dialler, to the node
}

func (r *route) close() {
	r.down.Close()
	r.up.Close()
}

func newRouteNet(t *testing.T) *routeNet {
	return &routeNet{t: t, cuts: map[int]bool{}, ids: map[string]int{}, routes: map[*route]struct{}{}}
}

// identify records that server id is node i (a server has a new id each
// time it starts).
func (n *routeNet) identify(id string, i int) {
	n.mu.Lock()
	n.ids[id] = i
	n.mu.Unlock()
}

// listen starts node to's proxy on addr, forwarding to target.
func (n *routeNet) listen(to int, addr, target string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		n.t.Fatalf("route proxy of node %d: %v", to, err)
	}
	n.mu.Lock()
	n.ls = append(n.ls, l)
	n.mu.Unlock()
	n.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.wg.Go(func() { n.serve(c, to, target) })
		}
	})
}

// serve proxies one route to node to.
func (n *routeNet) serve(down net.Conn, to int, target string) {
	up, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		down.Close()
		return
	}
	r := &route{from: -1, to: to, down: down, up: up}
	if !n.add(r) {
		r.close()
		return
	}
	defer n.remove(r)
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(down, up)
		r.close()
	})
	// The dialler's first line is its CONNECT, naming its server id.
	br := bufio.NewReader(down)
	line, err := br.ReadSlice('\n')
	if err == nil {
		var connect struct {
			Name string `json:"name"`
		}
		if rest, ok := strings.CutPrefix(string(line), "CONNECT "); ok && json.Unmarshal([]byte(rest), &connect) == nil {
			n.mu.Lock()
			from, known := n.ids[connect.Name]
			if known {
				r.from = from
			}
			allowed := !n.closed && !n.cuts[to] && !(known && n.cuts[from])
			n.mu.Unlock()
			if !known {
				n.t.Errorf("route proxy of node %d: CONNECT from unknown server %q", to, connect.Name)
			}
			if allowed {
				_, err = up.Write(line)
			} else {
				err = io.ErrClosedPipe
			}
		} else {
			n.t.Errorf("route proxy of node %d: first line %.100q is no CONNECT", to, line)
			err = io.ErrUnexpectedEOF
		}
	}
	if err == nil {
		io.Copy(up, br)
	}
	r.close()
	wg.Wait()
}

func (n *routeNet) add(r *route) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.cuts[r.to] {
		return false
	}
	n.routes[r] = struct{}{}
	return true
}

func (n *routeNet) remove(r *route) {
	n.mu.Lock()
	delete(n.routes, r)
	n.mu.Unlock()
}

// cut severs node i from the others: every route to or from it is closed
// and new ones are refused until heal. It returns how many it closed.
func (n *routeNet) cut(i int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[i] = true
	closed := 0
	for r := range n.routes {
		if r.to == i || r.from == i {
			r.close()
			closed++
		}
	}
	return closed
}

// heal allows node i's routes again.
func (n *routeNet) heal(i int) {
	n.mu.Lock()
	delete(n.cuts, i)
	n.mu.Unlock()
}

// close stops the proxies and their routes and waits for them.
func (n *routeNet) close() {
	n.mu.Lock()
	n.closed = true
	for _, l := range n.ls {
		l.Close()
	}
	for r := range n.routes {
		r.close()
	}
	n.mu.Unlock()
	n.wg.Wait()
}
