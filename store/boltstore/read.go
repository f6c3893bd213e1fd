package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// ctxCheckEvery is how many records a long read handles between checks of
// its context.
const ctxCheckEvery = 1024

// view runs fn in a read transaction after checking ctx, the store's state
// and the collection name. The collection c is ok false when it has never
// been written; its meta m is then that of an empty history.
func (s *Store) view(ctx context.Context, collection string, fn func(c coll, ok bool, m collMeta) error) error {
	if err := protocol.ValidateCollection(collection); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	err := s.viewTx(func(tx *bolt.Tx) error {
		c, ok, err := openColl(tx, collection)
		if err != nil {
			return err
		}
		m := collMeta{epoch: s.epoch}
		if ok {
			if m, err = c.readMeta(); err != nil {
				return err
			}
		}
		return fn(c, ok, m)
	})
	return closedErr(err)
}

// Position implements store.Positions.
func (s *Store) Position(ctx context.Context, collection string) ([]byte, error) {
	var pos []byte
	err := s.view(ctx, collection, func(c coll, ok bool, _ collMeta) error {
		if ok {
			pos = bytes.Clone(c.meta.Get(keySource))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: position of %q: %w", collection, err)
	}
	return pos, nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, collection string) (protocol.Head, error) {
	var h protocol.Head
	err := s.view(ctx, collection, func(_ coll, _ bool, m collMeta) error {
		h = protocol.Head{Epoch: m.epoch, Version: m.version}
		return nil
	})
	if err != nil {
		return protocol.Head{}, fmt.Errorf("boltstore: head %q: %w", collection, err)
	}
	return h, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, collection, id string) (protocol.Record, error) {
	var rec protocol.Record
	err := s.view(ctx, collection, func(c coll, ok bool, _ collMeta) error {
		if !ok {
			return store.ErrNotFound
		}
		v := c.records.Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		version, ok := recordVersion(v)
		if !ok {
			return fmt.Errorf("record %q: %w", id, errDamaged)
		}
		rec = protocol.Record{ID: id, Value: clone(v[8:]), Version: version}
		return nil
	})
	if err != nil {
		return protocol.Record{}, fmt.Errorf("boltstore: get %q in %q: %w", id, collection, err)
	}
	return rec, nil
}

// Snapshot implements store.Store. It holds one read transaction for the
// whole scan; see the Caveats in the package documentation.
func (s *Store) Snapshot(ctx context.Context, collection string) (protocol.Snapshot, error) {
	snap := protocol.Snapshot{Collection: collection, Records: []protocol.Record{}}
	err := s.view(ctx, collection, func(c coll, ok bool, m collMeta) error {
		snap.Epoch, snap.Version = m.epoch, m.version
		if !ok {
			return nil
		}
		var a arena
		cur := c.records.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if len(snap.Records)%ctxCheckEvery == ctxCheckEvery-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			version, ok := recordVersion(v)
			if !ok {
				return fmt.Errorf("record %q: %w", k, errDamaged)
			}
			snap.Records = append(snap.Records, protocol.Record{ID: string(k), Value: a.add(v[8:]), Version: version})
		}
		a.fill(snap.Records)
		return nil
	})
	if err != nil {
		return protocol.Snapshot{}, fmt.Errorf("boltstore: snapshot %q: %w", collection, err)
	}
	return snap, nil
}

// Changes implements store.Store. Each commit is decoded from the JSON the
// log holds.
func (s *Store) Changes(ctx context.Context, collection string, after uint64, page store.Page) (protocol.Changes, error) {
	ch := protocol.Changes{Commits: []protocol.Commit{}}
	err := s.view(ctx, collection, func(c coll, ok bool, m collMeta) error {
		ch.Epoch, ch.Version = m.epoch, m.version
		if after < m.logFloor {
			return fmt.Errorf("after %d, log starts after %d: %w", after, m.logFloor, store.ErrCompacted)
		}
		if !ok || after >= m.version {
			return nil
		}
		n := m.version - after
		if page.Commits > 0 && uint64(page.Commits) < n {
			n = uint64(page.Commits)
		}
		ch.Commits = make([]protocol.Commit, 0, min(n, 1024))
		cur := c.log.Cursor()
		want, total := after+1, 0
		k, v := cur.Seek(be64(want))
		for ; k != nil && uint64(len(ch.Commits)) < n; k, v = cur.Next() {
			if len(ch.Commits)%ctxCheckEvery == ctxCheckEvery-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			// Read without encoding/json's depth limit, so that a commit
			// stored before the value rules stays readable.
			cm, err := protocol.DecodeCommit(v)
			if err != nil {
				return fmt.Errorf("decode commit %d: %w", want, err)
			}
			if len(k) != 8 || binary.BigEndian.Uint64(k) != want || cm.Version != want {
				return fmt.Errorf("log entry for commit %d: %w", want, errDamaged)
			}
			size := protocol.CommitSize(cm)
			if !page.Takes(len(ch.Commits), total, size) {
				return nil
			}
			ch.Commits = append(ch.Commits, cm)
			total += size
			want++
		}
		if uint64(len(ch.Commits)) != n {
			return fmt.Errorf("log ends before commit %d: %w", want, errDamaged)
		}
		return nil
	})
	if err != nil {
		return protocol.Changes{}, fmt.Errorf("boltstore: changes %q: %w", collection, err)
	}
	return ch, nil
}

// CatchUp implements store.Store. It walks the byversion and tombstone
// indexes from after+1, so its cost grows with what changed since.
func (s *Store) CatchUp(ctx context.Context, collection string, after uint64) (protocol.CatchUp, error) {
	cu := protocol.CatchUp{Collection: collection, Compacted: true, Records: []protocol.Record{}, Deleted: []string{}}
	err := s.view(ctx, collection, func(c coll, ok bool, m collMeta) error {
		cu.Epoch, cu.Version = m.epoch, m.version
		if after < m.tombFloor {
			return fmt.Errorf("after %d, deletions forgotten up to %d: %w", after, m.tombFloor, store.ErrHistoryGone)
		}
		if !ok || after >= m.version {
			return nil
		}
		var a arena
		n := 0
		cur := c.byVersion.Cursor()
		for k, _ := cur.Seek(be64(after + 1)); k != nil; k, _ = cur.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) < 8 {
				return fmt.Errorf("byversion index: %w", errDamaged)
			}
			version, id := binary.BigEndian.Uint64(k), k[8:]
			v := c.records.Get(id)
			if rv, ok := recordVersion(v); !ok || rv != version {
				return fmt.Errorf("byversion index entry %d/%q: %w", version, id, errDamaged)
			}
			cu.Records = append(cu.Records, protocol.Record{ID: string(id), Value: a.add(v[8:]), Version: version})
		}
		a.fill(cu.Records)
		// Trimming is incremental, so tombstones that had expired by the
		// latest commit may still be here; the answer is the one a full
		// trim at that commit would give.
		cutoff := s.tombCutoff(m.at)
		cur = c.tombIndex.Cursor()
		for k, v := cur.Seek(be64(after + 1)); k != nil; k, v = cur.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) < 8 || len(v) != 8 {
				return fmt.Errorf("tombstone index: %w", errDamaged)
			}
			if int64(binary.BigEndian.Uint64(v)) < cutoff {
				return fmt.Errorf("after %d, deletion %d expired: %w", after, binary.BigEndian.Uint64(k), store.ErrHistoryGone)
			}
			cu.Deleted = append(cu.Deleted, string(k[8:]))
		}
		return nil
	})
	if err != nil {
		return protocol.CatchUp{}, fmt.Errorf("boltstore: catch-up %q: %w", collection, err)
	}
	return cu, nil
}

