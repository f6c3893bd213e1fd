// Package colstate holds a collection's state in memory, for the stores
// that keep one there (memstore, and natskv's replay of its stream): the
// records, the change log and the indexes a catch-up reads.
package colstate

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// State is one collection's state at one version. It is not safe for
// concurrent use: its owner guards it. Stored records and commits are never
// modified in place and never handed out without a copy.
type State struct {
	// Epoch names the history, Version is the version of its latest
	// commit.
	Epoch   string
	Version uint64

	// recs are the current records, all but those shed (ShedRecords),
	// their index by version in version order.
	recs Records

	// log holds the commits logFloor+1 through Version, oldest first.
	log      Log
	logFloor uint64

	// tombs lists, in version order, the deletions of records that existed
	// before the deleting commit. An entry is live while
	// tombVersion[id] == version, which holds exactly while the id has not
	// been written again; tombStale counts the others.
	tombs       []Tomb
	tombVersion map[string]uint64
	tombStale   int
	// tombFloor is the tombstone horizon: the highest version of a
	// forgotten tombstone. A catch-up from below it may miss a deletion.
	tombFloor uint64
}

// LogEntry is a commit of the log, with Seq, where the store keeps it
// (natskv: the stream sequence of its first log message; 0 for a store
// without such a place). A store that keeps it there may shed its ops
// from memory (State.Shed): Commit.Ops is then nil.
type LogEntry struct {
	Commit protocol.Commit
	Seq    uint64
	// Size is the commit's protocol.CommitSize, kept when its ops are
	// shed.
	Size int
	// Prev, when not nil, holds the value each op's record had just
	// before it (see store.Applied.Prev), as a store read it back with
	// the commit; it is shed with the ops.
	Prev []json.RawMessage
}

// Tomb is a deletion tombstone: record ID deleted at Version, at time At.
// Seq is where the store keeps it, as for LogEntry (natskv: a stream
// sequence above the tombstone's message and below any later write of the
// record).
type Tomb struct {
	Version uint64
	ID      string
	At      time.Time
	Seq     uint64
}

// compactMin is how many stale index entries are tolerated before stale
// ones outnumbering live ones triggers a compaction.
const compactMin = 64

// New returns the empty state of history epoch at version 0.
func New(epoch string) State {
	return State{Epoch: epoch, tombVersion: make(map[string]uint64)}
}

// Head returns the state's epoch and version.
func (s *State) Head() protocol.Head { return protocol.Head{Epoch: s.Epoch, Version: s.Version} }

// RecordVersion returns the version of record id, and whether it exists,
// as far as the index in memory tells (see Lookup).
func (s *State) RecordVersion(id string) (uint64, bool) { return s.recs.Version(id) }

// Lookup returns the version of record id and whether it exists, and
// whether the state knows: it does not for a record whose index entry it
// shed (ShedRecords) and that was neither written nor deleted since.
func (s *State) Lookup(id string) (version uint64, exists, known bool) {
	if v, ok := s.recs.Version(id); ok {
		return v, true, true
	}
	if _, ok := s.tombVersion[id]; ok || s.recs.indexFloor == 0 {
		return 0, false, true
	}
	return 0, false, false
}

// IndexFloor returns the highest version of a record whose index entry
// was shed (ShedRecords): Get, Snapshot and CatchUp return only the
// records of later versions whole, and Lookup may not know the others. 0
// when the state holds every record.
func (s *State) IndexFloor() uint64 { return s.recs.indexFloor }

// Get returns a copy of record id; its Value is nil if it was shed
// (ShedValues). It does not find a record whose index entry was shed
// (ShedRecords).
func (s *State) Get(id string) (protocol.Record, bool) {
	v, ok := s.recs.Version(id)
	if !ok {
		return protocol.Record{}, false
	}
	return s.recs.record(id, v), true
}

// Apply applies c, the next commit, and appends it to the log with seq;
// it then owns c. The ops take effect in order; a delete of a missing
// record, which the store has refused before, is ignored. A delete of a
// record the state does not know (see Lookup) is taken to be of one that
// existed: its tombstone may be one too many, never one too few.
func (s *State) Apply(c protocol.Commit, seq uint64) {
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
		if ch.deleted {
			_, _, known := s.Lookup(id)
			if s.recs.Delete(id) || !known {
				s.tombs = append(s.tombs, Tomb{Version: v, ID: id, At: c.At, Seq: seq})
				s.tombVersion[id] = v
			}
			continue
		}
		s.recs.Put(id, v, ch.value)
		if _, ok := s.tombVersion[id]; ok {
			// A catch-up from before the deletion gets the new record,
			// whose version is newer still: the tombstone is not needed.
			delete(s.tombVersion, id)
			s.tombStale++
		}
	}
	s.Version = v
	s.log.Append(LogEntry{Commit: c, Seq: seq})
	s.compact()
}

