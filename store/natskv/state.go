package natskv

import (
	"time"

	"github.com/viewsync/viewsync/store/internal/colstate"
	"github.com/viewsync/viewsync/store/internal/keyset"
)

// state is one process's materialised view of a collection at one version:
// what the stream holds, replayed (see follower). A state is only read
// and written under its coll's mu. A log entry's Seq is the stream
// sequence of the first message of the commit's log entry (subject
// c.V.0); a tombstone's Seq is a stream sequence above the tombstone's
// message and below any later write of the record: purging the record's
// subject below it removes the tombstone and nothing else.
type state struct {
	colstate.State
	// lastSeq is the stream sequence of the last message of the last batch
	// applied: the stream's last sequence when this state is current.
	lastSeq uint64
	// diskFloor is the newest commit no longer in the stream as far as
	// this process knows (it purged it, or never saw it on replay).
	diskFloor uint64
	// purge lists forgotten tombstones whose messages may still be in the
	// stream, for the committer to remove.
	purge []colstate.Tomb
	// keys are the collection's idempotency keys (store.Keys), from the
	// k.ID messages of the stream, in stream order.
	keys keyset.Set
	// keyFloor is the highest stream sequence of a key forgotten (expired
	// or past Config.MaxKeys): the committer purges the key messages up to
	// it from the stream; keysPurged is how far it has.
	keyFloor, keysPurged uint64
}

// sweepKeys forgets a few keys expired at now or past max.
func (s *state) sweepKeys(now time.Time, ttl time.Duration, max, budget int) {
	if top := s.keys.Sweep(now, ttl, max, budget); top > s.keyFloor {
		s.keyFloor = top
	}
}

// newState returns the empty state of a history at version 0.
func newState(epoch string) *state {
	return &state{State: colstate.New(epoch)}
}

// trimLog drops the oldest commits from memory once the log holds more
// than retain plus a slack, keeping retain. The committer purges the
// stream to match (see coll.trim).
func (s *state) trimLog(retain int) { s.TrimLog(retain, logSlack(retain)) }

// logSlack is how far beyond retain the log grows before it is trimmed, so
// that the stream is purged once per so many commits, not at each.
func logSlack(retain int) int { return max(1, retain/4) }

// raiseHorizon forgets every tombstone up to version h, keeping those
// still live for the committer to purge.
func (s *state) raiseHorizon(h uint64) {
	s.RaiseHorizon(h, func(t colstate.Tomb) { s.purge = append(s.purge, t) })
}
