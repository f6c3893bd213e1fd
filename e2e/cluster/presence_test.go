package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/store/natskv"
)

// presenceView is what a subscriber of a node shows of a collection's
// presence: its members and their count, from the events the node wrote.
type presenceView struct {
	t    *testing.T
	name string

	mu      sync.Mutex
	members map[string]string // member → record and state
	count   int
	changed chan struct{} // closed and replaced at each event
}

// followPresence follows coll's presence on n, as a transport does.
func followPresence(t *testing.T, n *vsNode, coll string) *presenceView {
	t.Helper()
	v := &presenceView{t: t, name: n.name, members: map[string]string{}, changed: make(chan struct{})}
	c, err := n.hub.Collection(coll)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.FollowPresence(nil, v.write)
	if err != nil {
		t.Fatalf("%s: follow presence: %v", n.name, err)
	}
	t.Cleanup(f.Stop)
	return v
}

func (v *presenceView) write(evs []presence.Event) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, ev := range evs {
		switch ev.Kind {
		case presence.Sync:
			v.members = map[string]string{}
			for _, m := range ev.Members {
				v.members[m.ID] = m.Record + " " + string(m.State)
			}
			v.count = ev.Count
		case presence.Join, presence.Update:
			v.members[ev.Member.ID] = ev.Member.Record + " " + string(ev.Member.State)
			v.count = len(v.members)
		case presence.Leave:
			delete(v.members, ev.Member.ID)
			v.count = len(v.members)
		case presence.Count:
			v.count = ev.Count
		}
	}
	close(v.changed)
	v.changed = make(chan struct{})
	return nil
}

// waitFor waits until check holds of the members and count shown, and
// returns how long that took; it fails the test after clusterWait (a hang
// guard).
func (v *presenceView) waitFor(what string, check func(members map[string]string, count int) bool) time.Duration {
	v.t.Helper()
	start := time.Now()
	guard := time.After(clusterWait)
	for {
		v.mu.Lock()
		ok := check(v.members, v.count)
		shown, count, changed := maps.Clone(v.members), v.count, v.changed
		v.mu.Unlock()
		if ok {
			return time.Since(start)
		}
		select {
		case <-changed:
		case <-guard:
			v.t.Fatalf("%s: %s: not within %v; shows %d: %v", v.name, what, clusterWait, count, shown)
		}
	}
}

// present opens a session of subject on n and sets its state in coll.
func present(t *testing.T, n *vsNode, subject, coll, record, state string) *presence.Session {
	t.Helper()
	s, err := n.hub.Presence().Open(subject)
	if err != nil {
		t.Fatalf("%s: open a presence session: %v", n.name, err)
	}
	t.Cleanup(s.Close)
	c, err := n.hub.Collection(coll)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetPresence(context.Background(), s, record, json.RawMessage(state)); err != nil {
		t.Fatalf("%s: set presence: %v", n.name, err)
	}
	return s
}

// keepAlive heartbeats s in coll every third of the TTL, as a client
// does, until the test ends.
func keepAlive(t *testing.T, s *presence.Session, coll string) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(presenceTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s.Touch(coll)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}

// shows returns a check that the members are exactly want (member →
// "record state").
func shows(want map[string]string) func(map[string]string, int) bool {
	return func(got map[string]string, count int) bool {
		return maps.Equal(got, want) && count == len(want)
	}
}

