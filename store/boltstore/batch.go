package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// batch is the work of one write transaction: the requests of one group
// commit, applied in order. It opens each collection it touches once and
// keeps its meta in memory; finish trims what the batch's commits made
// trimmable and writes the meta back.
type batch struct {
	s     *Store
	tx    *bolt.Tx
	colls map[string]*batchColl
	// keys counts the idempotency keys the batch recorded.
	keys int
}

// batchColl is a collection as the batch sees it.
type batchColl struct {
	c coll
	m collMeta
	// exists is false until the collection has buckets.
	exists bool
	// commits counts the commits of this batch applied to it; retention
	// may do that many times its per-commit work.
	commits int
	// scratch holds keys that bbolt does not keep (seeks, deletes).
	scratch []byte
}

// coll returns the collection, opening it on first use. An error means the
// collection's bucket is damaged; nothing was written.
func (b *batch) coll(name string) (*batchColl, error) {
	if bc, ok := b.colls[name]; ok {
		return bc, nil
	}
	c, exists, err := openColl(b.tx, name)
	if err != nil {
		return nil, err
	}
	bc := &batchColl{c: c, exists: exists, m: collMeta{epoch: b.s.epoch}}
	if exists {
		if bc.m, err = c.readMeta(); err != nil {
			return nil, err
		}
	}
	b.colls[name] = bc
	return bc, nil
}

// apply checks and applies one commit. A failed check comes back as
// checkErr, before anything was written, and concerns this commit only
// (a damaged collection fails its own commits, not the batch); err is a
// failure of the transaction itself, which must then be rolled back.
func (b *batch) apply(r *request) (a store.Applied, checkErr, err error) {
	bc, err := b.coll(r.collection)
	if err != nil {
		return a, err, nil
	}
	if r.key != nil && bc.exists {
		if k, ok, err := b.key(bc.c, r.key.ID); err != nil {
			return a, err, nil
		} else if ok {
			k.Answer = bytes.Clone(k.Answer)
			return a, &store.KeyExistsError{Key: k}, nil
		}
	}
	if err := check(bc.c, bc.exists, r.ops, r.ifs); err != nil {
		return a, err, nil
	}
	if !bc.exists {
		if bc.c, err = createColl(b.tx, r.collection, bc.m.epoch); err != nil {
			return a, nil, err
		}
		bc.exists = true
	}

	m := &bc.m
	m.version++
	at := b.s.cfg.Now().UTC()
	m.at = at.UnixNano()
	vals := r.vals
	prev := make([]json.RawMessage, len(r.ops))
	var buf []byte // the commit's copies of the previous values
	for i := range r.ops {
		op := &r.ops[i]
		var val []byte
		if op.Op == protocol.OpPut {
			n := 8 + len(op.Value)
			val, vals = vals[:n:n], vals[n:]
		}
		if prev[i], err = bc.write(op, val, m.version, m.at, &buf); err != nil {
			return a, nil, err
		}
	}
	entry := protocol.AppendCommitOps(make([]byte, 0, len(r.opsJSON)+protocol.CommitJSONOverhead), m.version, at, r.opsJSON)
	if err := bc.c.log.Put(be64(m.version), entry); err != nil {
		return a, nil, fmt.Errorf("append commit %d: %w", m.version, err)
	}
	if r.pos != nil {
		if err := bc.c.meta.Put(keySource, r.pos); err != nil {
			return a, nil, fmt.Errorf("write source position: %w", err)
		}
	}
	bc.commits++
	a = store.Applied{Epoch: m.epoch, Commit: protocol.Commit{Version: m.version, At: at, Ops: r.ops}, Prev: prev}
	if r.key != nil {
		if err := b.recordKey(bc, r.collection, r.key, m.at, a); err != nil {
			return store.Applied{}, nil, err
		}
	}
	return a, nil, nil
}

