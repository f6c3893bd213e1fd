// Package store defines Store, the durable home of viewsync's versioned
// collections (records, change logs, deletion tombstones), and Resume, the
// one rule a reader at a cursor follows: the commits after it, else a
// compacted catch-up, else a reset.
//
//	ch, err := store.Resume(ctx, s, "products", cursor, store.Page{Commits: 1000})
//
// The engines are boltstore (default), natskv (shared by several
// processes; also a Watcher) and memstore. Every engine passes storetest;
// the contract it checks (atomic durable commits, retention, epochs) is in
// docs/architecture.md, "Stores".
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Store is the durable home of versioned collections. Every collection name
// that passes protocol.ValidateCollection exists; one never written is empty
// at version 0 with a stable epoch.
type Store interface {
	// Head returns the collection's current epoch and version.
	Head(ctx context.Context, collection string) (protocol.Head, error)

	// Apply checks every precondition in ifs (record id → required record
	// version, 0 meaning "must not exist") and applies ops in order as one
	// commit, all or nothing. It returns once the commit is durable.
	// A failed precondition returns a *PreconditionError (errors.Is
	// ErrPrecondition); a delete of a missing record returns ErrNotFound
	// (wrapped); an empty ops slice returns ErrEmptyCommit. On error nothing
	// changes. On success Applied.Prev holds, for each op, the value its
	// record had just before it.
	Apply(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64) (Applied, error)

	// Get returns one record, or ErrNotFound.
	Get(ctx context.Context, collection, id string) (protocol.Record, error)

	// Snapshot returns every record of the collection, sorted by id, read at
	// exactly one version.
	Snapshot(ctx context.Context, collection string) (protocol.Snapshot, error)

	// Changes returns, read at one version, the commits after version
	// `after`, oldest first, as many as page takes (Page.Takes: a count
	// and a byte bound, the first commit always), with the epoch and head
	// version they were read at. When the log no longer holds commit
	// after+1 it returns ErrCompacted. A cursor ahead of the head gets no
	// commits; the caller compares it with the version.
	Changes(ctx context.Context, collection string, after uint64, page Page) (protocol.Changes, error)

	// CatchUp returns, read at one version, the records whose version is
	// greater than after and the ids deleted after it and not written since.
	// Its cost grows with what changed, not with the collection. When
	// deletions after `after` may have been forgotten (tombstones trimmed)
	// it returns ErrHistoryGone.
	CatchUp(ctx context.Context, collection string, after uint64) (protocol.CatchUp, error)

	// Drop deletes the collection's records, log and tombstones and starts a
	// new history: a new epoch at version 0, which it returns.
	Drop(ctx context.Context, collection string) (protocol.Head, error)

	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

// Applied is the result of a successful Apply.
type Applied struct {
	// Epoch is the collection's epoch the commit belongs to.
	Epoch string
	// Commit is the commit as stored, with its version and time. Its Ops
	// may share memory with the ops the caller passed to Apply.
	Commit protocol.Commit
	// Prev holds, for each op i of Commit.Ops, the compact JSON value the
	// record had just before op i was applied: after ops 0 … i-1 of the
	// same commit, so that two ops on one id chain. It is nil where the
	// record did not exist then. len(Prev) == len(Commit.Ops). The values
	// share no memory with the store nor with the ops passed to Apply:
	// they stay valid and unchanged after Apply returns.
	Prev []json.RawMessage
}

// Config holds the settings every Store implementation honours. Its zero
// value means the defaults.
type Config struct {
	// RetainCommits is how many of the latest commits each collection's
	// change log keeps at least. Default DefaultRetainCommits.
	RetainCommits int
	// RetainTombstones is how long a deletion is remembered at least, for
	// catch-ups. Default DefaultRetainTombstones.
	RetainTombstones time.Duration
	// Now returns the current time; default time.Now. Tests inject a clock.
	Now func() time.Time
	// KeyTTL is how long a Keys store keeps an idempotency key after its
	// commit. Default DefaultKeyTTL.
	KeyTTL time.Duration
	// MaxKeys bounds the idempotency keys a Keys store keeps (the whole
	// store's for boltstore and memstore, each collection's for natskv);
	// past it the oldest are forgotten before they expire. Default
	// DefaultMaxKeys.
	MaxKeys int
}

// Defaults of Config.
const (
	DefaultRetainCommits    = 100_000
	DefaultRetainTombstones = 7 * 24 * time.Hour
	DefaultKeyTTL           = 24 * time.Hour
	DefaultMaxKeys          = 100_000
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.RetainCommits <= 0 {
		c.RetainCommits = DefaultRetainCommits
	}
	if c.RetainTombstones <= 0 {
		c.RetainTombstones = DefaultRetainTombstones
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KeyTTL <= 0 {
		c.KeyTTL = DefaultKeyTTL
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	return c
}

// Sentinel errors. Implementations wrap them with context; callers test
// them with errors.Is.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPrecondition: a record's version is not the one required.
	ErrPrecondition = errors.New("precondition failed")
	// ErrEmptyCommit: a commit without ops.
	ErrEmptyCommit = errors.New("commit has no ops")
	// ErrCompacted: the change log no longer holds the commits after the
	// cursor; a catch-up is needed.
	ErrCompacted = errors.New("change log compacted past cursor")
	// ErrHistoryGone: even a catch-up is impossible; a reset is needed.
	ErrHistoryGone = errors.New("history gone past cursor")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store closed")
	// ErrUnavailable: the store cannot do what was asked for now — its
	// disk is full or read-only, say — through no fault of the request;
	// the same request may succeed later.
	ErrUnavailable = errors.New("store unavailable")
)

// PreconditionError tells which record failed a precondition.
type PreconditionError struct {
	ID string
	// Want is the version required (0: must not exist).
	Want uint64
	// Have is the record's current version (0: it does not exist).
	Have uint64
}

// Error implements error.
func (e *PreconditionError) Error() string {
	switch {
	case e.Want == 0:
		return fmt.Sprintf("precondition failed: record %q exists (version %d)", e.ID, e.Have)
	case e.Have == 0:
		return fmt.Sprintf("precondition failed: record %q does not exist (want version %d)", e.ID, e.Want)
	default:
		return fmt.Sprintf("precondition failed: record %q is at version %d, not %d", e.ID, e.Have, e.Want)
	}
}

// Is makes errors.Is(err, ErrPrecondition) true.
func (e *PreconditionError) Is(target error) bool { return target == ErrPrecondition }

// Watcher is implemented by stores that several processes share (package
// natskv): through it, commits made by any process reach the subscribers of
// every process. The hub watches a store that implements it.
type Watcher interface {
	// Watch calls fn for every commit that becomes durable in a collection
	// this store has open (one it has read or written since it was opened;
	// for a Holder, one read or written lately, or held), whichever
	// process made it, per collection in version order, and for
	// every replacement of a collection's history (Drop, or the data lost
	// and recreated). Commits this process made are reported too. fn is
	// called from one goroutine at a time; it must return quickly and must
	// not call the store. Watch returns a function that stops the calls;
	// after it returns fn is not called again.
	Watch(fn func(Event)) (stop func())
}

// Holder is implemented by shared stores that release the collections a
// process no longer uses (package natskv closes a collection read or
// written by nobody for a while): a released collection's commits, made
// by other processes, are not reported to Watch until it is used again.
// The hub holds each collection that has live subscribers (or a waiter)
// on this process, so that their commits keep coming.
type Holder interface {
	// Hold keeps the collection open, opening it if it is not (without
	// waiting for it to load), until release is called. Holds of the same
	// collection add up; release may be called more than once.
	Hold(collection string) (release func())
}

// Event is what a Watcher reports.
type Event struct {
	// Collection is the collection that changed.
	Collection string
	// Epoch is the collection's epoch: the commit's, or the new one after a
	// replaced history.
	Epoch string
	// Commit is the durable commit, or nil when the collection's history
	// was replaced; Version then is the new history's head version.
	Commit *protocol.Commit
	// Version is the collection's version after the event.
	Version uint64
	// Prev holds, for each op of Commit.Ops, the value the record had
	// just before it, as Applied.Prev does, with len(Prev) ==
	// len(Commit.Ops); nil when unknown; consumers then treat the commit
	// as unfilterable. It is nil when Commit is. Every watcher gets the
	// same values: they must not be modified.
	Prev []json.RawMessage
}

// Positions is implemented by stores that keep, per collection, the
// position of an outside source feeding it (package pgsource keeps a
// PostgreSQL log position there), written in the same atomic, durable step
// as the commit or drop that carries it. A source resuming after a crash
// reads it back and skips what the collection already holds: nothing is
// lost and nothing applied twice. boltstore and memstore implement it.
//
// A position is opaque bytes of the source's own format. A collection
// never given one has none (nil). Apply leaves the position as it is;
// Drop clears it.
type Positions interface {
	// ApplyAt is Apply that also stores pos as the collection's position,
	// atomically with the commit: after a crash the store holds both or
	// neither. A nil pos leaves the position as it is. On error neither
	// changes.
	ApplyAt(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, pos []byte) (Applied, error)
	// DropAt is Drop that stores pos as the new history's position,
	// atomically with the drop; a nil pos clears it.
	DropAt(ctx context.Context, collection string, pos []byte) (protocol.Head, error)
	// Position returns the collection's position (nil when it has none),
	// sharing no memory with the store.
	Position(ctx context.Context, collection string) ([]byte, error)
}

// AtCommit is one commit of BatchPositions.ApplyAllAt: its ops and the
// source position stored with it (nil: the position stays as it is).
type AtCommit struct {
	Ops []protocol.Op
	Pos []byte
}

// BatchPositions is implemented by Positions stores that take several
// commits of one collection at once and make them durable together, so
// that a source with a backlog pays one durable write for many commits
// rather than one each (boltstore does). viewsync.Feed.CommitAll uses it
// when the store has it.
type BatchPositions interface {
	Positions
	// ApplyAllAt applies commits to collection in order, each as ApplyAt
	// would with its position, sharing durable writes with each other
	// (and with concurrent commits). None is applied after one that
	// failed, so the commits made are always a prefix of commits, with
	// the position of the last one made: it returns their Applied, in
	// order, and the first failure (nil when every commit was made).
	ApplyAllAt(ctx context.Context, collection string, commits []AtCommit) ([]Applied, error)
}
