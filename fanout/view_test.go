package fanout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

func subscribeView(t testing.TB, b *fanout.Broker, where *filter.Filter, cur *protocol.Cursor) *fanout.Subscription {
	t.Helper()
	s, err := b.SubscribeView(coll, where, cur)
	if err != nil {
		t.Fatalf("SubscribeView(%v, %v): %v", where, cur, err)
	}
	t.Cleanup(s.Close)
	return s
}

// opsString writes ops as "put:x delete:y" for comparisons.
func opsString(ops []protocol.Op) string {
	var parts []string
	for _, op := range ops {
		parts = append(parts, string(op.Op)+":"+op.ID)
	}
	return strings.Join(parts, " ")
}

// A view gets a record moving in as a put, moving out as a delete, and
// nothing of commits that do not concern it; each commit's After names
// the view's previous one.
func TestViewMovesInAndOut(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		b := newBroker(t, st, fanout.Options{})
		publish(b, apply(t, st, put("x", `{"owner":"a"}`), put("y", `{"owner":"b"}`)))
		s := subscribeView(t, b, filter.MustParse(`{"owner":"a"}`), nil)
		ev := next(t, s)
		if ev.Kind != fanout.EventReset || len(ev.Reset.Records) != 1 || ev.Reset.Records[0].ID != "x" {
			t.Fatalf("first event = %s %+v, want a reset holding x alone", describe(ev), ev.Reset)
		}
		steps := []struct {
			ops  []protocol.Op
			want string // the view's ops, "" when the commit must be skipped
		}{
			{[]protocol.Op{put("y", `{"owner":"b","n":1}`)}, ""},
			{[]protocol.Op{put("x", `{"owner":"b"}`)}, "delete:x"},
			{[]protocol.Op{put("y", `{"owner":"a"}`)}, "put:y"},
			{[]protocol.Op{put("z", `{"owner":"c"}`), del("y")}, "delete:y"},
			{[]protocol.Op{put("x", `{"owner":"a"}`), put("x", `{"owner":"b"}`), put("x", `{"owner":"a","v":2}`)}, "put:x delete:x put:x"},
			{[]protocol.Op{del("z")}, ""},
		}
		after := uint64(1)
		for i, step := range steps {
			ap := apply(t, st, step.ops...)
			publish(b, ap)
			if step.want == "" {
				continue
			}
			ev := next(t, s)
			if ev.Kind != fanout.EventCommits || len(ev.Frames) != 1 {
				t.Fatalf("step %d: event %s, want one commit", i, describe(ev))
			}
			c := ev.Frames[0].Commit
			if got := opsString(c.Ops); got != step.want || c.Version != ap.Commit.Version {
				t.Fatalf("step %d: commit %d ops %q, want %d %q", i, c.Version, got, ap.Commit.Version, step.want)
			}
			if c.After == nil || *c.After != after {
				t.Fatalf("step %d: After = %v, want %d", i, c.After, after)
			}
			if !strings.Contains(string(ev.Frames[0].JSON()), fmt.Sprintf(`"after":%d`, after)) {
				t.Fatalf("step %d: JSON %s lacks after", i, ev.Frames[0].JSON())
			}
			after = c.Version
		}
		// The last commit did not concern the view; the cursor still
		// moves past it once the subscription looks.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.NextNow(ctx); !errors.Is(err, fanout.ErrWouldBlock) {
			t.Fatalf("NextNow at the head = %v, want ErrWouldBlock", err)
		}
		if got, want := s.Cursor().Version, head(t, st).Version; got != want {
			t.Fatalf("cursor %d after the skipped commit, want %d", got, want)
		}
	})
}