// key returns the live idempotency key id of collection c.
func (b *batch) key(c coll, id string) (store.Key, bool, error) {
	kb := c.root.Bucket(bucketKeys)
	if kb == nil {
		return store.Key{}, false, nil
	}
	return liveKey(kb, id, b.s.cfg)
}

// liveKey returns the key id of kb unless it is missing or expired. Its
// Answer shares the transaction's memory.
func liveKey(kb *bolt.Bucket, id string, cfg store.Config) (store.Key, bool, error) {
	v := kb.Get([]byte(id))
	if v == nil {
		return store.Key{}, false, nil
	}
	k, err := decodeKey(id, v)
	if err != nil {
		return store.Key{}, false, err
	}
	if !cfg.Now().Before(k.At.Add(cfg.KeyTTL)) {
		return store.Key{}, false, nil
	}
	return k, true, nil
}

// recordKey records the idempotency key k of the commit a, made at
// (Unix nanoseconds), in the collection's keys and the store's index.
func (b *batch) recordKey(bc *batchColl, collection string, k *store.NewKey, at int64, a store.Applied) error {
	kb, err := bc.c.root.CreateBucketIfNotExists(bucketKeys)
	if err != nil {
		return fmt.Errorf("create keys bucket: %w", err)
	}
	if old := kb.Get([]byte(k.ID)); old != nil {
		// An expired key of the same id: its index entry goes.
		if ok, err := decodeKey(k.ID, old); err == nil {
			b.unindexKey(ok.At.UnixNano(), collection, k.ID)
		}
	}
	if err := kb.Put([]byte(k.ID), encodeKey(at, k.Fingerprint, k.Answer(a))); err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	}
	ix, err := b.tx.CreateBucketIfNotExists(keysBucket)
	if err != nil {
		return fmt.Errorf("create key index: %w", err)
	}
	ix.FillPercent = fullPages
	if err := ix.Put(keyIndexKey(at, collection, k.ID), nil); err != nil {
		return fmt.Errorf("index idempotency key: %w", err)
	}
	b.keys++
	return b.addKeyCount(1)
}

// unindexKey deletes the index entry of a key, when there is one.
func (b *batch) unindexKey(at int64, collection, id string) {
	ix := b.tx.Bucket(keysBucket)
	if ix == nil {
		return
	}
	k := keyIndexKey(at, collection, id)
	if ix.Get(k) == nil {
		return
	}
	if ix.Delete(k) == nil {
		_ = b.addKeyCount(-1)
	}
}

