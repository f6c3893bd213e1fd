package presence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/presence"
)

// memNet is an in-memory network of buses: what one bus publishes
// reaches every started bus that is up, its own included, in order.
type memNet struct {
	mu    sync.Mutex
	buses []*memBus
}

// memBus is one node's bus on a memNet. A bus that is down neither
// sends nor receives.
type memBus struct {
	net *memNet
	q   chan []byte
	// lost is the registry's, to call after a bus comes back up.
	lost func()
	done chan struct{}

	// guarded by net.mu
	up, started bool
	// largest is the largest message published.
	largest int
}

var errDown = errors.New("bus down")

func (n *memNet) bus() *memBus {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := &memBus{net: n, q: make(chan []byte, 1<<16), done: make(chan struct{}), up: true}
	n.buses = append(n.buses, b)
	return b
}

func (b *memBus) Start(deliver func([]byte), lost func()) error {
	b.net.mu.Lock()
	b.started, b.lost = true, lost
	b.net.mu.Unlock()
	go func() {
		defer close(b.done)
		for msg := range b.q {
			deliver(msg)
		}
	}()
	return nil
}

func (b *memBus) Publish(collection string, msg []byte) error {
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	if !b.up {
		return errDown
	}
	b.largest = max(b.largest, len(msg))
	for _, to := range b.net.buses {
		if to.started && to.up {
			to.q <- msg
		}
	}
	return nil
}

func (b *memBus) Close() error {
	b.net.mu.Lock()
	b.started = false
	b.net.mu.Unlock()
	close(b.q)
	<-b.done
	return nil
}

// setUp takes the bus down or brings it back; back up, it tells its
// registry that messages may have been lost.
func (b *memBus) setUp(up bool) {
	b.net.mu.Lock()
	b.up = up
	lost := b.lost
	b.net.mu.Unlock()
	if up {
		lost()
	}
}

// inject delivers msg to b as if another node had published it.
func (b *memBus) inject(msg string) {
	b.q <- []byte(msg)
}

// node starts a registry on the network, with opts (TTL 10s by default).
func (n *memNet) node(t *testing.T, opts presence.Options) (*presence.Registry, *memBus) {
	t.Helper()
	b := n.bus()
	opts.Bus = b
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	r, err := presence.New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, b
}

func set(t *testing.T, s *presence.Session, coll, record, state string) {
	t.Helper()
	if err := s.Set(coll, record, json.RawMessage(state)); err != nil {
		t.Fatal(err)
	}
}

func TestBusAcrossNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		a, _ := n.node(t, presence.Options{})
		b, _ := n.node(t, presence.Options{})
		c, _ := n.node(t, presence.Options{})
		onB, onC := follow(t, b, "c", nil), follow(t, c, "c", nil)
		ana := open(t, a, "ana")
		set(t, ana, "c", "p1", `{"name":"Ana"}`)
		synctest.Wait()
		for i, rec := range []*recorder{onB, onC} {
			if got := rec.shown(); len(got) != 1 || got[ana.Member()] != `p1 {"name":"Ana"}` {
				t.Fatalf("follower %d: %v", i, got)
			}
		}
		onB.take()
		set(t, ana, "c", "p2", `{"name":"Ana"}`)
		synctest.Wait()
		if got := onB.take(); len(got) != 1 || !strings.Contains(got[0], `"event":"update"`) || !strings.Contains(got[0], `"record":"p2"`) {
			t.Fatalf("update: %q", got)
		}
		// The other collections' followers hear nothing.
		other := follow(t, c, "d", nil)
		synctest.Wait()
		other.take()
		ana.Clear("c")
		synctest.Wait()
		if got := onB.take(); len(got) != 1 || !strings.Contains(got[0], `"event":"leave"`) {
			t.Fatalf("leave: %q", got)
		}
		if got := onC.shown(); len(got) != 0 {
			t.Fatalf("C after the leave: %v", got)
		}
		if got := other.take(); len(got) != 0 {
			t.Fatalf("another collection's follower: %q", got)
		}
		if st := b.Stats(); st.BusIn == 0 || st.BusDropped != 0 || st.Remote != 0 {
			t.Fatalf("B's stats: %+v", st)
		}
	})
}

func TestBusOnePrincipalTwoNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		a, _ := n.node(t, presence.Options{})
		b, _ := n.node(t, presence.Options{})
		c, _ := n.node(t, presence.Options{})
		onA, onC := follow(t, a, "c", nil), follow(t, c, "c", nil)
		tabA, tabB := open(t, a, "ana"), open(t, b, "ana")
		set(t, tabA, "c", "p1", `{"tab":"a"}`)
		synctest.Wait()
		time.Sleep(time.Millisecond) // the second set is the later one
		set(t, tabB, "c", "p2", `{"tab":"b"}`)
		synctest.Wait()
		for name, rec := range map[string]*recorder{"A": onA, "C": onC} {
			if got := rec.shown(); len(got) != 1 || got[tabA.Member()] != `p2 {"tab":"b"}` {
				t.Fatalf("follower on %s: %v", name, got)
			}
		}
		if got := onC.take(); len(got) != 3 || !strings.Contains(got[1], `"join"`) || !strings.Contains(got[2], `"update"`) {
			t.Fatalf("C: %q", got)
		}
		// The later tab goes: the member stays, showing the other.
		tabB.Close()
		synctest.Wait()
		if got := onC.take(); len(got) != 1 || !strings.Contains(got[0], `"update"`) || !strings.Contains(got[0], `"p1"`) {
			t.Fatalf("C after B's tab closed: %q", got)
		}
		tabA.Close()
		synctest.Wait()
		if got := onC.take(); len(got) != 1 || !strings.Contains(got[0], `"leave"`) {
			t.Fatalf("C after the last tab closed: %q", got)
		}
		if got := onA.shown(); len(got) != 0 {
			t.Fatalf("A after the last tab closed: %v", got)
		}
	})
}

func TestBusNodeGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		const ttl = 9 * time.Second
		a, busA := n.node(t, presence.Options{TTL: ttl})
		b, _ := n.node(t, presence.Options{TTL: ttl})
		onB := follow(t, b, "c", nil)
		s := open(t, a, "ana")
		set(t, s, "c", "", `{}`)
		// Well past the TTL, with A's refreshes (and the session's
		// heartbeats) the member stays.
		for range 10 {
			time.Sleep(ttl / 3)
			s.Touch("c")
		}
		synctest.Wait()
		if len(onB.shown()) != 1 {
			t.Fatal("a refreshed member left")
		}
		// A dies without a word: its bus goes silent.
		busA.net.mu.Lock()
		busA.up = false
		busA.net.mu.Unlock()
		died := time.Now()
		time.Sleep(ttl / 2)
		synctest.Wait()
		if len(onB.shown()) != 1 {
			t.Fatalf("left %v after A died, before the TTL", time.Since(died))
		}
		for len(onB.shown()) == 1 {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		if gone := time.Since(died); gone > ttl+ttl/10 {
			t.Fatalf("left %v after A died, bound %v", gone, ttl+ttl/10)
		}
		if st := b.Stats(); st.Remote != 0 || st.Members != 0 {
			t.Fatalf("B still holds %+v", st)
		}
	})
}

func TestBusClosedNodeLeavesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		a, _ := n.node(t, presence.Options{})
		b, _ := n.node(t, presence.Options{})
		onB := follow(t, b, "c", nil)
		set(t, open(t, a, "ana"), "c", "", `{}`)
		set(t, open(t, a, "ben"), "d", "", `{}`)
		synctest.Wait()
		if len(onB.shown()) != 1 {
			t.Fatal("not joined")
		}
		a.Close()
		synctest.Wait()
		if got := onB.shown(); len(got) != 0 {
			t.Fatalf("after A closed: %v", got)
		}
		if st := b.Stats(); st.Remote != 0 {
			t.Fatalf("B still holds %d of A's", st.Remote)
		}
	})
}

func TestBusStartLearns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		a, _ := n.node(t, presence.Options{})
		b, _ := n.node(t, presence.Options{})
		set(t, open(t, a, "ana"), "c", "p1", `{"n":1}`)
		set(t, open(t, b, "ben"), "c", "p2", `{"n":2}`)
		synctest.Wait()
		start := time.Now()
		c, _ := n.node(t, presence.Options{})
		synctest.Wait()
		onC := follow(t, c, "c", nil)
		synctest.Wait()
		// C learned both at once (a hello), not after a refresh period.
		if d := time.Since(start); d != 0 {
			t.Fatalf("time passed: %v", d)
		}
		if got := onC.shown(); len(got) != 2 {
			t.Fatalf("C knows %v", got)
		}
	})
}

func TestBusLostMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		a, _ := n.node(t, presence.Options{})
		b, busB := n.node(t, presence.Options{})
		onB := follow(t, b, "c", nil)
		busB.setUp(false)
		set(t, open(t, a, "ana"), "c", "", `{}`)
		synctest.Wait()
		if len(onB.shown()) != 0 {
			t.Fatal("a bus down received")
		}
		// Back up, B asks again and hears of Ana without waiting for a
		// refresh.
		busB.setUp(true)
		synctest.Wait()
		if len(onB.shown()) != 1 {
			t.Fatalf("after the bus came back: %v", onB.shown())
		}
	})
}

func TestBusCountOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		o := presence.Options{MaxMembers: 3}
		a, _ := n.node(t, o)
		b, _ := n.node(t, o)
		c, _ := n.node(t, o)
		onC := follow(t, c, "c", nil)
		for i, r := range []*presence.Registry{a, a, b, b} {
			set(t, open(t, r, fmt.Sprint("user", i)), "c", "", `{}`)
			synctest.Wait()
		}
		got := onC.take()
		if last := got[len(got)-1]; !strings.HasSuffix(last, `"event":"sync","count":4}`) {
			t.Fatalf("C: %q", got)
		}
		late := follow(t, b, "c", nil)
		synctest.Wait()
		if got := late.take(); len(got) != 1 || !strings.HasSuffix(got[0], `"event":"sync","count":4}`) {
			t.Fatalf("a follower on B: %q", got)
		}
	})
}

func TestBusSplitsRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		const members = 3000
		o := presence.Options{MaxMembers: members}
		a, busA := n.node(t, o)
		for i := range members {
			set(t, open(t, a, fmt.Sprint("user", i)), "c", fmt.Sprintf("record-%d", i), fmt.Sprintf(`{"name":"%s"}`, strings.Repeat("x", 60)))
		}
		synctest.Wait()
		// B starts: A's refresh of its 3,000 members comes in pieces.
		b, _ := n.node(t, o)
		onB := follow(t, b, "c", nil)
		synctest.Wait()
		if got := len(onB.shown()); got != members {
			t.Fatalf("B shows %d members", got)
		}
		busA.net.mu.Lock()
		largest := busA.largest
		busA.net.mu.Unlock()
		if largest > presence.MaxBusMessageBytes || largest < presence.MaxBusMessageBytes/2 {
			t.Fatalf("largest message %d bytes", largest)
		}
	})
}

// TestBusVisible: a follower restricted to some rows, on another node
// than the member, does not see it on a record outside them.
func TestBusVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		a, _ := n.node(t, presence.Options{})
		b, _ := n.node(t, presence.Options{})
		rec := &recorder{}
		f, err := b.Follow("c", presence.FollowOptions{Write: rec.write, Visible: func(_ context.Context, id string) bool {
			return !strings.HasPrefix(id, "secret")
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Stop()
		ana := open(t, a, "ana")
		for _, step := range []struct{ record, want string }{
			{"secret1", ""},
			{"p1", `"join"`},
			{"secret2", `"leave"`},
		} {
			time.Sleep(time.Millisecond)
			set(t, ana, "c", step.record, `{}`)
			synctest.Wait()
			got := rec.take()
			for _, m := range got {
				if strings.Contains(m, "secret") {
					t.Fatalf("leaked: %s", m)
				}
			}
			if step.want != "" && (len(got) == 0 || !strings.Contains(got[len(got)-1], step.want)) {
				t.Fatalf("record %q: %q, want %s", step.record, got, step.want)
			}
		}
	})
}

func TestBusHeartbeatsStayLocal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		a, _ := n.node(t, presence.Options{})
		n.node(t, presence.Options{})
		s := open(t, a, "ana")
		set(t, s, "c", "", `{}`)
		synctest.Wait()
		before := a.Stats().BusOut
		for range 1000 {
			s.Touch("c")
		}
		synctest.Wait()
		if after := a.Stats().BusOut; after != before {
			t.Fatalf("heartbeats published %d messages", after-before)
		}
	})
}

func TestBusDropsBadMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memNet
		b, busB := n.node(t, presence.Options{MaxStateBytes: 64})
		onB := follow(t, b, "c", nil)
		bad := []string{
			`not json`,
			`{"v":2,"node":"x","hello":true}`,
			`{"v":1,"node":"x y","hello":true}`,
			`{"v":1,"node":"x","c":"c","ttl":1000,"set":[{"m":"m\"1","s":{},"t":1}]}`,
			`{"v":1,"node":"x","c":"c","ttl":1000,"set":[{"m":"m1","s":[],"t":1}]}`,
			`{"v":1,"node":"x","c":"c","ttl":1000,"set":[{"m":"m1","s":{"a":"` + strings.Repeat("x", 64) + `"},"t":1}]}`,
			`{"v":1,"node":"x","c":"C!","ttl":1000,"set":[{"m":"m1","s":{},"t":1}]}`,
			`{"v":1,"node":"x","c":"c","ttl":0,"set":[{"m":"m1","s":{},"t":1}]}`,
			`{"v":1,"node":"x","c":"c","ttl":1000,"leave":["a b"]}`,
			`{"v":1,"node":"x","c":"c","ttl":1000,"set":[{"m":"m1","s":{},"t":1}],"pad":"` + strings.Repeat("x", presence.MaxBusMessageBytes+8<<10) + `"}`,
		}
		for _, m := range bad {
			busB.inject(m)
		}
		// A good one, with spaces in its state, goes through compact.
		busB.inject(`{"v":1,"node":"x","c":"c","ttl":1000,"set":[{"m":"m1","r":"p\"1","s":{ "a" : 1 },"t":1}]}`)
		synctest.Wait()
		if st := b.Stats(); st.BusDropped != uint64(len(bad)) || st.BusIn != 1 {
			t.Fatalf("stats: %+v", st)
		}
		if got := onB.shown(); got["m1"] != `p"1 {"a":1}` || len(got) != 1 {
			t.Fatalf("shown: %v", got)
		}
		if got := onB.take(); !strings.HasSuffix(got[len(got)-1], `"member":"m1","record":"p\"1","state":{"a":1}}`) {
			t.Fatalf("join: %q", got)
		}
	})
}

func TestSetRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, &presence.Options{SetRate: 2})
		s := open(t, r, "ana")
		for i := range 4 { // a burst of twice the rate
			set(t, s, "c", "", fmt.Sprintf(`{"i":%d}`, i))
		}
		err := s.Set("c", "", json.RawMessage(`{"i":4}`))
		var rl *viewsync.RateLimitError
		if !errors.Is(err, presence.ErrTooFast) || !errors.Is(err, viewsync.ErrRateLimited) || !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > 500*time.Millisecond {
			t.Fatalf("fifth set at once: %v", err)
		}
		if viewsync.ErrorCode(err) != "rate_limited" {
			t.Fatalf("code %s", viewsync.ErrorCode(err))
		}
		// Nothing changed; heartbeats are not limited.
		rec := follow(t, r, "c", nil)
		synctest.Wait()
		if got := rec.shown()[s.Member()]; got != ` {"i":3}` {
			t.Fatalf("shown %q", got)
		}
		if !s.Touch("c") || r.Stats().Limited != 1 {
			t.Fatalf("touch, or limited %d", r.Stats().Limited)
		}
		time.Sleep(rl.RetryAfter)
		set(t, s, "c", "", `{"i":5}`)
	})
}

// FuzzBusMessage feeds a registry whatever a bus may deliver: it never
// fails, and what it shows followers is valid JSON, one line.
func FuzzBusMessage(f *testing.F) {
	f.Add([]byte(`{"v":1,"node":"x","c":"c","ttl":1000,"set":[{"m":"m1","r":"p1","s":{"a":1},"t":1}],"leave":["m2"]}`))
	f.Add([]byte(`{"v":1,"node":"x","hello":true}`))
	f.Add([]byte(`{"v":1,"node":"x","bye":true}`))
	f.Add([]byte(`{"v":1,"node":"x","c":"c","ttl":1000,"set":[{"m":"m1","r":"\u2028\n","s":{"a":"\n"},"t":5}]}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		synctest.Test(t, func(t *testing.T) {
			var n memNet
			r, b := n.node(t, presence.Options{MaxStateBytes: 256})
			var mu sync.Mutex
			var out []string
			fl, err := r.Follow("c", presence.FollowOptions{Write: func(evs []presence.Event) error {
				mu.Lock()
				defer mu.Unlock()
				for i := range evs {
					out = append(out, string(presence.AppendMessage(nil, &evs[i], "")))
				}
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Stop()
			b.inject(string(msg))
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			for _, m := range out {
				if !json.Valid([]byte(m)) || strings.ContainsAny(m, "\r\n") {
					t.Fatalf("message %q", m)
				}
			}
			st := r.Stats()
			if st.BusIn+st.BusDropped != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	})
}
