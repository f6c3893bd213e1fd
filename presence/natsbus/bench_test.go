package natsbus_test

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/presence/natsbus"
)

// Figures of the bus cost benchmark: 10,000 present sessions spread over
// three nodes and 100 collections.
const (
	benchSessions    = 10000
	benchCollections = 100
	benchNodes       = 3
)

// cpu returns the process's user and system CPU time.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCluster starts the nodes (registries with a bus, each on its own
// connection to one in-process NATS server) and the sessions, session i
// on node i%3 in collection i%100, and waits until every node shows every
// member.
func benchCluster(b *testing.B, opts presence.Options) ([]*presence.Registry, []*presence.Session) {
	b.Helper()
	ns := startNATS(b, -1)
	var nodes []*presence.Registry
	for range benchNodes {
		bus, err := natsbus.New(natsbus.Options{Conn: connect(b, ns.ClientURL())})
		if err != nil {
			b.Fatal(err)
		}
		o := opts
		o.Bus = bus
		o.MaxMembers = benchSessions // followers would get lists
		r, err := presence.New(&o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.Close)
		nodes = append(nodes, r)
	}
	sessions := make([]*presence.Session, benchSessions)
	for i := range sessions {
		s, err := nodes[i%benchNodes].Open(fmt.Sprint("user", i))
		if err != nil {
			b.Fatal(err)
		}
		state := json.RawMessage(fmt.Sprintf(`{"name":"user %d","editing":"p-%d"}`, i, i%500))
		if err := s.Set(fmt.Sprint("c", i%benchCollections), fmt.Sprint("p-", i%500), state); err != nil {
			b.Fatal(err)
		}
		sessions[i] = s
	}
	deadline := time.Now().Add(wait)
	for _, r := range nodes {
		for r.Stats().Members != benchSessions {
			if time.Now().After(deadline) {
				b.Fatalf("a node shows %+v", r.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nodes, sessions
}

// busTotals sums the nodes' bus counters.
func busTotals(nodes []*presence.Registry) (st presence.Stats) {
	for _, r := range nodes {
		s := r.Stats()
		st.BusIn += s.BusIn
		st.BusInBytes += s.BusInBytes
		st.BusOut += s.BusOut
		st.BusOutBytes += s.BusOutBytes
		st.BusDropped += s.BusDropped
		st.BusFailed += s.BusFailed
	}
	return st
}

// settle waits until every message published has reached the other
// nodes: each node's but the hellos, which reach only the nodes started
// before (3 of 6).
func settle(b *testing.B, nodes []*presence.Registry) presence.Stats {
	b.Helper()
	deadline := time.Now().Add(wait)
	const unheard = benchNodes * (benchNodes - 1) / 2
	for {
		st := busTotals(nodes)
		if st.BusIn+unheard == (benchNodes-1)*st.BusOut {
			return st
		}
		if time.Now().After(deadline) {
			b.Fatalf("published %d messages, received %d: %+v", st.BusOut, st.BusIn, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkBusCost measures what presence costs between nodes: with
// 10,000 sessions present on three nodes in 100 collections, the
// messages and bytes of the refreshes (all nodes together, published and
// received, with the default TTL of 30s: a refresh every 10s; they scale
// with 1/TTL; an iteration is one refresh period), the CPU of the process (three registries and the NATS server)
// meanwhile, and the cost of a heartbeat (local: nothing published) and
// of a set that changes a state (published, batched per collection).
func BenchmarkBusCost(b *testing.B) {
	b.Run("refresh", func(b *testing.B) {
		const ttl = presence.DefaultTTL
		nodes, sessions := benchCluster(b, presence.Options{TTL: ttl})
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // the clients' heartbeats, every third of the TTL
			defer close(done)
			tick := time.NewTicker(ttl / 3)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					for i, s := range sessions {
						s.Touch(fmt.Sprint("c", i%benchCollections))
					}
				}
			}
		}()
		defer func() { close(stop); <-done }()
		before, cpu0, t0 := settle(b, nodes), cpu(), time.Now()
		for b.Loop() {
			time.Sleep(ttl / 3)
		}
		after, cpu1, secs := settle(b, nodes), cpu(), time.Since(t0).Seconds()
		b.ReportMetric(float64(after.BusOut-before.BusOut)/secs, "out-msgs/s")
		b.ReportMetric(float64(after.BusOutBytes-before.BusOutBytes)/secs, "out-B/s")
		b.ReportMetric(float64(after.BusIn-before.BusIn)/secs, "in-msgs/s")
		b.ReportMetric(float64(after.BusInBytes-before.BusInBytes)/secs, "in-B/s")
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/secs, "cpu-ms/s")
		if after.BusDropped != 0 || after.BusFailed != 0 {
			b.Fatalf("dropped %d, failed %d", after.BusDropped, after.BusFailed)
		}
		for _, r := range nodes {
			if st := r.Stats(); st.Members != benchSessions {
				b.Fatalf("a node shows %+v", st)
			}
		}
	})
	b.Run("heartbeat", func(b *testing.B) {
		nodes, sessions := benchCluster(b, presence.Options{})
		before, cpu0 := settle(b, nodes), cpu()
		colls := make([]string, benchCollections)
		for i := range colls {
			colls[i] = fmt.Sprint("c", i)
		}
		n := 0
		for i := 0; b.Loop(); i++ {
			sessions[i%benchSessions].Touch(colls[i%benchCollections])
			n++
		}
		after, cpu1 := settle(b, nodes), cpu()
		b.ReportMetric(float64(cpu1-cpu0)/float64(n), "cpu-ns/op")
		b.ReportMetric(float64(after.BusOut-before.BusOut)/float64(n), "msgs/op")
	})
	b.Run("set", func(b *testing.B) {
		nodes, sessions := benchCluster(b, presence.Options{SetRate: 1e9})
		before, cpu0 := settle(b, nodes), cpu()
		n := 0
		for i := 0; b.Loop(); i++ {
			s := sessions[i%benchSessions]
			state := json.RawMessage(fmt.Sprintf(`{"name":"user %d","editing":"q-%d"}`, i%benchSessions, i))
			s.Set(fmt.Sprint("c", i%benchSessions%benchCollections), fmt.Sprint("q-", i%500), state)
			n++
		}
		after, cpu1 := settle(b, nodes), cpu()
		b.ReportMetric(float64(after.BusOut-before.BusOut)/float64(n), "out-msgs/op")
		b.ReportMetric(float64(after.BusOutBytes-before.BusOutBytes)/float64(n), "out-B/op")
		b.ReportMetric(float64(cpu1-cpu0)/float64(n)/1e3, "cpu-µs/op")
	})
}