// arena copies many values out of a read transaction into one allocation:
// add appends a value and returns a placeholder holding its offsets, fill
// points every record at its bytes once the arena has stopped growing.
type arena struct {
	buf  []byte
	ends []int
}

// add copies v into the arena. The returned value is nil until fill.
func (a *arena) add(v []byte) json.RawMessage {
	a.buf = append(a.buf, v...)
	a.ends = append(a.ends, len(a.buf))
	return nil
}

// fill sets the values of recs, which must be the records add was called
// for, in order.
func (a *arena) fill(recs []protocol.Record) {
	if len(recs) != len(a.ends) {
		panic(errors.New("boltstore: arena out of step with its records"))
	}
	start := 0
	for i, end := range a.ends {
		recs[i].Value = a.buf[start:end:end]
		start = end
	}
}

// clone copies a value out of a transaction.
func clone(v []byte) json.RawMessage {
	return append(json.RawMessage(nil), v...)
}

// Key implements store.Keys.
func (s *Store) Key(ctx context.Context, collection, id string) (store.Key, error) {
	var k store.Key
	found := false
	err := s.view(ctx, collection, func(c coll, ok bool, _ collMeta) error {
		if !ok {
			return nil
		}
		kb := c.root.Bucket(bucketKeys)
		if kb == nil {
			return nil
		}
		got, live, err := liveKey(kb, id, s.cfg)
		if err != nil || !live {
			return err
		}
		k, found = got, true
		k.Answer = bytes.Clone(k.Answer)
		return nil
	})
	if err != nil {
		return store.Key{}, fmt.Errorf("boltstore: key %s of %q: %w", id, collection, err)
	}
	if !found {
		return store.Key{}, fmt.Errorf("boltstore: key %s of %q: %w", id, collection, store.ErrNotFound)
	}
	return k, nil
}