// Restore sets the state from what a store read back: log, the commits
// it holds, at least one, which the state owns from now on; recs, the
// current records, as the store put them in the order it read them and
// shed them (the state owns them from now on, and recs is left empty); and
// tombs, the tombstones of the deleted records.
func (s *State) Restore(log Log, recs *Records, tombs map[string]Tomb) error {
	es := log.Entries()
	s.Version = es[len(es)-1].Commit.Version
	s.logFloor = es[0].Commit.Version - 1
	s.log = log
	for id, v := range recs.versions {
		if v > s.Version {
			return fmt.Errorf("record %q at version %d beyond the log's %d", id, v, s.Version)
		}
	}
	s.recs, *recs = *recs, Records{}
	s.recs.order()
	s.tombs = s.tombs[:0]
	clear(s.tombVersion)
	for id, t := range tombs {
		s.tombs = append(s.tombs, t)
		s.tombVersion[id] = t.Version
	}
	slices.SortFunc(s.tombs, func(a, b Tomb) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), strings.Compare(a.ID, b.ID))
	})
	return nil
}

// LogFloor returns the version of the newest commit no longer in the log.
func (s *State) LogFloor() uint64 { return s.logFloor }

// Log returns the log: the commits LogFloor()+1 through Version, oldest
// first. It must not be modified.
func (s *State) Log() []LogEntry { return s.log.Entries() }

// TrimLog drops the oldest commits from the log once it holds retain+slack
// of them or more, keeping the latest retain.
func (s *State) TrimLog(retain, slack int) {
	if s.log.Len() < retain+slack {
		return
	}
	n := s.log.Len() - retain
	s.log.Drop(n)
	s.logFloor += uint64(n)
}

// Shed drops from memory the ops of the oldest log entries, those beyond
// the newest keep bytes of them (by LogEntry.Size), for a store that
// keeps them elsewhere too (LogEntry.Seq): their Commit.Ops become nil,
// and Changes returns them so.
func (s *State) Shed(keep int) { s.log.Shed(keep, math.MaxUint64) }

// ShedValues drops from memory the values of the records written longest
// ago, beyond the newest keep bytes of them, for a store that keeps them
// elsewhere too: their Value becomes nil, in what Get, Snapshot and
// CatchUp return too, and the caller reads them from where it keeps
// them.
func (s *State) ShedValues(keep int) { s.recs.ShedValues(keep) }

// ShedRecords drops from memory the index entries, and values, of the
// records written longest ago, beyond the newest keep records, and only
// those of versions up to upTo, for a store that keeps them elsewhere
// too: IndexFloor rises to the newest version shed, and the caller reads
// the records up to it from where it keeps them.
func (s *State) ShedRecords(keep int, upTo uint64) { s.recs.ShedRecords(keep, upTo) }

// ValueBytes returns the size of the record values in memory.
func (s *State) ValueBytes() int { return s.recs.valueBytes }

// LogBytes returns the Size of the log entries whose ops are in memory.
func (s *State) LogBytes() int { return s.log.Bytes() }

// LogWhole reports whether the log holds the ops of every commit after
// version after.
func (s *State) LogWhole(after uint64) bool {
	return after >= s.logFloor && s.log.Whole(int(after-s.logFloor))
}

// Entry returns the log entry of commit v, if the log holds it.
func (s *State) Entry(v uint64) (LogEntry, bool) {
	if v <= s.logFloor || v > s.Version {
		return LogEntry{}, false
	}
	return s.log.Entries()[v-s.logFloor-1], true
}

// TombFloor returns the tombstone horizon: the highest version of a
// forgotten tombstone.
func (s *State) TombFloor() uint64 { return s.tombFloor }

// ExpiredHorizon returns the horizon a commit at time at sets when
// tombstones are kept for retain: the highest version of the live
// tombstones made before at-retain, taken oldest first and stopping at the
// first one still within the horizon (so a clock that went back only
// keeps tombstones longer). It returns TombFloor() when nothing expires.
func (s *State) ExpiredHorizon(at time.Time, retain time.Duration) uint64 {
	cutoff := at.Add(-retain)
	h := s.tombFloor
	for _, t := range s.tombs {
		if s.tombVersion[t.ID] != t.Version {
			continue
		}
		if !t.At.Before(cutoff) {
			break
		}
		h = t.Version
	}
	return h
}

