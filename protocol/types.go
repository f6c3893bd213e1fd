package protocol

import (
	"encoding/json"
	"slices"
	"time"
)

// OpKind names what an Op does to a record.
type OpKind string

// The op kinds of a commit.
const (
	OpPut    OpKind = "put"
	OpDelete OpKind = "delete"
)

// Op is one change inside a commit: a put of a whole value or a delete.
type Op struct {
	// Op is OpPut or OpDelete.
	Op OpKind `json:"op"`
	// ID names the record; see ValidateID.
	ID string `json:"id"`
	// Value is the record's new value for a put; empty for a delete. It is
	// compact JSON once the op has been normalized.
	Value json.RawMessage `json:"value,omitempty"`
}

// Commit is one atomic change of a collection: the ops it applied and the
// collection version it produced.
type Commit struct {
	// Version is the collection version this commit produced: the previous
	// commit's version plus one.
	Version uint64 `json:"version"`
	// After is set on a commit of a filtered view only: no commit between
	// After (exclusive) and Version concerns the view, so a client of the
	// view at any version from After to Version-1 applies it. A commit
	// without After follows Version-1 directly. Stores never set it.
	After *uint64 `json:"after,omitempty"`
	// At is when the commit was made (UTC, as recorded by the store).
	At time.Time `json:"at"`
	// Ops are applied in order, all or nothing.
	Ops []Op `json:"ops"`
}

// Clone returns a copy of c that shares no memory with it.
func (c Commit) Clone() Commit {
	ops := make([]Op, len(c.Ops))
	for i, op := range c.Ops {
		op.Value = slices.Clone(op.Value)
		ops[i] = op
	}
	c.Ops = ops
	if c.After != nil {
		after := *c.After
		c.After = &after
	}
	return c
}

// Record is one record of a collection.
type Record struct {
	// ID is the record's key within its collection.
	ID string `json:"id"`
	// Value is the record's compact JSON value.
	Value json.RawMessage `json:"value"`
	// Version is the collection version of the commit that last wrote it.
	Version uint64 `json:"version"`
}

// Clone returns a copy of r that shares no memory with it.
func (r Record) Clone() Record {
	r.Value = slices.Clone(r.Value)
	return r
}

// Head names a collection's current history and position in it.
type Head struct {
	// Epoch names one history of the collection; it changes only when that
	// history is replaced.
	Epoch string `json:"epoch"`
	// Version is the version of the latest commit, 0 for an empty history.
	Version uint64 `json:"version"`
}

// Cursor returns the head as a cursor.
func (h Head) Cursor() Cursor { return Cursor(h) }

// Snapshot is a consistent view of a whole collection at one version.
type Snapshot struct {
	Collection string `json:"collection,omitempty"`
	Epoch      string `json:"epoch"`
	Version    uint64 `json:"version"`
	// Reset is set when the snapshot answers a cursor that cannot be
	// resumed: the client must replace its state with Records.
	Reset bool `json:"reset,omitempty"`
	// Records are sorted by ID.
	Records []Record `json:"records"`
}

// CatchUp is the compacted form of every commit after a cursor: the records
// whose version is newer than the cursor and the ids deleted since. Applying
// it to the state at the cursor gives the state at Version.
type CatchUp struct {
	Collection string `json:"collection,omitempty"`
	Epoch      string `json:"epoch"`
	Version    uint64 `json:"version"`
	// Compacted is always true; it tells a client this is a catch-up.
	Compacted bool `json:"compacted"`
	// Records are the records written after the cursor, sorted by version.
	Records []Record `json:"records"`
	// Deleted are the ids deleted after the cursor and not written since.
	Deleted []string `json:"deleted"`
}

// Changes is the answer to a changes request when the log still holds
// every commit after the cursor.
type Changes struct {
	Epoch   string   `json:"epoch"`
	Version uint64   `json:"version"`
	Commits []Commit `json:"commits"`
}

// CommitRequest is the body of POST /v1/collections/{c}/commits.
type CommitRequest struct {
	Ops []Op `json:"ops"`
	// If maps record ids to the version each must have; 0 means the record
	// must not exist.
	If map[string]uint64 `json:"if,omitempty"`
}

// CommitResponse answers a commit or a delete.
type CommitResponse struct {
	Version uint64 `json:"version"`
}

// RecordResponse answers a put or a patch.
type RecordResponse struct {
	Version uint64 `json:"version"`
	Record  Record `json:"record"`
}