// TestClusterPresence: presence across three viewsync nodes on a three-node
// NATS cluster. Members joining on one node are seen by followers on the
// others, change and leave there; one principal present on two nodes is
// one member; above presenceMaxMembers every node's followers get the
// cluster-wide count; a restarted node learns the current members at once;
// a crashed node's members leave the others within the TTL.
func TestClusterPresence(t *testing.T) {
	e := newEnv(t, natskv.LayoutStream)
	a, b, c := e.nodes[0], e.nodes[1], e.nodes[2]
	// The restarted node lives as long as the test, not its subtest.
	parent := t

	t.Run("join-update-leave", func(t *testing.T) {
		onB, onC := followPresence(t, b, "room1"), followPresence(t, c, "room1")
		ana := present(t, a, "ana", "room1", "p1", `{"name":"Ana"}`)
		want := map[string]string{ana.Member(): `p1 {"name":"Ana"}`}
		for _, v := range []*presenceView{onB, onC} {
			took := v.waitFor("Ana joined on A", shows(want))
			t.Logf("%s saw Ana's join on A after %v", v.name, took.Round(time.Microsecond))
		}
		col, _ := a.hub.Collection("room1")
		if err := col.SetPresence(context.Background(), ana, "p2", json.RawMessage(`{"name":"Ana"}`)); err != nil {
			t.Fatal(err)
		}
		want[ana.Member()] = `p2 {"name":"Ana"}`
		onC.waitFor("Ana moved to p2", shows(want))
		ben := present(t, b, "ben", "room1", "", `{"name":"Ben"}`)
		want[ben.Member()] = ` {"name":"Ben"}`
		onA := followPresence(t, a, "room1")
		for _, v := range []*presenceView{onA, onB, onC} {
			v.waitFor("Ana and Ben", shows(want))
		}
		ana.Clear("room1")
		delete(want, ana.Member())
		for _, v := range []*presenceView{onA, onB, onC} {
			v.waitFor("Ana left", shows(want))
		}
		ben.Close()
		for _, v := range []*presenceView{onA, onB, onC} {
			v.waitFor("Ben left", shows(map[string]string{}))
		}
	})

	t.Run("one-principal-two-nodes", func(t *testing.T) {
		onC := followPresence(t, c, "room2")
		tabA := present(t, a, "ana", "room2", "p1", `{"tab":"a"}`)
		onC.waitFor("Ana's tab on A", shows(map[string]string{tabA.Member(): `p1 {"tab":"a"}`}))
		tabB := present(t, b, "ana", "room2", "p2", `{"tab":"b"}`)
		if tabB.Member() != tabA.Member() {
			t.Fatalf("one principal, two members: %s on A, %s on B", tabA.Member(), tabB.Member())
		}
		// One member, showing the state set last.
		for _, v := range []*presenceView{onC, followPresence(t, a, "room2"), followPresence(t, b, "room2")} {
			v.waitFor("Ana once, her tab on B", shows(map[string]string{tabA.Member(): `p2 {"tab":"b"}`}))
		}
		tabB.Close()
		onC.waitFor("Ana still there, her tab on A", shows(map[string]string{tabA.Member(): `p1 {"tab":"a"}`}))
		tabA.Close()
		onC.waitFor("Ana gone with her last tab", shows(map[string]string{}))
	})

	t.Run("count-only", func(t *testing.T) {
		onB := followPresence(t, b, "room3")
		for i, n := range []*vsNode{a, a, c, c} {
			present(t, n, fmt.Sprint("user", i), "room3", "", `{}`)
		}
		// Four members, two on A and two on C, over the limit of three:
		// B's follower gets their count, and no list.
		onB.waitFor("a count of 4", func(m map[string]string, count int) bool { return count == 4 && len(m) == 0 })
		late := followPresence(t, a, "room3")
		late.waitFor("a count of 4 on a new follower", func(m map[string]string, count int) bool { return count == 4 && len(m) == 0 })
	})

	t.Run("restarted-node-learns", func(t *testing.T) {
		ana := present(t, a, "ana", "room4", "p1", `{"name":"Ana"}`)
		ben := present(t, b, "ben", "room4", "p2", `{"name":"Ben"}`)
		want := map[string]string{ana.Member(): `p1 {"name":"Ana"}`, ben.Member(): `p2 {"name":"Ben"}`}
		followPresence(t, c, "room4").waitFor("Ana and Ben", shows(want))
		c.kill()
		c = startNode(parent, e.cl, 2)
		e.nodes[2] = c
		started := time.Now()
		took := followPresence(t, c, "room4").waitFor("Ana and Ben on the restarted node", shows(want))
		t.Logf("the restarted node showed both members %v after it started (%v after its follower's sync)",
			time.Since(started).Round(time.Millisecond), took.Round(time.Millisecond))
	})

	t.Run("crashed-node-leaves", func(t *testing.T) {
		onB, onC := followPresence(t, b, "room5"), followPresence(t, c, "room5")
		var ids []string
		for i := range 2 {
			ids = append(ids, present(t, a, fmt.Sprint("crash", i), "room5", "", `{}`).Member())
		}
		ben := present(t, b, "ben", "room5", "", `{}`)
		keepAlive(t, ben, "room5")
		for _, v := range []*presenceView{onB, onC} {
			v.waitFor("A's two members and Ben", func(m map[string]string, _ int) bool {
				_, a0 := m[ids[0]]
				_, a1 := m[ids[1]]
				return len(m) == 3 && a0 && a1
			})
		}
		a.crash()
		crashed := time.Now()
		for _, v := range []*presenceView{onB, onC} {
			v.waitFor("A's members gone, Ben kept", func(m map[string]string, _ int) bool {
				return slices.Equal(slices.Collect(maps.Keys(m)), []string{ben.Member()})
			})
			t.Logf("%s: A's members left %v after A crashed (TTL %v, bound %v)", v.name,
				time.Since(crashed).Round(time.Millisecond), presenceTTL, presenceTTL+presenceTTL/10)
		}
		for _, n := range []*vsNode{b, c} {
			if st := n.hub.Presence().Stats(); st.BusDropped != 0 || st.BusIn == 0 {
				t.Errorf("%s: bus stats %+v", n.name, st)
			}
		}
	})
}