// RaiseHorizon forgets every tombstone up to version h, passing those
// still live to forgotten unless it is nil.
func (s *State) RaiseHorizon(h uint64, forgotten func(Tomb)) {
	if h <= s.tombFloor {
		return
	}
	s.tombFloor = h
	n := 0
	for _, t := range s.tombs {
		if t.Version > h {
			break
		}
		if s.tombVersion[t.ID] == t.Version {
			delete(s.tombVersion, t.ID)
			if forgotten != nil {
				forgotten(t)
			}
		} else {
			s.tombStale--
		}
		n++
	}
	clear(s.tombs[:n])
	s.tombs = s.tombs[n:]
}

// compact drops the stale entries of tombs once they outnumber the live
// ones, so that it stays proportional to the live tombstones (Records
// compacts its index as it goes).
func (s *State) compact() {
	if s.tombStale > compactMin && s.tombStale > len(s.tombs)/2 {
		s.tombs = slices.DeleteFunc(slices.Clone(s.tombs), func(t Tomb) bool {
			return s.tombVersion[t.ID] != t.Version
		})
		s.tombStale = 0
	}
}

// ErrIndexShed: what was asked for includes records whose index entries
// the state shed (ShedRecords).
var ErrIndexShed = errors.New("the records' index entries were shed from memory")

// Snapshot returns a copy of every record, sorted by id (a shed value
// nil). A state whose IndexFloor is not 0 returns those of later
// versions only.
func (s *State) Snapshot() protocol.Snapshot {
	recs := make([]protocol.Record, 0, s.recs.Len())
	for id, v := range s.recs.versions {
		recs = append(recs, s.recs.record(id, v))
	}
	slices.SortFunc(recs, func(a, b protocol.Record) int { return strings.Compare(a.ID, b.ID) })
	return protocol.Snapshot{Epoch: s.Epoch, Version: s.Version, Records: recs}
}

// Changes returns copies of the commits after version after, as many as
// page takes. A commit whose ops were shed (see Shed) has nil Ops: the
// caller reads them from where it keeps them.
func (s *State) Changes(after uint64, page store.Page) (protocol.Changes, error) {
	ch := protocol.Changes{Epoch: s.Epoch, Version: s.Version, Commits: []protocol.Commit{}}
	if after >= s.Version {
		return ch, nil
	}
	if after < s.logFloor {
		return protocol.Changes{}, fmt.Errorf("%w: log starts after version %d", store.ErrCompacted, s.logFloor)
	}
	log := s.log.Entries()[after-s.logFloor:]
	n, total := 0, 0
	for _, e := range log {
		if !page.Takes(n, total, e.Size) {
			break
		}
		n, total = n+1, total+e.Size
	}
	ch.Commits = make([]protocol.Commit, 0, n)
	for _, e := range log[:n] {
		c := e.Commit.Clone()
		if e.Commit.Ops == nil {
			c.Ops = nil
		}
		ch.Commits = append(ch.Commits, c)
	}
	return ch, nil
}

// CatchUp returns copies of the records written after version after (a
// shed value nil) and the ids deleted after it and not written since. It
// returns ErrIndexShed (wrapped) if after is below IndexFloor.
func (s *State) CatchUp(after uint64) (protocol.CatchUp, error) {
	if after < s.tombFloor {
		return protocol.CatchUp{}, fmt.Errorf("%w: deletions up to version %d are forgotten", store.ErrHistoryGone, s.tombFloor)
	}
	if after < s.recs.indexFloor {
		return protocol.CatchUp{}, fmt.Errorf("%w: records up to version %d", ErrIndexShed, s.recs.indexFloor)
	}
	cu := protocol.CatchUp{
		Epoch:     s.Epoch,
		Version:   s.Version,
		Compacted: true,
		Records:   []protocol.Record{},
		Deleted:   []string{},
	}
	w := s.recs.written
	i := sort.Search(len(w), func(i int) bool { return w[i].version > after })
	for _, e := range w[i:] {
		if s.recs.live(e) {
			cu.Records = append(cu.Records, s.recs.record(e.id, e.version))
		}
	}
	j := sort.Search(len(s.tombs), func(j int) bool { return s.tombs[j].Version > after })
	for _, t := range s.tombs[j:] {
		if v, ok := s.tombVersion[t.ID]; ok && v == t.Version {
			cu.Deleted = append(cu.Deleted, t.ID)
		}
	}
	return cu, nil
}
