package natskv

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// state is one process's materialised view of a collection at one version:
// what the stream holds, replayed (see follower). A state is only read
// and written under its coll's mu. Stored records and commits are never
// modified in place and never handed out without a copy.
type state struct {
	epoch   string
	version uint64
	// lastSeq is the stream sequence of the last message of the last batch
	// applied: the stream's last sequence when this state is current.
	lastSeq uint64

	// records are the current records by id.
	records map[string]protocol.Record
	// written lists, in version order, the (version, id) of every record
	// write; an entry is live while records[id].Version == version, stale
	// counts the others. It is the catch-up's index of records by version.
	written []entry
	stale   int

	// log holds the commits logFloor+1 through version, oldest first.
	log      []logEntry
	logFloor uint64
	// diskFloor is the newest commit no longer in the stream as far as
	// this process knows (it purged it, or never saw it on replay).
	diskFloor uint64

	// tombs lists, in version order, the deletions of records that existed
	// before the deleting commit; live while tombVersion[id] == version.
	tombs       []tomb
	tombVersion map[string]uint64
	tombStale   int
	// tombFloor is the tombstone horizon: the highest version of a
	// forgotten tombstone. A catch-up from below it may miss a deletion.
	tombFloor uint64
	// purge lists forgotten tombstones whose messages may still be in the
	// stream, for the committer to remove.
	purge []tomb
}

// entry is an element of state.written.
type entry struct {
	version uint64
	id      string
}

// logEntry is a commit of the log and the stream sequence of the first
// message of its log entry (subject c.V.0).
type logEntry struct {
	commit protocol.Commit
	seq    uint64
}

// tomb is a deletion tombstone: record id deleted at version at time at.
// bound is a stream sequence above the tombstone's message and below any
// later write of the record: purging the record's subject below bound
// removes the tombstone and nothing else.
type tomb struct {
	version uint64
	id      string
	at      time.Time
	bound   uint64
}

// compactMin is how many stale index entries are tolerated before stale
// ones outnumbering live ones triggers a compaction.
const compactMin = 64

// newState returns the empty state of a history at version 0.
func newState(epoch string) *state {
	return &state{
		epoch:       epoch,
		records:     make(map[string]protocol.Record),
		tombVersion: make(map[string]uint64),
	}
}

// applyCommit applies a commit read from the stream: its ops in order, as
// the committer checked them. A delete of a missing record (which the
// committer never writes) is ignored. seq is the stream sequence of the
// commit's first log message.
func (s *state) applyCommit(c protocol.Commit, seq uint64) {
	type change struct {
		value   []byte
		deleted bool
	}
	net := make(map[string]change, len(c.Ops))
	for _, op := range c.Ops {
		if op.Op == protocol.OpDelete {
			net[op.ID] = change{deleted: true}
		} else {
			net[op.ID] = change{value: op.Value}
		}
	}
	v := c.Version
	for _, id := range slices.Sorted(maps.Keys(net)) {
		ch := net[id]
		_, existed := s.records[id]
		if existed {
			s.stale++
		}
		if ch.deleted {
			if existed {
				delete(s.records, id)
				s.tombs = append(s.tombs, tomb{version: v, id: id, at: c.At, bound: seq})
				s.tombVersion[id] = v
			}
			continue
		}
		s.records[id] = protocol.Record{ID: id, Value: ch.value, Version: v}
		s.written = append(s.written, entry{version: v, id: id})
		if _, ok := s.tombVersion[id]; ok {
			delete(s.tombVersion, id)
			s.tombStale++
		}
	}
	s.version = v
	s.log = append(s.log, logEntry{commit: c, seq: seq})
	s.compact()
}

// trimLog drops the oldest commits from memory once the log holds more
// than retain plus a slack, keeping retain. The committer purges the
// stream to match (see logPurge).
func (s *state) trimLog(retain int) {
	if len(s.log) < retain+logSlack(retain) {
		return
	}
	n := len(s.log) - retain
	clear(s.log[:n])
	s.log = slices.Clone(s.log[n:])
	s.logFloor += uint64(n)
}

// logSlack is how far beyond retain the log grows before it is trimmed, so
// that the stream is purged once per so many commits, not at each.
func logSlack(retain int) int { return max(1, retain/4) }

