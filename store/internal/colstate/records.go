package colstate

import (
	"cmp"
	"slices"
	"strings"

	"github.com/viewsync/viewsync/protocol"
)

// Records is what a collection's state holds of its current records: each
// one's version, the values of those whose value was not shed
// (ShedValues), and the index of record writes by version that a catch-up
// reads, all but the entries shed (ShedRecords). A store's load fills one
// as it replays what it keeps, shedding as it goes, and hands it to
// State.Restore; a State keeps one. The zero value is empty and ready to
// use. It is not safe for concurrent use.
type Records struct {
	// versions are the records' versions by id, values the values in
	// memory. Two maps, so that a record whose value was shed costs only
	// its id and version.
	versions map[string]uint64
	values   map[string][]byte
	// valueBytes is the size of values; the live entries of
	// written[:shedTo] have theirs shed.
	valueBytes, shedTo int
	// written lists the (version, id) of every record write, in the
	// order they were made: version order for a State (see order). An
	// entry is live while versions[id] == version; stale counts the
	// others, which are dropped once they outnumber the live ones.
	written []entry
	stale   int
	// indexFloor is the highest version of a record whose entry was shed
	// (ShedRecords): a record of a version up to it may be missing from
	// versions; every one of a later version is there. 0: versions holds
	// every record.
	indexFloor uint64
}

// entry is an element of Records.written.
type entry struct {
	version uint64
	id      string
}

// Len returns how many records are in memory.
func (r *Records) Len() int { return len(r.versions) }

// Version returns the version of record id, and whether it is in memory.
func (r *Records) Version(id string) (uint64, bool) {
	v, ok := r.versions[id]
	return v, ok
}

// IndexFloor returns the highest version of a record whose entry was shed
// (ShedRecords); 0 when every record is in memory.
func (r *Records) IndexFloor() uint64 { return r.indexFloor }

// ValueBytes returns the size of the record values in memory.
func (r *Records) ValueBytes() int { return r.valueBytes }

// Put sets record id to value at version v; the Records then own value.
// A State puts in version order; a store's load may put the records of a
// few commits out of it, which State.Restore orders.
func (r *Records) Put(id string, v uint64, value []byte) {
	if r.versions == nil {
		r.versions, r.values = make(map[string]uint64), make(map[string][]byte)
	}
	r.forget(id)
	r.versions[id] = v
	r.values[id] = value
	r.valueBytes += len(value)
	r.written = append(r.written, entry{version: v, id: id})
	r.compact()
}

// Delete removes record id; it reports whether the record was in memory.
func (r *Records) Delete(id string) bool {
	ok := r.forget(id)
	r.compact()
	return ok
}

// forget removes record id from the maps, its entry now stale; it reports
// whether the record was in memory.
func (r *Records) forget(id string) bool {
	if _, ok := r.versions[id]; !ok {
		return false
	}
	r.stale++
	r.valueBytes -= len(r.values[id])
	delete(r.versions, id)
	delete(r.values, id)
	return true
}

// live reports whether e is the write of its record's current version.
func (r *Records) live(e entry) bool {
	v, ok := r.versions[e.id]
	return ok && v == e.version
}

// record returns a copy of record id, at version v.
func (r *Records) record(id string, v uint64) protocol.Record {
	return protocol.Record{ID: id, Value: slices.Clone(r.values[id]), Version: v}
}

// ShedValues drops from memory the values of the records written longest
// ago, beyond the newest keep bytes of them.
func (r *Records) ShedValues(keep int) {
	for r.valueBytes > keep && r.shedTo < len(r.written) {
		e := r.written[r.shedTo]
		if r.live(e) {
			if val, ok := r.values[e.id]; ok {
				r.valueBytes -= len(val)
				delete(r.values, e.id)
			}
		}
		r.shedTo++
	}
}

// ShedRecords drops from memory the records written longest ago, beyond
// the newest keep records, and only those of versions up to upTo:
// IndexFloor rises to the newest version shed.
func (r *Records) ShedRecords(keep int, upTo uint64) {
	n := 0
	for len(r.versions) > keep && n < len(r.written) && r.written[n].version <= upTo {
		e := r.written[n]
		n++
		if !r.live(e) {
			r.stale--
			continue
		}
		r.valueBytes -= len(r.values[e.id])
		delete(r.versions, e.id)
		delete(r.values, e.id)
		r.indexFloor = max(r.indexFloor, e.version)
	}
	if n == 0 {
		return
	}
	clear(r.written[:n])
	r.written = r.written[n:]
	r.shedTo = max(0, r.shedTo-n)
}

// compact drops the stale entries of written once they outnumber the live
// ones, so that it stays proportional to the records in memory.
func (r *Records) compact() {
	if r.stale <= compactMin || r.stale <= len(r.written)/2 {
		return
	}
	shedTo := 0
	for _, e := range r.written[:r.shedTo] {
		if r.live(e) {
			shedTo++
		}
	}
	r.written = slices.DeleteFunc(slices.Clone(r.written), func(e entry) bool { return !r.live(e) })
	r.stale, r.shedTo = 0, shedTo
}

// order sorts written by version, then id, as a catch-up reads it: a
// store's load may have put the records of several commits out of version
// order (natskv writes a batch's records by id). The values shed stay
// shed; ShedValues walks again from the oldest entry, passing over them.
func (r *Records) order() {
	slices.SortFunc(r.written, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.version, b.version), strings.Compare(a.id, b.id))
	})
	r.shedTo = 0
}
