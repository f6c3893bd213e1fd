package boltstore

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/store"
)

// The on-disk layout; doc.go describes it in prose.
var (
	// storeBucket holds the store-wide settings. Its name starts with an
	// underscore, which no valid collection name does.
	storeBucket = []byte("_viewsync")
	// keyFormat and keyEpoch are keys of storeBucket.
	keyFormat = []byte("format")
	keyEpoch  = []byte("epoch")

	// The nested buckets of a collection's bucket.
	bucketMeta       = []byte("meta")
	bucketRecords    = []byte("records")
	bucketByVersion  = []byte("byversion")
	bucketLog        = []byte("log")
	bucketTombstones = []byte("tombstones")
	bucketTombIndex  = []byte("tombindex")

	// The keys of a collection's meta bucket.
	keyVersion   = []byte("version")
	keyLogFloor  = []byte("logfloor")
	keyTombFloor = []byte("tombfloor")
	// keySource holds the collection's source position (store.Positions),
	// absent when it has none.
	keySource = []byte("source")

	// bucketKeys, nested in a collection's bucket and made by its first
	// keyed commit, maps an idempotency key's id to the key (see
	// encodeKey).
	bucketKeys = []byte("keys")
	// keysBucket indexes every collection's keys by age: at (8 bytes,
	// big-endian Unix nanoseconds), collection, a zero byte, id → nothing;
	// its entries are swept oldest first (see batch.sweepKeys). Its count
	// of entries is kept in storeBucket under keyKeyCount.
	keysBucket  = []byte("_keys")
	keyKeyCount = []byte("keys")
)

// errDamaged reports collection data that breaks the layout's invariants:
// the file was damaged or written by something else.
var errDamaged = fmt.Errorf("%w: collection data breaks the layout", ErrDamaged)

// formatVersion is the layout version written in storeBucket; Open refuses
// a file written in another one.
const formatVersion = 1

// epochBytes is how many random bytes an epoch holds; it is written as twice
// as many hex digits.
const epochBytes = 8

// collMeta is a collection's meta bucket, decoded.
type collMeta struct {
	// epoch names the collection's history.
	epoch string
	// version is the version of the latest commit.
	version uint64
	// at is the time of the latest commit in Unix nanoseconds, 0 before
	// the first. Stored with version.
	at int64
	// logFloor is the version of the newest commit no longer in the log:
	// the log holds exactly the commits logFloor+1 through version.
	logFloor uint64
	// tombFloor is the highest version of any trimmed tombstone: every
	// deletion with a greater version still has its tombstone.
	tombFloor uint64
}

// coll is an open collection bucket with its nested buckets, and cursors
// on some of them made on first use. A cursor must be positioned (Seek)
// before each use: writes in between may invalidate its position.
type coll struct {
	// root is the collection's bucket, holding the others.
	root       *bolt.Bucket
	meta       *bolt.Bucket
	records    *bolt.Bucket
	byVersion  *bolt.Bucket
	log        *bolt.Bucket
	tombstones *bolt.Bucket
	tombIndex  *bolt.Bucket

	recC, byVerC, tombC, tombIdxC *bolt.Cursor
}

// recCur returns the cursor on records.
func (c *coll) recCur() *bolt.Cursor { return cursor(&c.recC, c.records) }

// byVerCur returns the cursor on byversion.
func (c *coll) byVerCur() *bolt.Cursor { return cursor(&c.byVerC, c.byVersion) }

// tombCur returns the cursor on tombstones.
func (c *coll) tombCur() *bolt.Cursor { return cursor(&c.tombC, c.tombstones) }

// tombIdxCur returns the cursor on tombindex.
func (c *coll) tombIdxCur() *bolt.Cursor { return cursor(&c.tombIdxC, c.tombIndex) }

// cursor returns *cp, first making it a cursor on b.
func cursor(cp **bolt.Cursor, b *bolt.Bucket) *bolt.Cursor {
	if *cp == nil {
		*cp = b.Cursor()
	}
	return *cp
}

// openColl returns the collection's buckets, or ok false when the collection
// has never been written. A collection bucket missing a nested bucket is an
// error: the file is damaged.
func openColl(tx *bolt.Tx, name string) (c coll, ok bool, err error) {
	b := tx.Bucket([]byte(name))
	if b == nil {
		return coll{}, false, nil
	}
	c = coll{
		root:       b,
		meta:       b.Bucket(bucketMeta),
		records:    b.Bucket(bucketRecords),
		byVersion:  b.Bucket(bucketByVersion),
		log:        b.Bucket(bucketLog),
		tombstones: b.Bucket(bucketTombstones),
		tombIndex:  b.Bucket(bucketTombIndex),
	}
	if c.meta == nil || c.records == nil || c.byVersion == nil || c.log == nil || c.tombstones == nil || c.tombIndex == nil {
		return coll{}, false, fmt.Errorf("%w: a nested bucket is missing", errDamaged)
	}
	c.fillPages()
	return c, true, nil
}

// createColl creates the buckets of a collection that has none yet and
// writes its meta with the given epoch at version 0.
func createColl(tx *bolt.Tx, name, epoch string) (coll, error) {
	b, err := tx.CreateBucket([]byte(name))
	if err != nil {
		return coll{}, fmt.Errorf("create collection bucket: %w", err)
	}
	c := coll{root: b}
	for _, nb := range []struct {
		name []byte
		dst  **bolt.Bucket
	}{
		{bucketMeta, &c.meta},
		{bucketRecords, &c.records},
		{bucketByVersion, &c.byVersion},
		{bucketLog, &c.log},
		{bucketTombstones, &c.tombstones},
		{bucketTombIndex, &c.tombIndex},
	} {
		*nb.dst, err = b.CreateBucket(nb.name)
		if err != nil {
			return coll{}, fmt.Errorf("create %s bucket: %w", nb.name, err)
		}
	}
	c.fillPages()
	if err := c.meta.Put(keyEpoch, []byte(epoch)); err != nil {
		return coll{}, fmt.Errorf("write epoch: %w", err)
	}
	m := collMeta{epoch: epoch}
	if err := c.writeMeta(&m); err != nil {
		return coll{}, err
	}
	return c, nil
}

