package memstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// collection is the state of one collection. Every field is guarded by mu.
// Stored records and commits are never modified in place and never handed
// out without a copy.
type collection struct {
	mu sync.RWMutex

	epoch   string
	version uint64
	// records are the current records by id.
	records map[string]protocol.Record

	// written lists, in version order, the (version, id) of every record
	// write. An entry is live while records[id].Version == version; stale
	// counts the others, which are dropped once they outnumber the live
	// ones. It is the catch-up's index of records by version.
	written []entry
	stale   int

	// log holds the commits logFloor+1 through version, oldest first.
	log      []protocol.Commit
	logFloor uint64

	// tombs lists, in version order, the deletions of records that existed
	// before the deleting commit. An entry is live while
	// tombVersion[id] == version, which holds exactly while the id has not
	// been written again; tombStale counts the others.
	tombs       []tomb
	tombVersion map[string]uint64
	tombStale   int
	// tombFloor is the highest version of a tombstone trimmed by age: a
	// catch-up from a cursor below it may miss a deletion.
	tombFloor uint64
}

// entry is an element of collection.written.
type entry struct {
	version uint64
	id      string
}

// tomb is an element of collection.tombs.
type tomb struct {
	version uint64
	id      string
	at      time.Time
}

// compactMin is how many stale index entries are tolerated before stale
// ones outnumbering live ones triggers a compaction.
const compactMin = 64

// newCollection returns an empty collection at version 0 in epoch.
func newCollection(epoch string) *collection {
	c := &collection{}
	c.reset(epoch)
	return c
}

// reset empties the collection and starts the history epoch at version 0.
func (c *collection) reset(epoch string) {
	c.epoch = epoch
	c.version = 0
	c.records = make(map[string]protocol.Record)
	c.written, c.stale = nil, 0
	c.log, c.logFloor = nil, 0
	c.tombs, c.tombVersion, c.tombStale, c.tombFloor = nil, make(map[string]uint64), 0, 0
}

// change is the net effect of a commit on one record.
type change struct {
	value   json.RawMessage // the new value; nil when deleted
	deleted bool
}

// apply checks ifs, applies ops (owned by the collection from now on) as
// one commit and returns it. On error nothing changes.
func (c *collection) apply(ops []protocol.Op, ifs map[string]uint64, cfg store.Config) (protocol.Commit, error) {
	for _, id := range slices.Sorted(maps.Keys(ifs)) {
		want, have := ifs[id], uint64(0)
		if r, ok := c.records[id]; ok {
			have = r.Version
		}
		if have != want {
			return protocol.Commit{}, &store.PreconditionError{ID: id, Want: want, Have: have}
		}
	}

	net := make(map[string]change, len(ops))
	exists := func(id string) bool {
		if ch, ok := net[id]; ok {
			return !ch.deleted
		}
		_, ok := c.records[id]
		return ok
	}
	for i, op := range ops {
		switch op.Op {
		case protocol.OpPut:
			net[op.ID] = change{value: op.Value}
		case protocol.OpDelete:
			if !exists(op.ID) {
				return protocol.Commit{}, fmt.Errorf("op %d: delete %q: %w", i, op.ID, store.ErrNotFound)
			}
			net[op.ID] = change{deleted: true}
		default:
			return protocol.Commit{}, fmt.Errorf("op %d: %w: unknown op %q", i, protocol.ErrBadOp, op.Op)
		}
	}

	v := c.version + 1
	at := cfg.Now().UTC()
	for _, id := range slices.Sorted(maps.Keys(net)) {
		ch := net[id]
		_, existed := c.records[id]
		if existed {
			c.stale++
		}
		if ch.deleted {
			if existed {
				delete(c.records, id)
				c.tombs = append(c.tombs, tomb{version: v, id: id, at: at})
				c.tombVersion[id] = v
			}
			continue
		}
		c.records[id] = protocol.Record{ID: id, Value: ch.value, Version: v}
		c.written = append(c.written, entry{version: v, id: id})
		if _, ok := c.tombVersion[id]; ok {
			// A catch-up from before the deletion gets the new record,
			// whose version is newer still: the tombstone is not needed.
			delete(c.tombVersion, id)
			c.tombStale++
		}
	}
	c.version = v
	cm := protocol.Commit{Version: v, At: at, Ops: ops}
	c.log = append(c.log, cm)

	c.trimLog(cfg.RetainCommits)
	c.trimTombstones(at.Add(-cfg.RetainTombstones))
	c.compact()
	return cm, nil
}