// raiseHorizon forgets every tombstone up to version h.
func (s *state) raiseHorizon(h uint64) {
	if h <= s.tombFloor {
		return
	}
	s.tombFloor = h
	n := 0
	for _, t := range s.tombs {
		if t.version > h {
			break
		}
		if s.tombVersion[t.id] == t.version {
			delete(s.tombVersion, t.id)
			s.purge = append(s.purge, t)
		} else {
			s.tombStale--
		}
		n++
	}
	clear(s.tombs[:n])
	s.tombs = s.tombs[n:]
}

// expiredHorizon returns the horizon a commit at time at sets: the
// highest version of the live tombstones made before at-retain, taken
// oldest first and stopping at the first one still within the horizon (so
// a clock that went back only keeps tombstones longer). It returns
// s.tombFloor when nothing expires.
func (s *state) expiredHorizon(at time.Time, retain time.Duration) uint64 {
	cutoff := at.Add(-retain)
	h := s.tombFloor
	for _, t := range s.tombs {
		if s.tombVersion[t.id] != t.version {
			continue
		}
		if !t.at.Before(cutoff) {
			break
		}
		h = t.version
	}
	return h
}

// compact drops the stale entries of written and tombs once they outnumber
// the live ones.
func (s *state) compact() {
	if s.stale > compactMin && s.stale > len(s.written)/2 {
		s.written = slices.DeleteFunc(slices.Clone(s.written), func(e entry) bool {
			r, ok := s.records[e.id]
			return !ok || r.Version != e.version
		})
		s.stale = 0
	}
	if s.tombStale > compactMin && s.tombStale > len(s.tombs)/2 {
		s.tombs = slices.DeleteFunc(slices.Clone(s.tombs), func(t tomb) bool {
			return s.tombVersion[t.id] != t.version
		})
		s.tombStale = 0
	}
}

// head returns the state's epoch and version.
func (s *state) head() protocol.Head { return protocol.Head{Epoch: s.epoch, Version: s.version} }

// get returns a copy of record id.
func (s *state) get(id string) (protocol.Record, bool) {
	r, ok := s.records[id]
	if !ok {
		return protocol.Record{}, false
	}
	return r.Clone(), true
}

// snapshot returns a copy of every record, sorted by id.
func (s *state) snapshot() protocol.Snapshot {
	recs := make([]protocol.Record, 0, len(s.records))
	for _, r := range s.records {
		recs = append(recs, r.Clone())
	}
	slices.SortFunc(recs, func(a, b protocol.Record) int { return strings.Compare(a.ID, b.ID) })
	return protocol.Snapshot{Epoch: s.epoch, Version: s.version, Records: recs}
}

// changes returns copies of the commits after version after, as many as
// page takes.
func (s *state) changes(after uint64, page store.Page) (protocol.Changes, error) {
	ch := protocol.Changes{Epoch: s.epoch, Version: s.version, Commits: []protocol.Commit{}}
	if after >= s.version {
		return ch, nil
	}
	if after < s.logFloor {
		return protocol.Changes{}, fmt.Errorf("%w: log starts after version %d", store.ErrCompacted, s.logFloor)
	}
	log := s.log[after-s.logFloor:]
	n, total := 0, 0
	for _, e := range log {
		size := protocol.CommitSize(e.commit)
		if !page.Takes(n, total, size) {
			break
		}
		n, total = n+1, total+size
	}
	ch.Commits = make([]protocol.Commit, 0, n)
	for _, e := range log[:n] {
		ch.Commits = append(ch.Commits, e.commit.Clone())
	}
	return ch, nil
}

// catchUp returns copies of the records written after version after and
// the ids deleted after it and not written since.
func (s *state) catchUp(after uint64) (protocol.CatchUp, error) {
	if after < s.tombFloor {
		return protocol.CatchUp{}, fmt.Errorf("%w: deletions up to version %d are forgotten", store.ErrHistoryGone, s.tombFloor)
	}
	cu := protocol.CatchUp{
		Epoch:     s.epoch,
		Version:   s.version,
		Compacted: true,
		Records:   []protocol.Record{},
		Deleted:   []string{},
	}
	i := sort.Search(len(s.written), func(i int) bool { return s.written[i].version > after })
	for _, e := range s.written[i:] {
		if r, ok := s.records[e.id]; ok && r.Version == e.version {
			cu.Records = append(cu.Records, r.Clone())
		}
	}
	j := sort.Search(len(s.tombs), func(j int) bool { return s.tombs[j].version > after })
	for _, t := range s.tombs[j:] {
		if v, ok := s.tombVersion[t.id]; ok && v == t.version {
			cu.Deleted = append(cu.Deleted, t.id)
		}
	}
	return cu, nil
}
