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