// Subscriptions with the same filter share the view's frames.
func TestViewFramesShared(t *testing.T) {
	st := backends[0].open(t, store.Config{})
	b := newBroker(t, st, fanout.Options{})
	publish(b, apply(t, st, put("x", `{"owner":"a"}`)))
	cur := head(t, st).Cursor()
	s1 := subscribeView(t, b, filter.MustParse(`{"owner":"a"}`), &cur)
	s2 := subscribeView(t, b, filter.MustParse(`{"owner": "a"}`), &cur)
	publish(b, apply(t, st, put("x", `{"owner":"a","n":2}`)))
	e1, e2 := next(t, s1), next(t, s2)
	if e1.Frames[0] != e2.Frames[0] {
		t.Fatal("two subscriptions of one view got different frames")
	}
}

// viewClient is a client of a view: the state its events build, checked
// for privacy as they arrive.
type viewClient struct {
	t      *testing.T
	where  *filter.Filter
	sub    *fanout.Subscription
	recs   map[string]json.RawMessage
	epoch  string
	ver    uint64
	synced bool
}

// apply applies an event as a client does, failing on a gap, on a record
// outside the view and on a deletion of an id the client does not hold
// (an id it may not know).
func (c *viewClient) apply(ev fanout.Event) {
	t := c.t
	t.Helper()
	switch ev.Kind {
	case fanout.EventReset:
		c.recs = map[string]json.RawMessage{}
		for _, r := range ev.Reset.Records {
			if !c.where.Match(r.ID, r.Value) {
				t.Fatalf("%v: reset holds %s=%s, outside the view", c.where, r.ID, r.Value)
			}
			c.recs[r.ID] = r.Value
		}
		c.epoch, c.ver, c.synced = ev.Reset.Epoch, ev.Reset.Version, true
	case fanout.EventCatchUp:
		if !c.synced || ev.CatchUp.Epoch != c.epoch {
			t.Fatalf("%v: catch-up before a reset, or of another epoch", c.where)
		}
		for _, r := range ev.CatchUp.Records {
			if !c.where.Match(r.ID, r.Value) {
				t.Fatalf("%v: catch-up holds %s=%s, outside the view", c.where, r.ID, r.Value)
			}
			c.recs[r.ID] = r.Value
		}
		for _, id := range ev.CatchUp.Deleted {
			if _, ok := c.recs[id]; !ok {
				t.Fatalf("%v: catch-up deletes %q, which the client does not hold", c.where, id)
			}
			delete(c.recs, id)
		}
		c.ver = ev.CatchUp.Version
	case fanout.EventCommits:
		for _, f := range ev.Frames {
			cm := f.Commit
			if !c.synced || f.Epoch != c.epoch {
				t.Fatalf("%v: commit before a reset, or of another epoch", c.where)
			}
			if cm.After == nil || *cm.After > c.ver || cm.Version <= c.ver {
				t.Fatalf("%v: commit %d after %v at client version %d: a gap or a duplicate", c.where, cm.Version, cm.After, c.ver)
			}
			for _, op := range cm.Ops {
				if op.Op == protocol.OpPut {
					if !c.where.Match(op.ID, op.Value) {
						t.Fatalf("%v: commit %d puts %s=%s, outside the view", c.where, cm.Version, op.ID, op.Value)
					}
					c.recs[op.ID] = op.Value
					continue
				}
				if _, ok := c.recs[op.ID]; !ok {
					t.Fatalf("%v: commit %d deletes %q, which the client does not hold", c.where, cm.Version, op.ID)
				}
				delete(c.recs, op.ID)
			}
			c.ver = cm.Version
		}
	}
}

// drain applies every event up to the head.
func (c *viewClient) drain(hd protocol.Head) {
	c.t.Helper()
	ctx := context.Background()
	for {
		ev, err := c.sub.NextNow(ctx)
		if errors.Is(err, fanout.ErrWouldBlock) {
			if c.sub.Cursor().Version >= hd.Version {
				return
			}
			continue
		}
		if err != nil {
			c.t.Fatalf("%v: NextNow: %v", c.where, err)
		}
		c.apply(ev)
	}
}

