package viewsync

import (
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Wire types, shared with package protocol.
type (
	// Record is one record of a collection.
	Record = protocol.Record
	// Op is one change inside a commit.
	Op = protocol.Op
	// Commit is one atomic change of a collection.
	Commit = protocol.Commit
	// Head is a collection's epoch and current version.
	Head = protocol.Head
	// Cursor is a position EPOCH:VERSION in a collection's history.
	Cursor = protocol.Cursor
	// Snapshot is a consistent view of a whole collection at one version.
	Snapshot = protocol.Snapshot
	// CatchUp is the compacted form of the commits after a cursor.
	CatchUp = protocol.CatchUp
	// Subscription follows a collection live; see Collection.Subscribe.
	Subscription = fanout.Subscription
	// Event is what a Subscription delivers.
	Event = fanout.Event
	// Page bounds one page of commits read by Collection.Changes: a count
	// and a byte bound.
	Page = store.Page
)

// Put returns an op that writes value under id.
func Put(id string, value []byte) Op { return Op{Op: protocol.OpPut, ID: id, Value: value} }

// Delete returns an op that deletes id.
func Delete(id string) Op { return Op{Op: protocol.OpDelete, ID: id} }

// Changes is what a client at a cursor needs to move forward (see
// Collection.Changes): the commits after it, a catch-up or a reset. Exactly
// one of Commits, CatchUp and Reset is set, as Kind says.
type Changes = store.Resumed

// ChangesKind tells which form a Changes answer takes.
type ChangesKind = store.ResumeKind

// The forms of a Changes answer.
const (
	// KindCommits: the log covers the cursor; Commits lists what follows it.
	KindCommits = store.KindCommits
	// KindCatchUp: the log was trimmed past the cursor; CatchUp holds the
	// records changed and the ids deleted since.
	KindCatchUp = store.KindCatchUp
	// KindReset: the cursor cannot be resumed (other epoch, ahead of the
	// head, or older than the tombstone horizon); Reset is a full snapshot.
	KindReset = store.KindReset
)
