package viewsync_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
)

// snapshotJSON is the collection's records as "id=value …", to compare
// the store before and after a refused write.
func snapshotJSON(t testing.TB, c *viewsync.Collection) string {
	t.Helper()
	s, err := c.Unfiltered().Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %v", s.Version, s.Records)
}

// A write through a view (a write right restricted by a filter) applies
// an op only if its record matches before it (when it exists) and after
// it; else the whole commit is forbidden and nothing changes.
func TestWriteThroughView(t *testing.T) {
	_, c := testHub(t)
	put(t, c, "mine", `{"owner":"alice","n":1}`)
	put(t, c, "theirs", `{"owner":"bob","n":1}`)
	alice := c.Where(filter.MustParse(`{"owner":"alice"}`))
	putOp := func(id, v string) viewsync.Op { return viewsync.Put(id, json.RawMessage(v)) }
	cases := []struct {
		name string
		ops  []viewsync.Op
		ok   bool
	}{
		{"create inside", []viewsync.Op{putOp("new", `{"owner":"alice"}`)}, true},
		{"create outside", []viewsync.Op{putOp("new2", `{"owner":"bob"}`)}, false},
		{"update inside", []viewsync.Op{putOp("mine", `{"owner":"alice","n":2}`)}, true},
		{"update out of the filter", []viewsync.Op{putOp("mine", `{"owner":"bob"}`)}, false},
		{"update into the filter", []viewsync.Op{putOp("theirs", `{"owner":"alice"}`)}, false},
		{"delete outside", []viewsync.Op{viewsync.Delete("theirs")}, false},
		{"multi-op, one outside", []viewsync.Op{putOp("mine", `{"owner":"alice","n":3}`), putOp("theirs", `{"owner":"bob","n":9}`)}, false},
		{"create then move out in one commit", []viewsync.Op{putOp("x", `{"owner":"alice"}`), putOp("x", `{"owner":"bob"}`)}, false},
		{"delete inside", []viewsync.Op{viewsync.Delete("new")}, true},
	}
	for _, tc := range cases {
		before := snapshotJSON(t, c)
		_, err := alice.Commit(t.Context(), tc.ops, nil)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v, want it applied", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, viewsync.ErrForbidden) || viewsync.ErrorCode(err) != protocol.CodeForbidden {
			t.Errorf("%s: %v, want forbidden", tc.name, err)
		}
		if after := snapshotJSON(t, c); after != before {
			t.Errorf("%s: the store changed on a refusal:\n%s\n%s", tc.name, before, after)
		}
	}
	// Patch and Put go through the same check.
	if _, err := alice.Patch(t.Context(), "mine", json.RawMessage(`{"owner":"carol"}`)); !errors.Is(err, viewsync.ErrForbidden) {
		t.Errorf("patch out of the filter: %v, want forbidden", err)
	}
	if _, err := alice.Patch(t.Context(), "mine", json.RawMessage(`{"n":7}`)); err != nil {
		t.Errorf("patch inside: %v", err)
	}
	// A caller's own precondition still decides.
	if _, err := alice.Put(t.Context(), "mine", json.RawMessage(`{"owner":"alice"}`), viewsync.IfVersion(1)); !errors.Is(err, viewsync.ErrPrecondition) {
		t.Errorf("put with a stale precondition: %v, want precondition failed", err)
	}
}

// Reads through a view see its records alone: Get of one outside is
// ErrNotFound, Snapshot and Poll hold only the view's.
func TestReadThroughView(t *testing.T) {
	_, c := testHub(t)
	put(t, c, "a1", `{"owner":"alice"}`)
	put(t, c, "b1", `{"owner":"bob"}`)
	alice := c.Where(filter.MustParse(`{"owner":"alice"}`))
	if _, err := alice.Get(t.Context(), "b1"); !errors.Is(err, viewsync.ErrNotFound) {
		t.Fatalf("Get of another's record: %v, want not found", err)
	}
	if r, err := alice.Get(t.Context(), "a1"); err != nil || r.ID != "a1" {
		t.Fatalf("Get of one's record: %v, %v", r, err)
	}
	s, err := alice.Snapshot(t.Context())
	if err != nil || len(s.Records) != 1 || s.Records[0].ID != "a1" {
		t.Fatalf("Snapshot = %v, %v; want a1 alone", s.Records, err)
	}
	cur := head(t, c).Cursor()
	// Another client of the view keeps it live from cur on.
	other, err := alice.Subscribe(&cur)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	put(t, c, "b2", `{"owner":"bob"}`)
	put(t, c, "b1", `{"owner":"alice"}`) // moves in
	ch, err := alice.Poll(t.Context(), cur, viewsync.Page{}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Kind != viewsync.KindCommits || len(ch.Commits.Commits) != 1 {
		t.Fatalf("poll = %v %+v; want one commit", ch.Kind, ch.Commits)
	}
	cm := ch.Commits.Commits[0]
	if cm.Version != cur.Version+2 || cm.After == nil || *cm.After != cur.Version || len(cm.Ops) != 1 || cm.Ops[0].ID != "b1" {
		t.Fatalf("poll commit = %+v, want b1 moving in at %d after %d", cm, cur.Version+2, cur.Version)
	}
}
