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

	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// recorder is a follower's client: what it was written, as the wire
// messages, and the members it would show.
type recorder struct {
	mu      sync.Mutex
	msgs    []string
	members map[string]presence.Member
	count   int
	self    string
	session string
}

func (r *recorder) write(evs []presence.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range evs {
		ev := &evs[i]
		r.msgs = append(r.msgs, string(presence.AppendMessage(nil, ev, "")))
		switch ev.Kind {
		case presence.Sync:
			r.members = map[string]presence.Member{}
			for _, m := range ev.Members {
				r.members[m.ID] = m
			}
			r.count = ev.Count
			if ev.Self != "" {
				r.self = ev.Self
			}
			if ev.Session != "" {
				r.session = ev.Session
			}
		case presence.Join, presence.Update:
			r.members[ev.Member.ID] = ev.Member
			r.count = len(r.members)
		case presence.Leave:
			delete(r.members, ev.Member.ID)
			r.count = len(r.members)
		case presence.Count:
			r.count = ev.Count
		}
	}
	return nil
}

// take returns the messages written since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

func (r *recorder) shown() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for id, m := range r.members {
		out[id] = m.Record + " " + string(m.State)
	}
	return out
}

func newRegistry(t *testing.T, o *presence.Options) *presence.Registry {
	t.Helper()
	r, err := presence.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func follow(t *testing.T, r *presence.Registry, coll string, s *presence.Session) *recorder {
	t.Helper()
	rec := &recorder{}
	f, err := r.Follow(coll, presence.FollowOptions{Session: s, Write: rec.write})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return rec
}

func open(t *testing.T, r *presence.Registry, subject string) *presence.Session {
	t.Helper()
	s, err := r.Open(subject)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJoinUpdateLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, nil)
		ana := open(t, r, "ana")
		watcher := open(t, r, "bob")
		rec := follow(t, r, "products", watcher)
		synctest.Wait()
		got := rec.take()
		want := fmt.Sprintf(`{"type":"presence","collection":"products","event":"sync","members":[],"count":0,"self":"%s","session":"%s","ttl":30000}`, watcher.Member(), watcher.ID())
		if len(got) != 1 || got[0] != want {
			t.Fatalf("first: %q\nwant %q", got, want)
		}
		if err := ana.Set("products", "p7", json.RawMessage(`{"name":"Ana"}`)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		m := ana.Member()
		if got := rec.take(); len(got) != 1 || got[0] != `{"type":"presence","collection":"products","event":"join","member":"`+m+`","record":"p7","state":{"name":"Ana"}}` {
			t.Fatalf("join: %q", got)
		}
		// The same again is a heartbeat: nothing fanned out.
		if err := ana.Set("products", "p7", json.RawMessage(`{"name":"Ana"}`)); err != nil {
			t.Fatal(err)
		}
		ana.Touch("products")
		synctest.Wait()
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("heartbeat fanned out: %q", got)
		}
		if err := ana.Set("products", "p8", json.RawMessage(`{"name":"Ana"}`)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := rec.take(); len(got) != 1 || !strings.Contains(got[0], `"event":"update"`) || !strings.Contains(got[0], `"record":"p8"`) {
			t.Fatalf("update: %q", got)
		}
		// A late follower gets the members in its sync.
		late := follow(t, r, "products", nil)
		synctest.Wait()
		if got := late.take(); len(got) != 1 || got[0] != `{"type":"presence","collection":"products","event":"sync","members":[{"member":"`+m+`","record":"p8","state":{"name":"Ana"}}],"count":1}` {
			t.Fatalf("late sync: %q", got)
		}
		ana.Clear("products")
		synctest.Wait()
		if got := rec.take(); len(got) != 1 || got[0] != `{"type":"presence","collection":"products","event":"leave","member":"`+m+`"}` {
			t.Fatalf("leave: %q", got)
		}
		if got := late.shown(); len(got) != 0 {
			t.Fatalf("late follower still shows %v", got)
		}
	})
}

func TestTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, &presence.Options{TTL: 10 * time.Second})
		rec := follow(t, r, "c", nil)
		gone := open(t, r, "")
		kept := open(t, r, "")
		for _, s := range []*presence.Session{gone, kept} {
			if err := s.Set("c", "", json.RawMessage(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		// kept heartbeats every 4s; gone says nothing more.
		for range 5 {
			time.Sleep(4 * time.Second)
			kept.Touch("c")
			synctest.Wait()
		}
		shown := rec.shown()
		if _, ok := shown[gone.Member()]; ok || len(shown) != 1 {
			t.Fatalf("after 20s: %v (gone %s, kept %s)", shown, gone.Member(), kept.Member())
		}
		// Leaves within the TTL: not before it, not after it.
		start := time.Now()
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		if len(rec.shown()) != 1 {
			t.Fatal("left before its TTL")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if len(rec.shown()) != 0 {
			t.Fatalf("still present %s after its last heartbeat", time.Since(start))
		}
		if m, s := r.Present("c"); m != 0 || s != 0 {
			t.Fatalf("registry still holds %d members, %d sessions", m, s)
		}
	})
}

func TestTabsAreOneMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, nil)
		rec := follow(t, r, "c", nil)
		synctest.Wait()
		rec.take()
		tab1, tab2 := open(t, r, "ana"), open(t, r, "ana")
		if tab1.Member() != tab2.Member() || tab1.ID() == tab2.ID() {
			t.Fatalf("tabs: members %s %s, sessions %s %s", tab1.Member(), tab2.Member(), tab1.ID(), tab2.ID())
		}
		other := open(t, r, "bob")
		if other.Member() == tab1.Member() {
			t.Fatal("two principals, one member")
		}
		tab1.Set("c", "p1", json.RawMessage(`{"tab":1}`))
		tab2.Set("c", "p2", json.RawMessage(`{"tab":2}`))
		synctest.Wait()
		got := rec.take()
		if len(got) != 2 || !strings.Contains(got[0], `"join"`) || !strings.Contains(got[1], `"update"`) {
			t.Fatalf("two tabs: %q", got)
		}
		// The first tab goes: the member stays, showing the other tab.
		tab2.Close()
		synctest.Wait()
		got = rec.take()
		if len(got) != 1 || !strings.Contains(got[0], `"update"`) || !strings.Contains(got[0], `"p1"`) {
			t.Fatalf("one tab closed: %q", got)
		}
		tab1.Close()
		synctest.Wait()
		if got := rec.take(); len(got) != 1 || !strings.Contains(got[0], `"leave"`) {
			t.Fatalf("last tab closed: %q", got)
		}
		// A closed session publishes nothing more.
		if err := tab1.Set("c", "", json.RawMessage(`{}`)); !errors.Is(err, presence.ErrNoSession) || !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("set on a closed session: %v", err)
		}
		if _, err := r.Session(tab1.ID(), "ana"); !errors.Is(err, presence.ErrNoSession) {
			t.Fatalf("closed session found: %v", err)
		}
	})
}

func TestSessionLookup(t *testing.T) {
	r := newRegistry(t, nil)
	s := open(t, r, "ana")
	if got, err := r.Session(s.ID(), "ana"); err != nil || got != s {
		t.Fatalf("lookup: %v %v", got, err)
	}
	// Another principal holding the id gets nothing.
	if _, err := r.Session(s.ID(), "eve"); !errors.Is(err, presence.ErrNoSession) {
		t.Fatalf("another principal: %v", err)
	}
	if _, err := r.Session("nope", "ana"); !errors.Is(err, presence.ErrNoSession) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestCountOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, &presence.Options{MaxMembers: 3})
		rec := follow(t, r, "c", nil)
		var ss []*presence.Session
		for i := range 5 {
			s := open(t, r, fmt.Sprint("user", i))
			ss = append(ss, s)
			s.Set("c", "", json.RawMessage(`{}`))
			synctest.Wait()
		}
		got := rec.take()
		// sync, 3 joins, then the 4th member switches to counts: a sync
		// without members, then a count.
		if len(got) != 6 || !strings.HasSuffix(got[4], `"event":"sync","count":4}`) || !strings.HasSuffix(got[5], `"event":"count","count":5}`) {
			t.Fatalf("count-only: %q", got)
		}
		// Updates are not told in count-only mode.
		ss[0].Set("c", "x", json.RawMessage(`{"a":1}`))
		synctest.Wait()
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("update in count-only mode: %q", got)
		}
		ss[4].Close()
		synctest.Wait()
		ss[3].Close()
		synctest.Wait()
		got = rec.take()
		// 4 members (a count), then 3: the list again.
		if len(got) != 2 || !strings.HasSuffix(got[0], `"count":4}`) || !strings.Contains(got[1], `"event":"sync","members":[`) {
			t.Fatalf("back to members: %q", got)
		}
		if n := len(rec.shown()); n != 3 {
			t.Fatalf("members after the list came back: %d", n)
		}
	})
}

func TestLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, &presence.Options{MaxStateBytes: 16, MaxCollections: 2})
		rec := follow(t, r, "a", nil)
		s := open(t, r, "")
		for _, tc := range []struct {
			state string
			want  error
		}{
			{`{"name":"Anastasia!"}`, protocol.ErrTooLarge},
			{`[1]`, protocol.ErrBadValue},
			{``, protocol.ErrBadValue},
		} {
			if err := s.Set("a", "", json.RawMessage(tc.state)); !errors.Is(err, tc.want) {
				t.Errorf("state %s: %v, want %v", tc.state, err, tc.want)
			}
		}
		for _, c := range []string{"a", "b"} {
			if err := s.Set(c, "", json.RawMessage(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Set("c", "", json.RawMessage(`{}`)); !errors.Is(err, presence.ErrTooMany) {
			t.Fatalf("third collection: %v", err)
		}
		synctest.Wait()
		// Only the good set reached the follower.
		if got := rec.take(); len(got) != 2 || !strings.Contains(got[1], `"join"`) {
			t.Fatalf("follower saw %q", got)
		}
		if m, _ := r.Present("c"); m != 0 {
			t.Fatal("refused set is present")
		}
	})
}

// A follower that falls behind gets a sync instead of its backlog.
func TestSlowFollowerResyncs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, &presence.Options{MaxQueue: 4})
		block := make(chan struct{})
		var mu sync.Mutex
		var got []string
		f, err := r.Follow("c", presence.FollowOptions{Write: func(evs []presence.Event) error {
			<-block
			mu.Lock()
			defer mu.Unlock()
			for i := range evs {
				got = append(got, evs[i].Kind.String())
			}
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Stop()
		synctest.Wait() // the first sync is being written
		s := open(t, r, "")
		for i := range 20 {
			s.Set("c", "", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
		}
		close(block)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 || got[0] != "sync" || got[1] != "sync" {
			t.Fatalf("slow follower got %v", got)
		}
	})
}

// A follower whose principal reads some rows never sees a member on a
// record outside them.
func TestVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, nil)
		ana := open(t, r, "ana")
		ana.Set("c", "secret", json.RawMessage(`{}`))
		rec := &recorder{}
		f, err := r.Follow("c", presence.FollowOptions{Write: rec.write, Visible: func(_ context.Context, id string) bool {
			return !strings.HasPrefix(id, "secret")
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Stop()
		synctest.Wait()
		if got := rec.take(); len(got) != 1 || !strings.HasSuffix(got[0], `"members":[],"count":0}`) {
			t.Fatalf("sync: %q", got)
		}
		for _, step := range []struct {
			record string
			want   string
		}{
			{"", `"join"`},
			{"p1", `"update"`},
			{"secret2", `"leave"`},
			{"secret3", ``},
			{"p2", `"join"`},
		} {
			ana.Set("c", step.record, json.RawMessage(`{}`))
			synctest.Wait()
			for _, m := range rec.take() {
				if strings.Contains(m, "secret") {
					t.Fatalf("leaked: %s", m)
				}
				if step.want == "" || !strings.Contains(m, step.want) {
					t.Fatalf("record %q: %s, want %s", step.record, m, step.want)
				}
			}
		}
		ana.Clear("c")
		synctest.Wait()
		if got := rec.take(); len(got) != 1 || !strings.Contains(got[0], `"leave"`) {
			t.Fatalf("clear: %q", got)
		}
	})
}

func TestClosed(t *testing.T) {
	r := newRegistry(t, nil)
	s := open(t, r, "")
	r.Close()
	if _, err := r.Open(""); !errors.Is(err, presence.ErrClosed) {
		t.Fatalf("open: %v", err)
	}
	if _, err := r.Follow("c", presence.FollowOptions{Write: func([]presence.Event) error { return nil }}); !errors.Is(err, presence.ErrClosed) {
		t.Fatalf("follow: %v", err)
	}
	if err := s.Set("c", "", json.RawMessage(`{}`)); !errors.Is(err, presence.ErrClosed) {
		t.Fatalf("set: %v", err)
	}
	if _, err := presence.New(&presence.Options{TTL: -1}); err == nil {
		t.Fatal("negative TTL accepted")
	}
}