// Random commits, records moving across random filters, subscribers that
// fall behind a small buffer, leave and come back at their cursors: every
// view's client ends equal to the filter applied to the collection, never
// holding or being told of a record outside it.
func TestViewRandom(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 7))
		st := open(store.Config{RetainCommits: 20})
		b := newBroker(t, st, fanout.Options{BufferBytes: 4 << 10})
		filters := []string{
			`{"owner":"u0"}`, `{"owner":"u1"}`, `{"owner":{"$in":["u1","u2"]}}`,
			`{"n":{"$lt":5}}`, `{"$or":[{"owner":"u3"},{"n":{"$gte":8}}]}`, `{"owner":"u0","n":{"$ne":3}}`,
		}
		var clients []*viewClient
		for i := range 12 {
			f := filter.MustParse(filters[i%len(filters)])
			clients = append(clients, &viewClient{t: t, where: f, sub: subscribeView(t, b, f, nil)})
		}
		live := map[string]bool{}
		for range 300 {
			var ops []protocol.Op
			for range 1 + rng.IntN(3) {
				id := fmt.Sprintf("r%d", rng.IntN(12))
				if live[id] && rng.IntN(4) == 0 && !slices.ContainsFunc(ops, func(op protocol.Op) bool { return op.ID == id }) {
					ops = append(ops, del(id))
					live[id] = false
					continue
				}
				ops = append(ops, put(id, fmt.Sprintf(`{"owner":"u%d","n":%d}`, rng.IntN(4), rng.IntN(10))))
				live[id] = true
			}
			publish(b, apply(t, st, ops...))
			for _, c := range clients {
				switch rng.IntN(10) {
				case 0: // leave, and come back at the cursor
					cur := c.sub.Cursor()
					c.sub.Close()
					var at *protocol.Cursor
					if c.synced {
						at = &protocol.Cursor{Epoch: c.epoch, Version: c.ver}
						if rng.IntN(2) == 0 && cur.Version >= c.ver {
							at = &cur // the subscription's own, past skipped commits
						}
					}
					c.sub = subscribeView(t, b, c.where, at)
				case 1, 2, 3: // read what arrived
					c.drain(protocol.Head{})
				}
				// else: fall behind
			}
		}
		hd := head(t, st)
		snap := snapshot(t, st)
		for _, c := range clients {
			c.drain(hd)
			want := map[string]string{}
			for _, r := range snap.Records {
				if c.where.Match(r.ID, r.Value) {
					want[r.ID] = string(r.Value)
				}
			}
			got := map[string]string{}
			for id, v := range c.recs {
				got[id] = string(v)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%v at %d: client holds %v, want %v", c.where, c.ver, got, want)
			}
		}
	})
}

// The buffer's byte count follows the views' frames as they are made,
// restarted after a commit without previous values, and dropped.
func TestViewBytesCounted(t *testing.T) {
	st := backends[0].open(t, store.Config{})
	b := newBroker(t, st, fanout.Options{ViewLinger: -1})
	// Another view keeps the topic, ready from the start.
	subscribeView(t, b, filter.MustParse(`{"owner":"b"}`), &protocol.Cursor{})
	check := func(when string) {
		t.Helper()
		if counted, held := b.BufferBytes(coll); counted != held {
			t.Fatalf("%s: %d bytes counted, %d held", when, counted, held)
		}
	}
	publish(b, apply(t, st, put("x", `{"owner":"a"}`)))
	ap := apply(t, st, put("y", `{"owner":"a"}`))
	b.Publish(coll, ap.Epoch, ap.Commit, nil) // previous values unknown
	publish(b, apply(t, st, put("z", `{"owner":"a"}`)))
	// A view made now reads the buffer: a frame, a restart, a frame.
	cur := head(t, st).Cursor()
	s := subscribeView(t, b, filter.MustParse(`{"owner":"a"}`), &cur)
	check("view made over the buffer")
	publish(b, apply(t, st, put("x", `{"owner":"a","n":2}`)))
	check("after a commit")
	s.Close()
	check("view dropped")
}
