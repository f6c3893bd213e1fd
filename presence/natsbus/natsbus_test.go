package natsbus_test

import (
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/presence/natsbus"
)

// wait bounds every wait: a hang guard, never an expectation of speed.
const wait = 30 * time.Second

// startNATS starts an in-process server on port (-1: any) and shuts it
// down when the test ends.
func startNATS(t testing.TB, port int) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(wait) {
		t.Fatal("nats server not ready")
	}
	return s
}

// connect connects to url as the engine does: reconnecting at once,
// buffering nothing while disconnected.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestBusSubjects: what one bus publishes reaches the others (and
// itself) on PREFIX.COLLECTION.p, dots escaped, node messages on
// PREFIX._node.p; another prefix hears nothing; after Close nothing is
// delivered.
func TestBusSubjects(t *testing.T) {
	ns := startNATS(t, -1)
	spy := connect(t, ns.ClientURL())
	seen := make(chan string, 16)
	if _, err := spy.Subscribe(">", func(m *nats.Msg) { seen <- m.Subject + " " + string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	spy.Flush()
	var mu sync.Mutex
	got := map[string][]string{}
	recv := func(name string) func([]byte) {
		return func(msg []byte) {
			mu.Lock()
			defer mu.Unlock()
			got[name] = append(got[name], string(msg))
		}
	}
	var buses []*natsbus.Bus
	for i, prefix := range []string{"VS", "VS", "OTHER"} {
		b, err := natsbus.New(natsbus.Options{Conn: connect(t, ns.ClientURL()), Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(recv(strconv.Itoa(i)), func() {}); err != nil {
			t.Fatal(err)
		}
		buses = append(buses, b)
	}
	if err := buses[0].Publish("shop.products", []byte(`m1`)); err != nil {
		t.Fatal(err)
	}
	if err := buses[0].Publish("", []byte(`m2`)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"VS.shop~products.p m1", "VS._node.p m2"} {
		select {
		case s := <-seen:
			if s != want {
				t.Fatalf("published %q, want %q", s, want)
			}
		case <-time.After(wait):
			t.Fatal("nothing published")
		}
	}
	// Everything published before a flush of the receivers' connections
	// has been delivered or never will be.
	deadline := time.Now().Add(wait)
	for {
		mu.Lock()
		n0, n1 := len(got["0"]), len(got["1"])
		mu.Unlock()
		if n0 == 2 && n1 == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, b := range buses {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	buses[1].Publish("c", []byte(`m3`))
	spy.Flush()
	mu.Lock()
	defer mu.Unlock()
	if len(got["2"]) != 0 || len(got["0"]) != 2 || len(got["1"]) != 2 {
		t.Fatalf("delivered %v", got)
	}
	if _, err := natsbus.New(natsbus.Options{Conn: spy, Prefix: "a.b"}); err == nil {
		t.Fatal("a prefix with a dot was accepted")
	}
}

// TestBusReconnect: a node whose NATS server restarted learns, at once,
// the members that joined elsewhere while it was away (its registry says
// hello after the reconnection).
func TestBusReconnect(t *testing.T) {
	ns := startNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	ttl := time.Hour // no refresh comes while the test runs
	node := func(url string) *presence.Registry {
		b, err := natsbus.New(natsbus.Options{Conn: connect(t, url)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := presence.New(&presence.Options{TTL: ttl, Bus: b})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	// A and B share the server, which restarts on the same port.
	a := node(ns.ClientURL())
	b := node(ns.ClientURL())
	s, err := a.Open("ana")
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	// While the server is down, Ana joins on A: nobody hears it.
	if err := s.Set("c", "", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	startNATS(t, port)
	deadline := time.Now().Add(wait)
	for b.Stats().Members != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("B after the reconnection: %+v; A: %+v", b.Stats(), a.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