// fullPages is bbolt's highest Bucket.FillPercent.
const fullPages = 1.0

// fillPages tells bbolt to fill the pages of the buckets whose keys only
// ever grow (log, byversion, tombindex: keys start with a new version)
// before splitting them. With bbolt's default of half-full pages, every
// page left behind by appends would stay half empty, and a batch would
// write twice as many pages for them.
func (c *coll) fillPages() {
	c.log.FillPercent = fullPages
	c.byVersion.FillPercent = fullPages
	c.tombIndex.FillPercent = fullPages
}

// readMeta decodes the collection's meta bucket.
func (c coll) readMeta() (collMeta, error) {
	var m collMeta
	epoch := c.meta.Get(keyEpoch)
	if len(epoch) == 0 {
		return m, fmt.Errorf("%w: meta has no epoch", errDamaged)
	}
	m.epoch = string(epoch)
	var err error
	v := c.meta.Get(keyVersion)
	if len(v) != 16 {
		return m, fmt.Errorf("%w: meta version has %d bytes, not 16", errDamaged, len(v))
	}
	m.version, m.at = binary.BigEndian.Uint64(v), int64(binary.BigEndian.Uint64(v[8:]))
	if m.logFloor, err = getUint(c.meta, keyLogFloor); err != nil {
		return m, err
	}
	if m.tombFloor, err = getUint(c.meta, keyTombFloor); err != nil {
		return m, err
	}
	return m, nil
}

// writeMeta writes m's counters.
func (c coll) writeMeta(m *collMeta) error {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, m.version)
	binary.BigEndian.PutUint64(v[8:], uint64(m.at))
	if err := c.meta.Put(keyVersion, v); err != nil {
		return fmt.Errorf("write version: %w", err)
	}
	if err := c.meta.Put(keyLogFloor, be64(m.logFloor)); err != nil {
		return fmt.Errorf("write log floor: %w", err)
	}
	if err := c.meta.Put(keyTombFloor, be64(m.tombFloor)); err != nil {
		return fmt.Errorf("write tombstone floor: %w", err)
	}
	return nil
}

// getUint reads an 8-byte big-endian counter.
func getUint(b *bolt.Bucket, key []byte) (uint64, error) {
	v := b.Get(key)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: meta %s has %d bytes, not 8", errDamaged, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// be64 encodes v as 8 big-endian bytes, so that keys sort by number.
func be64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

// versionKey is the key of the byversion and tombindex buckets: the version,
// big-endian, then the record id.
func versionKey(version uint64, id string) []byte {
	return appendVersionKey(make([]byte, 0, 8+len(id)), version, id)
}

// appendVersionKey appends versionKey(version, id) to b.
func appendVersionKey(b []byte, version uint64, id string) []byte {
	b = binary.BigEndian.AppendUint64(b, version)
	return append(b, id...)
}

// recordVersion returns the version stored in a records value, or ok false
// when v is too short to be one.
func recordVersion(v []byte) (uint64, bool) {
	if len(v) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// tombstone decodes a tombstones value: the deletion version and its time
// in Unix nanoseconds.
func tombstone(v []byte) (version uint64, nanos int64, ok bool) {
	if len(v) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), int64(binary.BigEndian.Uint64(v[8:])), true
}

// encodeTombstone encodes a tombstones value.
func encodeTombstone(version uint64, nanos int64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, version)
	binary.BigEndian.PutUint64(b[8:], uint64(nanos))
	return b
}

// newEpoch returns a fresh random epoch of 16 hex digits, different from
// old.
func newEpoch(old string) string {
	for {
		var b [epochBytes]byte
		rand.Read(b[:]) // never fails; it crashes the program instead
		if e := hex.EncodeToString(b[:]); e != old {
			return e
		}
	}
}

// tombCutoff returns the time (Unix nanoseconds) before which a tombstone
// is past the horizon, for a collection whose latest commit was at at.
func (s *Store) tombCutoff(at int64) int64 {
	cutoff := at - s.cfg.RetainTombstones.Nanoseconds()
	if cutoff > at { // overflow: nothing is that old
		return math.MinInt64
	}
	return cutoff
}

// encodeKey encodes an idempotency key of bucketKeys: at (8 bytes,
// big-endian Unix nanoseconds), the fingerprint's length (1 byte), the
// fingerprint, the answer.
func encodeKey(at int64, fp string, answer []byte) []byte {
	b := make([]byte, 0, 9+len(fp)+len(answer))
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = append(b, byte(len(fp)))
	b = append(b, fp...)
	return append(b, answer...)
}

// decodeKey decodes a bucketKeys value; its Answer shares v's memory.
func decodeKey(id string, v []byte) (store.Key, error) {
	if len(v) < 9 || len(v) < 9+int(v[8]) {
		return store.Key{}, fmt.Errorf("idempotency key %s: %w", id, errDamaged)
	}
	n := int(v[8])
	return store.Key{
		ID:          id,
		At:          time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
		Fingerprint: string(v[9 : 9+n]),
		Answer:      v[9+n:],
	}, nil
}

// keyIndexKey is the key of keysBucket for a key of collection.
func keyIndexKey(at int64, collection, id string) []byte {
	b := make([]byte, 0, 9+len(collection)+len(id))
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = append(b, collection...)
	b = append(b, 0)
	return append(b, id...)
}