// keyCount returns how many entries the key index holds.
func (b *batch) keyCount() uint64 {
	v := b.tx.Bucket(storeBucket).Get(keyKeyCount)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// addKeyCount adds d to the key index's count.
func (b *batch) addKeyCount(d int) error {
	n := int64(b.keyCount()) + int64(d)
	if n < 0 {
		n = 0
	}
	return b.tx.Bucket(storeBucket).Put(keyKeyCount, be64(uint64(n)))
}

// maxKeySweep is the idempotency keys a batch sweeps at least; it sweeps
// two more for each key it recorded, so that the expired go as fast as
// new ones come.
const maxKeySweep = 16

// sweepKeys forgets, oldest first, the idempotency keys expired and those
// past Config.MaxKeys, a bounded number of them.
func (b *batch) sweepKeys() error {
	ix := b.tx.Bucket(keysBucket)
	if ix == nil {
		return nil
	}
	cfg := b.s.cfg
	cutoff := cfg.Now().Add(-cfg.KeyTTL).UnixNano()
	count := b.keyCount()
	cur := ix.Cursor()
	budget := maxKeySweep + 2*b.keys
	removed := 0
	for k, _ := cur.First(); k != nil && removed < budget; k, _ = cur.First() {
		if len(k) < 10 {
			return fmt.Errorf("key index: %w", errDamaged)
		}
		at := int64(binary.BigEndian.Uint64(k))
		if at > cutoff && count <= uint64(cfg.MaxKeys) {
			break
		}
		coll, id, ok := bytes.Cut(k[8:], []byte{0})
		if !ok {
			return fmt.Errorf("key index: %w", errDamaged)
		}
		if cb := b.tx.Bucket(coll); cb != nil {
			if kb := cb.Bucket(bucketKeys); kb != nil {
				if v := kb.Get(id); len(v) >= 8 && int64(binary.BigEndian.Uint64(v)) == at {
					if err := kb.Delete(bytes.Clone(id)); err != nil {
						return fmt.Errorf("forget idempotency key: %w", err)
					}
				}
			}
		}
		if err := cur.Delete(); err != nil {
			return fmt.Errorf("forget idempotency key: %w", err)
		}
		removed++
		if count > 0 {
			count--
		}
	}
	if removed == 0 {
		return nil
	}
	return b.tx.Bucket(storeBucket).Put(keyKeyCount, be64(count))
}

// drop replaces the collection's bucket with an empty one under a new
// epoch at version 0, whose source position is pos (none when nil).
func (b *batch) drop(name string, pos []byte) (protocol.Head, error) {
	old := b.s.epoch
	if bc, err := b.coll(name); err == nil {
		old = bc.m.epoch
	} else if !errors.Is(err, errDamaged) {
		return protocol.Head{}, err
	}
	if b.tx.Bucket([]byte(name)) != nil {
		if err := b.tx.DeleteBucket([]byte(name)); err != nil {
			return protocol.Head{}, fmt.Errorf("delete collection bucket: %w", err)
		}
	}
	epoch := newEpoch(old)
	c, err := createColl(b.tx, name, epoch)
	if err != nil {
		return protocol.Head{}, err
	}
	if pos != nil {
		if err := c.meta.Put(keySource, pos); err != nil {
			return protocol.Head{}, fmt.Errorf("write source position: %w", err)
		}
	}
	b.colls[name] = &batchColl{c: c, exists: true, m: collMeta{epoch: epoch}}
	return protocol.Head{Epoch: epoch, Version: 0}, nil
}

// finish runs retention for every collection the batch wrote and writes
// its meta.
func (b *batch) finish() error {
	if err := b.sweepKeys(); err != nil {
		return err
	}
	for name, bc := range b.colls {
		if bc.commits == 0 {
			continue
		}
		m := &bc.m
		if err := bc.c.trimLog(m, b.s.cfg.RetainCommits, maxLogTrim*bc.commits); err != nil {
			return fmt.Errorf("collection %q: %w", name, err)
		}
		cutoff := b.s.tombCutoff(m.at)
		if err := bc.c.trimTombstones(m, cutoff, maxTombTrim*bc.commits); err != nil {
			return fmt.Errorf("collection %q: %w", name, err)
		}
		if err := bc.c.writeMeta(m); err != nil {
			return fmt.Errorf("collection %q: %w", name, err)
		}
	}
	return nil
}

// write applies one checked op at version, keeping the byversion index and
// the tombstones in step with the records. For a put, val is the records
// value: 8 bytes for the version, which write fills in, then the value.
// It returns the record's value before the op, nil if there was none,
// copied out of the transaction by appending it to *buf. The copy is
// capped at its length, so that later appends to *buf, growing it in place
// or not, never touch it.
//
// It uses the collection's cursors for lookups and deletes, which saves
// bbolt a cursor per call, and relies on an invariant of the layout: an id
// has a record or a tombstone, never both.
func (bc *batchColl) write(op *protocol.Op, val []byte, version uint64, nanos int64, buf *[]byte) (old json.RawMessage, err error) {
	c := &bc.c
	key := []byte(op.ID)
	if k, v := c.recCur().Seek(key); bytes.Equal(k, key) {
		ov, ok := recordVersion(v)
		if !ok {
			return nil, fmt.Errorf("record %q: %w", op.ID, errDamaged)
		}
		start := len(*buf)
		*buf = append(*buf, v[8:]...)
		old = (*buf)[start:len(*buf):len(*buf)]
		if op.Op == protocol.OpDelete {
			if err := c.recCur().Delete(); err != nil {
				return nil, fmt.Errorf("delete %q: %w", op.ID, err)
			}
		}
		if err := bc.deleteAt(c.byVerCur(), ov, op.ID); err != nil {
			return nil, fmt.Errorf("unindex record %q: %w", op.ID, err)
		}
	} else if k, v := c.tombCur().Seek(key); bytes.Equal(k, key) {
		tv, _, ok := tombstone(v)
		if !ok {
			return nil, fmt.Errorf("tombstone %q: %w", op.ID, errDamaged)
		}
		if err := c.tombCur().Delete(); err != nil {
			return nil, fmt.Errorf("delete tombstone %q: %w", op.ID, err)
		}
		if err := bc.deleteAt(c.tombIdxCur(), tv, op.ID); err != nil {
			return nil, fmt.Errorf("unindex tombstone %q: %w", op.ID, err)
		}
	}
	switch op.Op {
	case protocol.OpPut:
		binary.BigEndian.PutUint64(val, version)
		if err := c.records.Put(key, val); err != nil {
			return nil, fmt.Errorf("put %q: %w", op.ID, err)
		}
		if err := c.byVersion.Put(versionKey(version, op.ID), nil); err != nil {
			return nil, fmt.Errorf("index %q: %w", op.ID, err)
		}
	case protocol.OpDelete:
		if err := c.tombstones.Put(key, encodeTombstone(version, nanos)); err != nil {
			return nil, fmt.Errorf("tombstone %q: %w", op.ID, err)
		}
		if err := c.tombIndex.Put(versionKey(version, op.ID), be64(uint64(nanos))); err != nil {
			return nil, fmt.Errorf("index tombstone %q: %w", op.ID, err)
		}
	}
	return old, nil
}

// deleteAt deletes the index entry (version, id) through cur. The entry
// must exist: the indexes are kept in step with what they index.
func (bc *batchColl) deleteAt(cur *bolt.Cursor, version uint64, id string) error {
	bc.scratch = appendVersionKey(bc.scratch[:0], version, id)
	if k, _ := cur.Seek(bc.scratch); !bytes.Equal(k, bc.scratch) {
		return fmt.Errorf("no entry %d/%q: %w", version, id, errDamaged)
	}
	return cur.Delete()
}

// trimLog deletes the oldest commits while the log holds more than retain,
// at most budget of them.
func (c coll) trimLog(m *collMeta, retain, budget int) error {
	for i := 0; i < budget && m.version-m.logFloor > uint64(retain); i++ {
		if err := c.log.Delete(be64(m.logFloor + 1)); err != nil {
			return fmt.Errorf("trim log: %w", err)
		}
		m.logFloor++
	}
	return nil
}

// trimTombstones forgets, oldest version first, up to budget tombstones
// made before cutoff (Unix nanoseconds), raising m.tombFloor to the version
// of each.
func (c coll) trimTombstones(m *collMeta, cutoff int64, budget int) error {
	cur := c.tombIndex.Cursor()
	for i := 0; i < budget; i++ {
		k, v := cur.First()
		if k == nil {
			break
		}
		if len(k) < 8 || len(v) != 8 {
			return fmt.Errorf("tombstone index: %w", errDamaged)
		}
		if int64(binary.BigEndian.Uint64(v)) >= cutoff {
			break
		}
		version := binary.BigEndian.Uint64(k)
		key := bytes.Clone(k)
		id := key[8:]
		if t := c.tombstones.Get(id); t != nil {
			if tv, _, ok := tombstone(t); ok && tv == version {
				if err := c.tombstones.Delete(id); err != nil {
					return fmt.Errorf("trim tombstone: %w", err)
				}
			}
		}
		if err := c.tombIndex.Delete(key); err != nil {
			return fmt.Errorf("trim tombstone: %w", err)
		}
		m.tombFloor = max(m.tombFloor, version)
	}
	return nil
}
