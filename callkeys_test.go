package viewsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
)

// TestKeyedCallRunsItsWritesOnce: a keyed call whose answer the hub that
// ran it no longer has (the process restarted on its bbolt file, or the
// retry went to another node on NATS) runs its handler again, and the
// handler's writes — a Put that increments a counter, a Patch, a Delete
// and a two-record Commit — find the first run's keys and apply nothing:
// the counter moved once, the versions are the first run's, and the
// handler's result is computed from what the first run wrote. Another
// key, or no key, runs the writes again.
func TestKeyedCallRunsItsWritesOnce(t *testing.T) {
	engines := []struct {
		name string
		// hubs returns two hubs on the same durable collections: the
		// node that ran the call first, and the one the retry reaches.
		hubs func(t *testing.T) (first, retry func() *viewsync.Hub)
	}{
		{"bbolt restart", func(t *testing.T) (func() *viewsync.Hub, func() *viewsync.Hub) {
			path := filepath.Join(t.TempDir(), "v.db")
			var st store.Store
			var h *viewsync.Hub
			open := func() *viewsync.Hub {
				if h != nil {
					h.Close()
					if err := st.Close(); err != nil {
						t.Fatal(err)
					}
				}
				var err error
				if st, err = boltstore.Open(path, &boltstore.Options{NoSync: true}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				h = newHub(t, st)
				return h
			}
			return open, open
		}},
		{"nats other node", func(t *testing.T) (func() *viewsync.Hub, func() *viewsync.Hub) {
			srv := startNATS(t)
			return func() *viewsync.Hub { return newHub(t, openNATS(t, srv)) },
				func() *viewsync.Hub { return newHub(t, openNATS(t, srv)) }
		}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			first, retry := e.hubs(t)
			h := first()
			register(t, h)
			c := collection(t, h, "counters")
			put(t, c, "gone", `1`)

			a1 := keyedCall(t, h, "k1")
			if string(a1.Result) != `{"count":1,"note":"a","pair":[1,1]}` {
				t.Fatalf("first run: %s", a1.Result)
			}
			hd := head(t, c)

			h = retry()
			register(t, h)
			c = collection(t, h, "counters")
			a2 := keyedCall(t, h, "k1")
			if string(a2.Result) != string(a1.Result) {
				t.Errorf("the retry answered %s, the first run %s", a2.Result, a1.Result)
			}
			if !maps.Equal(a1.Versions, a2.Versions) {
				t.Errorf("the retry's versions %v, the first run's %v", a2.Versions, a1.Versions)
			}
			if now := head(t, c); now.Version != hd.Version {
				t.Errorf("the retry moved the collection from version %d to %d", hd.Version, now.Version)
			}
			if r, err := c.Get(t.Context(), "n"); err != nil || string(r.Value) != `1` {
				t.Errorf("counter %s (%v) after a retry, want 1", r.Value, err)
			}

			// Another key is another call: its writes are made.
			a3 := keyedCall(t, h, "k2")
			if string(a3.Result) != `{"count":2,"note":"a","pair":[2,2]}` {
				t.Errorf("another key: %s", a3.Result)
			}
			if now := head(t, c); now.Version <= hd.Version {
				t.Errorf("another key made no commit (version %d)", now.Version)
			}
		})
	}
}

// register installs the call "bump": it increments counter n (Put with
// its version as precondition), merges a note into record m (Patch),
// deletes record gone when it is there, creates record created-COUNT (if
// absent), and writes the pair p1, p2 in one
// commit; it answers what it wrote.
func register(t *testing.T, h *viewsync.Hub) {
	t.Helper()
	err := h.HandleCall("bump", func(ctx context.Context, call *viewsync.Call) (any, error) {
		c, err := call.Collection("counters")
		if err != nil {
			return nil, err
		}
		n := 0
		opt := viewsync.IfAbsent()
		if r, err := c.Get(ctx, "n"); err == nil {
			if n, err = strconv.Atoi(string(r.Value)); err != nil {
				return nil, err
			}
			opt = viewsync.IfVersion(r.Version)
		}
		r, err := c.Put(ctx, "n", json.RawMessage(strconv.Itoa(n+1)), opt)
		if err != nil {
			return nil, err
		}
		count, _ := strconv.Atoi(string(r.Value))
		m, err := c.Patch(ctx, "m", json.RawMessage(`{"note":"a"}`))
		if errors.Is(err, viewsync.ErrNotFound) {
			m, err = c.Put(ctx, "m", json.RawMessage(`{"note":"a"}`))
		}
		if err != nil {
			return nil, err
		}
		var note struct{ Note string }
		json.Unmarshal(m.Value, &note)
		if _, err := c.Delete(ctx, "gone"); err != nil && !errors.Is(err, viewsync.ErrNotFound) {
			return nil, err
		}
		// Created only if absent: a run again finds its key before the
		// precondition, which no longer holds.
		if _, err := c.Put(ctx, "created-"+strconv.Itoa(count), json.RawMessage(`true`), viewsync.IfAbsent()); err != nil {
			return nil, err
		}
		v := json.RawMessage(strconv.Itoa(count))
		cm, err := c.Commit(ctx, []viewsync.Op{viewsync.Put("p1", v), viewsync.Put("p2", v)}, nil)
		if err != nil {
			return nil, err
		}
		pair := []int{}
		for _, op := range cm.Ops {
			k, _ := strconv.Atoi(string(op.Value))
			pair = append(pair, k)
		}
		return map[string]any{"count": count, "note": note.Note, "pair": pair}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keyedCall runs "bump" under key, as a transport does with an
// Idempotency-Key.
func keyedCall(t *testing.T, h *viewsync.Hub, key string) viewsync.CallResult {
	t.Helper()
	var res viewsync.CallResult
	ans, _, err := h.Once(t.Context(), viewsync.OnceCall("", key, "bump", nil), func(ctx context.Context, _ *viewsync.Keyed) (viewsync.Answer, error) {
		var err error
		if res, err = h.Call(ctx, "bump", nil); err != nil {
			return viewsync.Answer{}, err
		}
		b, _ := json.Marshal(res)
		return viewsync.Answer{Status: 200, Body: b}, nil
	})
	if err != nil {
		t.Fatalf("call under %s: %v", key, err)
	}
	if err := json.Unmarshal(ans.Body, &res); err != nil {
		t.Fatal(err)
	}
	return res
}
