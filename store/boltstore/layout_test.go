package boltstore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/storetest"
)

// TestReadsCreateNothing checks that reading collections never written
// leaves no bucket behind.
func TestReadsCreateNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	s := openAt(t, path, nil)
	if _, err := s.Head(ctx, "ghost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "ghost", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
	if snap, err := s.Snapshot(ctx, "ghost"); err != nil || snap.Records == nil {
		t.Fatalf("Snapshot = %+v, %v", snap, err)
	}
	if _, err := s.Changes(ctx, "ghost", 0, store.Page{Commits: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CatchUp(ctx, "ghost", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, "ghost", []protocol.Op{put("x", `1`)}, map[string]uint64{"x": 5}); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("Apply: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if string(name) != "_viewsync" {
				return fmt.Errorf("unexpected bucket %q", name)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTombstoneTrimmingIsBounded checks that a large expired backlog is
// forgotten at once as far as readers can tell, but deleted from the file
// a bounded amount per commit.
func TestTombstoneTrimmingIsBounded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	clk := storetest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	opts := &boltstore.Options{Config: store.Config{Now: clk.Now, RetainTombstones: time.Minute}, NoSync: true}
	s := openAt(t, path, opts)
	const n = 100
	for i := range n {
		mustApply(t, s, "b", []protocol.Op{put(fmt.Sprintf("r%03d", i), `1`)}, nil) // v1..v100
	}
	for i := range n {
		mustApply(t, s, "b", []protocol.Op{del(fmt.Sprintf("r%03d", i))}, nil) // v101..v200
	}
	if cu, err := s.CatchUp(ctx, "b", 100); err != nil || len(cu.Deleted) != n {
		t.Fatalf("CatchUp(100) = %d deleted, %v; want %d", len(cu.Deleted), err, n)
	}
	clk.Advance(time.Hour)
	mustApply(t, s, "b", []protocol.Op{put("x", `1`)}, nil) // v201
	for _, after := range []uint64{0, 100, 150, 199} {
		if _, err := s.CatchUp(ctx, "b", after); !errors.Is(err, store.ErrHistoryGone) {
			t.Fatalf("CatchUp(%d) once every tombstone expired: %v, want ErrHistoryGone", after, err)
		}
	}
	if cu, err := s.CatchUp(ctx, "b", 200); err != nil || len(cu.Deleted) != 0 || len(cu.Records) != 1 {
		t.Fatalf("CatchUp(200) = %+v, %v", cu, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := countTombstones(t, path, "b"); left == 0 || left == n {
		t.Fatalf("%d tombstones left after one commit, want some trimmed and some left for later commits", left)
	}

	s = openAt(t, path, opts)
	for range n {
		mustApply(t, s, "b", []protocol.Op{put("x", `2`)}, nil)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := countTombstones(t, path, "b"); left != 0 {
		t.Fatalf("%d tombstones left after %d more commits, want 0", left, n)
	}
}

// countTombstones counts the entries of a closed store's tombstone index
// and checks that the tombstones bucket holds as many.
func countTombstones(t *testing.T, path, coll string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var index, tombs int
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(coll))
		index = b.Bucket([]byte("tombindex")).Stats().KeyN
		tombs = b.Bucket([]byte("tombstones")).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if index != tombs {
		t.Fatalf("tombstone index has %d entries for %d tombstones", index, tombs)
	}
	return index
}

// TestLayoutInvariants runs a random concurrent workload with short
// retention, then checks the file against the layout's invariants: every
// record indexed once by its version, tombstones and their index one to
// one, no id both a record and a tombstone, the log exactly the commits
// logfloor+1 through version.
func TestLayoutInvariants(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	clk := storetest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openAt(t, path, &boltstore.Options{
		Config: store.Config{RetainCommits: 7, RetainTombstones: time.Minute, Now: clk.Now},
		NoSync: true,
	})
	colls := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for range 300 {
				coll := colls[rnd.IntN(len(colls))]
				if rnd.IntN(200) == 0 {
					if _, err := s.Drop(ctx, coll); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if rnd.IntN(20) == 0 {
					clk.Advance(10 * time.Second)
				}
				var ops []protocol.Op
				for range 1 + rnd.IntN(3) {
					id := "r" + strconv.Itoa(rnd.IntN(40))
					if rnd.IntN(3) == 0 {
						ops = append(ops, del(id))
					} else {
						ops = append(ops, put(id, strconv.Itoa(rnd.IntN(1000))))
					}
				}
				_, err := s.Apply(ctx, coll, ops, nil)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, coll := range colls {
		snap, err := s.Snapshot(ctx, coll)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Version == 0 {
			continue
		}
		// The catch-up from the head's predecessor and the log agree on
		// the last commit.
		ch, err := s.Changes(ctx, coll, snap.Version-1, store.Page{})
		if err != nil || len(ch.Commits) != 1 {
			t.Fatalf("Changes(%s, head-1) = %+v, %v", coll, ch, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for _, coll := range colls {
			cb := tx.Bucket([]byte(coll))
			if cb == nil {
				continue
			}
			if err := checkCollection(cb); err != nil {
				return fmt.Errorf("collection %s: %w", coll, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkCollection checks one collection bucket against the layout.
func checkCollection(cb *bolt.Bucket) error {
	be := binary.BigEndian
	meta := cb.Bucket([]byte("meta"))
	vat := meta.Get([]byte("version"))
	version, logFloor := be.Uint64(vat), be.Uint64(meta.Get([]byte("logfloor")))
	records, byVersion := cb.Bucket([]byte("records")), cb.Bucket([]byte("byversion"))
	tombs, tombIndex := cb.Bucket([]byte("tombstones")), cb.Bucket([]byte("tombindex"))

	nrec := 0
	err := records.ForEach(func(id, v []byte) error {
		nrec++
		rv := be.Uint64(v)
		if rv == 0 || rv > version {
			return fmt.Errorf("record %q has version %d, head %d", id, rv, version)
		}
		if byVersion.Get(append(be.AppendUint64(nil, rv), id...)) == nil {
			return fmt.Errorf("record %q@%d is not in byversion", id, rv)
		}
		if tombs.Get(id) != nil {
			return fmt.Errorf("record %q also has a tombstone", id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n := byVersion.Stats().KeyN; n != nrec {
		return fmt.Errorf("byversion has %d entries for %d records", n, nrec)
	}
	ntomb := 0
	err = tombs.ForEach(func(id, v []byte) error {
		ntomb++
		tv := be.Uint64(v)
		if got := tombIndex.Get(append(be.AppendUint64(nil, tv), id...)); !bytes.Equal(got, v[8:]) {
			return fmt.Errorf("tombstone %q@%d: index holds %x, want %x", id, tv, got, v[8:])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n := tombIndex.Stats().KeyN; n != ntomb {
		return fmt.Errorf("tombindex has %d entries for %d tombstones", n, ntomb)
	}
	log := cb.Bucket([]byte("log"))
	want := logFloor + 1
	err = log.ForEach(func(k, v []byte) error {
		if be.Uint64(k) != want {
			return fmt.Errorf("log has commit %d where %d belongs", be.Uint64(k), want)
		}
		var c protocol.Commit
		if err := json.Unmarshal(v, &c); err != nil || c.Version != want {
			return fmt.Errorf("log entry %d = %s: %v", want, v, err)
		}
		want++
		return nil
	})
	if err != nil {
		return err
	}
	if want != version+1 {
		return fmt.Errorf("log ends at %d, head is %d", want-1, version)
	}
	if version > 7 && version-logFloor != 7 {
		return fmt.Errorf("log holds %d commits, retention is 7", version-logFloor)
	}
	return nil
}
