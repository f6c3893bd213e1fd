package viewsync_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/memstore"
)

// TestFeedCommitAll: commits given together are made in order, at
// consecutive versions, with the last one's position, and reach a
// subscriber one by one — on a store that makes them durable together
// (boltstore) and on one that takes them one at a time (memstore); one
// that fails its store's check stops them there.
func TestFeedCommitAll(t *testing.T) {
	for _, engine := range []string{"bolt", "mem"} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var st store.Store = memstore.New(nil)
			if engine == "bolt" {
				var err error
				if st, err = boltstore.Open(filepath.Join(t.TempDir(), "v.db"), &boltstore.Options{NoSync: true}); err != nil {
					t.Fatal(err)
				}
			}
			defer st.Close()
			hub, err := viewsync.New(st)
			if err != nil {
				t.Fatal(err)
			}
			defer hub.Close()
			feed, err := hub.Feed("items", "a test", "")
			if err != nil {
				t.Fatal(err)
			}
			col, _ := hub.Collection("items")
			sub, err := col.Subscribe(&viewsync.Cursor{})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()

			var cs []viewsync.FeedCommit
			for i := range 5 {
				cs = append(cs, viewsync.FeedCommit{Ops: []viewsync.Op{viewsync.Put(strconv.Itoa(i), []byte(`{"n": `+strconv.Itoa(i)+`}`))}, Pos: []byte("p" + strconv.Itoa(i))})
			}
			made, err := feed.CommitAll(ctx, cs)
			if err != nil || len(made) != 5 {
				t.Fatalf("CommitAll: %d made, %v", len(made), err)
			}
			for i, cm := range made {
				if cm.Version != uint64(i+1) || string(cm.Ops[0].Value) != `{"n":`+strconv.Itoa(i)+`}` {
					t.Fatalf("commit %d: %+v", i, cm)
				}
			}
			if pos, _ := feed.Position(ctx); string(pos) != "p4" {
				t.Errorf("Position = %q, want p4", pos)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			for seen := uint64(0); seen < 5; {
				ev, err := sub.Next(wctx)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Kind != fanout.EventCommits {
					continue
				}
				for _, f := range ev.Frames {
					if f.Version() != seen+1 {
						t.Fatalf("subscriber got version %d after %d", f.Version(), seen)
					}
					seen++
				}
			}

			bad := []viewsync.FeedCommit{
				{Ops: []viewsync.Op{viewsync.Put("a", []byte(`1`))}, Pos: []byte("q0")},
				{Ops: []viewsync.Op{viewsync.Delete("missing")}, Pos: []byte("q1")},
				{Ops: []viewsync.Op{viewsync.Put("b", []byte(`2`))}, Pos: []byte("q2")},
			}
			made, err = feed.CommitAll(ctx, bad)
			if len(made) != 1 || made[0].Version != 6 || !errors.Is(err, viewsync.ErrNotFound) {
				t.Fatalf("a failing commit among them: %+v, %v; want version 6 made and ErrNotFound", made, err)
			}
			if pos, _ := feed.Position(ctx); string(pos) != "q0" {
				t.Errorf("Position = %q, want q0", pos)
			}
			if _, err := feed.CommitAll(ctx, []viewsync.FeedCommit{{Ops: nil}}); !errors.Is(err, viewsync.ErrEmptyCommit) {
				t.Errorf("an empty commit: %v", err)
			}
		})
	}
}