// trimLog drops the oldest commits beyond the latest retain.
func (c *collection) trimLog(retain int) {
	for len(c.log) > retain {
		c.log[0] = protocol.Commit{}
		c.log = c.log[1:]
		c.logFloor++
	}
}

// trimTombstones drops, from the oldest on, stale tombstones and those made
// before cutoff, raising tombFloor past the latter. It stops at the first
// live tombstone made at or after cutoff, so a clock that goes back can only
// make tombstones live longer.
func (c *collection) trimTombstones(cutoff time.Time) {
	n := 0
	for _, t := range c.tombs {
		live := c.tombVersion[t.id] == t.version
		if live && !t.at.Before(cutoff) {
			break
		}
		if live {
			delete(c.tombVersion, t.id)
			c.tombFloor = max(c.tombFloor, t.version)
		} else {
			c.tombStale--
		}
		n++
	}
	clear(c.tombs[:n])
	c.tombs = c.tombs[n:]
}

// compact drops the stale entries of written and tombs once they outnumber
// the live ones, so both stay proportional to the live records and
// tombstones.
func (c *collection) compact() {
	if c.stale > compactMin && c.stale > len(c.written)/2 {
		c.written = slices.DeleteFunc(slices.Clone(c.written), func(e entry) bool {
			r, ok := c.records[e.id]
			return !ok || r.Version != e.version
		})
		c.stale = 0
	}
	if c.tombStale > compactMin && c.tombStale > len(c.tombs)/2 {
		c.tombs = slices.DeleteFunc(slices.Clone(c.tombs), func(t tomb) bool {
			return c.tombVersion[t.id] != t.version
		})
		c.tombStale = 0
	}
}

// snapshot returns a copy of every record, sorted by id.
func (c *collection) snapshot() protocol.Snapshot {
	recs := make([]protocol.Record, 0, len(c.records))
	for _, r := range c.records {
		recs = append(recs, r.Clone())
	}
	slices.SortFunc(recs, func(a, b protocol.Record) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return protocol.Snapshot{Epoch: c.epoch, Version: c.version, Records: recs}
}

// changes returns copies of the commits after version after, as many as
// page takes.
func (c *collection) changes(after uint64, page store.Page) (protocol.Changes, error) {
	ch := protocol.Changes{Epoch: c.epoch, Version: c.version, Commits: []protocol.Commit{}}
	if after >= c.version {
		return ch, nil
	}
	if after < c.logFloor {
		return protocol.Changes{}, fmt.Errorf("%w: log starts after version %d", store.ErrCompacted, c.logFloor)
	}
	log := c.log[after-c.logFloor:]
	log = log[:page.Prefix(log)]
	ch.Commits = make([]protocol.Commit, 0, len(log))
	for _, cm := range log {
		ch.Commits = append(ch.Commits, cm.Clone())
	}
	return ch, nil
}

// catchUp returns copies of the records written after version after and the
// ids deleted after it and not written since.
func (c *collection) catchUp(after uint64) (protocol.CatchUp, error) {
	if after < c.tombFloor {
		return protocol.CatchUp{}, fmt.Errorf("%w: deletions up to version %d are forgotten", store.ErrHistoryGone, c.tombFloor)
	}
	cu := protocol.CatchUp{
		Epoch:     c.epoch,
		Version:   c.version,
		Compacted: true,
		Records:   []protocol.Record{},
		Deleted:   []string{},
	}
	i := sort.Search(len(c.written), func(i int) bool { return c.written[i].version > after })
	for _, e := range c.written[i:] {
		if r, ok := c.records[e.id]; ok && r.Version == e.version {
			cu.Records = append(cu.Records, r.Clone())
		}
	}
	j := sort.Search(len(c.tombs), func(j int) bool { return c.tombs[j].version > after })
	for _, t := range c.tombs[j:] {
		if v, ok := c.tombVersion[t.id]; ok && v == t.version {
			cu.Deleted = append(cu.Deleted, t.id)
		}
	}
	return cu, nil
}
