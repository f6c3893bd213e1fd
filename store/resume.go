package store

import (
	"context"
	"errors"

	"github.com/viewsync/viewsync/protocol"
)

// ResumeKind tells which form a Resumed answer takes.
type ResumeKind int

// The forms of a Resumed answer, from the cheapest.
const (
	// KindCommits: the log covers the cursor; Commits lists what follows
	// it (nothing yet, when the cursor is at the head).
	KindCommits ResumeKind = iota
	// KindCatchUp: the log was trimmed past the cursor; CatchUp holds the
	// records changed and the ids deleted since.
	KindCatchUp
	// KindReset: the cursor cannot be resumed (another epoch, ahead of
	// the head, or older than the tombstone horizon); Reset is a full
	// snapshot.
	KindReset
)

// String names the kind as the wire does.
func (k ResumeKind) String() string {
	switch k {
	case KindCommits:
		return "commits"
	case KindCatchUp:
		return "catchup"
	default:
		return "reset"
	}
}

// Resumed is what a reader at a cursor needs to move forward. Exactly one
// of Commits, CatchUp and Reset is set, as Kind says. CatchUp and Reset
// carry the collection's name and their Compacted or Reset flag.
type Resumed struct {
	Kind    ResumeKind
	Commits *protocol.Changes
	CatchUp *protocol.CatchUp
	Reset   *protocol.Snapshot
}

// Head returns the epoch and version the answer brings the reader to.
func (r Resumed) Head() protocol.Head {
	switch r.Kind {
	case KindCommits:
		h := protocol.Head{Epoch: r.Commits.Epoch, Version: r.Commits.Version}
		if n := len(r.Commits.Commits); n > 0 {
			h.Version = r.Commits.Commits[n-1].Version
		}
		return h
	case KindCatchUp:
		return protocol.Head{Epoch: r.CatchUp.Epoch, Version: r.CatchUp.Version}
	default:
		return protocol.Head{Epoch: r.Reset.Epoch, Version: r.Reset.Version}
	}
}

// Size returns the bytes the answer's data takes, as the memory bounds of
// history reads count them: its commits' protocol.CommitSize, or its
// records' protocol.RecordsSize plus its deleted ids' protocol.IDsSize.
func (r Resumed) Size() int {
	switch r.Kind {
	case KindCommits:
		n := 0
		for _, c := range r.Commits.Commits {
			n += protocol.CommitSize(c)
		}
		return n
	case KindCatchUp:
		return protocol.RecordsSize(r.CatchUp.Records) + protocol.IDsSize(r.CatchUp.Deleted)
	default:
		return protocol.RecordsSize(r.Reset.Records)
	}
}

// Resume returns what a reader of collection at cur needs to move forward,
// by the one rule every reader of history follows, long-polls and streams
// alike:
//
//  1. the commits after cur, as many as page takes, when the log still
//     holds them;
//  2. else a compacted catch-up: the records changed and the ids deleted
//     since cur;
//  3. else — cur from another epoch or ahead of the head, or deletions
//     since cur forgotten — a reset: a snapshot.
//
// An empty cursor epoch means the current epoch. Errors are the store's.
func Resume(ctx context.Context, s Store, collection string, cur protocol.Cursor, page Page) (Resumed, error) {
	ch, err := s.Changes(ctx, collection, cur.Version, page)
	switch {
	case errors.Is(err, ErrCompacted):
		return ResumeCompacted(ctx, s, collection, cur)
	case err != nil:
		return Resumed{}, err
	case Lost(cur, protocol.Head{Epoch: ch.Epoch, Version: ch.Version}):
		return ResumeReset(ctx, s, collection)
	}
	return Resumed{Kind: KindCommits, Commits: &ch}, nil
}

// ResumeCompacted is Resume from its second step, for a reader that wants
// no commits: one whose backlog was dropped because it fell behind. It
// returns a catch-up, or a reset when even that is impossible.
func ResumeCompacted(ctx context.Context, s Store, collection string, cur protocol.Cursor) (Resumed, error) {
	cu, err := s.CatchUp(ctx, collection, cur.Version)
	switch {
	case errors.Is(err, ErrHistoryGone):
		return ResumeReset(ctx, s, collection)
	case err != nil:
		return Resumed{}, err
	case Lost(cur, protocol.Head{Epoch: cu.Epoch, Version: cu.Version}):
		return ResumeReset(ctx, s, collection)
	}
	cu.Collection, cu.Compacted = collection, true
	return Resumed{Kind: KindCatchUp, CatchUp: &cu}, nil
}

// ResumeReset is Resume's last step alone, for a reader without a cursor
// or known to be in another epoch: a snapshot, flagged as a reset.
func ResumeReset(ctx context.Context, s Store, collection string) (Resumed, error) {
	snap, err := s.Snapshot(ctx, collection)
	if err != nil {
		return Resumed{}, err
	}
	snap.Collection, snap.Reset = collection, true
	return Resumed{Kind: KindReset, Reset: &snap}, nil
}

// Lost reports whether a reader at cur cannot resume in a history whose
// head is hd: cur is from another epoch, or ahead of the head. An empty
// cursor epoch means the current epoch.
func Lost(cur protocol.Cursor, hd protocol.Head) bool {
	return (cur.Epoch != "" && cur.Epoch != hd.Epoch) || cur.Version > hd.Version
}

// ResumeView is the rule for a reader of a filtered view at cur, match
// telling which records are in the view. A view's history is not in the
// log (a commit does not say whether the records it changed were in the
// view before it), so it answers:
//
//  1. a catch-up of the records changed since cur, when every one of
//     them is in the view and nothing was deleted: the reader lacks
//     exactly those;
//  2. else a reset of the view: its records alone. A record changed
//     since cur that is not in the view may or may not be one the reader
//     holds, and naming it in a deletion could tell the reader of a
//     record it may not see.
//
// Nothing outside the view is in the answer.
func ResumeView(ctx context.Context, s Store, collection string, cur protocol.Cursor, match func(protocol.Record) bool) (Resumed, error) {
	cu, err := s.CatchUp(ctx, collection, cur.Version)
	switch {
	case errors.Is(err, ErrHistoryGone):
		return ResumeViewReset(ctx, s, collection, match)
	case err != nil:
		return Resumed{}, err
	case Lost(cur, protocol.Head{Epoch: cu.Epoch, Version: cu.Version}):
		return ResumeViewReset(ctx, s, collection, match)
	}
	if len(cu.Deleted) > 0 {
		return ResumeViewReset(ctx, s, collection, match)
	}
	for _, r := range cu.Records {
		if !match(r) {
			return ResumeViewReset(ctx, s, collection, match)
		}
	}
	cu.Collection, cu.Compacted = collection, true
	return Resumed{Kind: KindCatchUp, CatchUp: &cu}, nil
}

// ResumeViewReset is ResumeReset for a filtered view: a snapshot of the
// records match admits, flagged as a reset.
func ResumeViewReset(ctx context.Context, s Store, collection string, match func(protocol.Record) bool) (Resumed, error) {
	r, err := ResumeReset(ctx, s, collection)
	if err != nil {
		return r, err
	}
	recs := r.Reset.Records[:0:0]
	for _, rec := range r.Reset.Records {
		if match(rec) {
			recs = append(recs, rec)
		}
	}
	if recs == nil {
		recs = []protocol.Record{}
	}
	r.Reset.Records = recs
	return r, nil
}
