package cluster

// A viewsync node of the cluster: its own NATS connection, a natskv store
// with Replicas 3, a hub, the HTTP, SSE and WebSocket transports, and a
// real listener. A node can be killed mid-run.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/presence/natsbus"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

// natsTimeout is the stores' Timeout, the default: the tests measure what
// an operator gets.
const natsTimeout = natskv.DefaultTimeout

// The nodes' presence: a short TTL, so that a node's death shows soon,
// and few members listed, so that count-only mode is reached.
const (
	presenceTTL        = 3 * time.Second
	presenceMaxMembers = 3
)

// vsNode is one viewsync node.
type vsNode struct {
	t    *testing.T
	name string
	// URL is the node's base URL, "http://127.0.0.1:PORT".
	URL string

	nc      *nats.Conn
	st      *natskv.Store
	hub     *viewsync.Hub
	sockets *ws.Handler
	srv     *httptest.Server

	// conns holds every connection the listener accepted, hijacked ones
	// (WebSocket) included, so that kill can cut them all.
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}

	killOnce sync.Once
}

// logger returns the nodes' logger: stderr with VIEWSYNC_CLUSTER_LOG set,
// else nothing.
func logger(name string) *slog.Logger {
	if os.Getenv("VIEWSYNC_CLUSTER_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

// startNodes starts n viewsync nodes on the cluster; node i connects to
// NATS server i first.
func startNodes(t *testing.T, cl *natsCluster, n int) []*vsNode {
	t.Helper()
	nodes := make([]*vsNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, cl, i)
	}
	return nodes
}

// startNode starts viewsync node i ("vsN", N = i+1). It is killed when
// the test ends, unless the test killed it.
func startNode(t *testing.T, cl *natsCluster, i int) *vsNode {
	t.Helper()
	n := &vsNode{t: t, name: fmt.Sprintf("vs%d", i+1), conns: map[net.Conn]struct{}{}}
	log := logger(n.name)
	var err error
	// The store's recommended options, to NATS server i first.
	n.nc, err = nats.Connect(cl.urlsFrom(i), append(natskv.ConnOptions(), nats.Name(n.name), nats.DontRandomize())...)
	if err != nil {
		t.Fatalf("%s: connect to NATS: %v", n.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	n.st, err = natskv.Open(ctx, natskv.Options{
		Conn:     n.nc,
		Layout:   cl.layout,
		Replicas: 3,
		Timeout:  natsTimeout,
		MaxBatch: maxBatch,
		Logger:   log,
		// The values of a few records in memory, and the ids and
		// versions of a few more: the others are read from NATS,
		// through the failovers too.
		RecordCache: 256,
		RecordIndex: 64,
	})
	if err != nil {
		n.nc.Close()
		t.Fatalf("%s: open the store: %v", n.name, err)
	}
	// Presence shared with the other nodes on NATS, as serve does.
	bus, err := natsbus.New(natsbus.Options{Conn: n.nc, Prefix: natskv.DefaultPrefix})
	if err != nil {
		n.st.Close()
		n.nc.Close()
		t.Fatalf("%s: presence bus: %v", n.name, err)
	}
	n.hub, err = viewsync.New(n.st, viewsync.WithLogger(log),
		viewsync.WithPresence(presence.Options{TTL: presenceTTL, MaxMembers: presenceMaxMembers, Bus: bus}))
	if err != nil {
		n.st.Close()
		n.nc.Close()
		t.Fatalf("%s: hub: %v", n.name, err)
	}
	t.Cleanup(n.kill)
	events, err := sse.New(n.hub, &sse.Options{Logger: log})
	if err != nil {
		t.Fatalf("%s: sse: %v", n.name, err)
	}
	n.sockets, err = ws.New(n.hub, &ws.Options{Logger: log})
	if err != nil {
		t.Fatalf("%s: ws: %v", n.name, err)
	}
	api, err := httpapi.New(n.hub, &httpapi.Options{Events: events, WebSocket: n.sockets, Logger: log, Ready: n.st.Ready})
	if err != nil {
		t.Fatalf("%s: httpapi: %v", n.name, err)
	}
	n.srv = httptest.NewUnstartedServer(api)
	n.srv.Config.ConnState = func(c net.Conn, state http.ConnState) {
		n.connsMu.Lock()
		defer n.connsMu.Unlock()
		switch state {
		case http.StateNew:
			n.conns[c] = struct{}{}
		case http.StateClosed:
			delete(n.conns, c)
		}
	}
	n.srv.Start()
	n.URL = n.srv.URL
	return n
}

// kill stops the node as a crash would for its clients: every connection
// is cut at once (no close frame, no end of stream), then the hub, the
// listener, the store and the NATS connection are closed. A second kill
// does nothing.
func (n *vsNode) kill() { n.stop(false) }

// crash stops the node as a crash would for the other nodes too: its
// NATS connection goes first, so that nothing it would say as it stops
// (a presence bye) reaches them.
func (n *vsNode) crash() { n.stop(true) }

func (n *vsNode) stop(crash bool) {
	n.killOnce.Do(func() {
		if crash {
			n.nc.Close()
		}
		n.srv.Listener.Close()
		n.connsMu.Lock()
		for c := range n.conns {
			c.Close()
		}
		n.connsMu.Unlock()
		n.srv.CloseClientConnections()
		n.hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		defer cancel()
		if err := n.sockets.Shutdown(ctx); err != nil {
			n.t.Errorf("%s: WebSocket shutdown: %v", n.name, err)
		}
		n.srv.Close()
		if err := n.st.Close(); err != nil && !errors.Is(err, store.ErrClosed) && !crash {
			n.t.Errorf("%s: close the store: %v", n.name, err)
		}
		n.nc.Close()
	})
}
