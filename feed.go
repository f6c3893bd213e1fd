package viewsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/viewsync/viewsync/internal/errcode"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// ErrReadOnly: the collection is fed from a source outside viewsync (a
// PostgreSQL table, say): only that source writes it. It matches
// ErrForbidden too, so that every transport answers 403 forbidden. A
// *ReadOnlyError names the source.
var ErrReadOnly = errcode.ErrReadOnly

// ErrFed: Hub.Feed was asked for a collection another Feed already
// feeds.
var ErrFed = errors.New("collection already fed")

// ReadOnlyError is the refusal of a write to a collection a Feed owns. It
// matches ErrReadOnly and ErrForbidden.
type ReadOnlyError struct {
	// Collection is the collection written to.
	Collection string
	// Source names what feeds it ("PostgreSQL table public.products").
	Source string
	// Hint tells where to write instead ("write to the table").
	Hint string
}

// Error implements error: "collection products is fed from PostgreSQL
// table public.products; write to the table".
func (e *ReadOnlyError) Error() string {
	msg := "collection " + e.Collection + " is fed from " + e.Source
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Is makes errors.Is(err, ErrReadOnly) and errors.Is(err, ErrForbidden)
// true.
func (e *ReadOnlyError) Is(target error) bool {
	return target == ErrReadOnly || target == ErrForbidden
}

// Feed is the one writer of a collection fed from a source outside
// viewsync: while it is open, every other write to the collection —
// Collection.Commit, Put, Patch, Delete and Drop, so every transport and
// every call — is refused with a *ReadOnlyError. Its commits and drops
// carry the source's position, stored atomically with them (see
// store.Positions), and are published like any other: clients follow a
// fed collection as they follow any. Make one with Hub.Feed; Close it to
// let others write again.
type Feed struct {
	hub     *Hub
	name    string
	store   store.Positions
	refusal *ReadOnlyError
}

// Feed makes the hub's collection name fed from a source: source names it
// in the refusals of other writes, hint tells their writers where to write
// instead. The hub's store must keep source positions (implement
// store.Positions: boltstore and memstore do). A collection already fed
// fails with ErrFed.
func (h *Hub) Feed(name, source, hint string) (*Feed, error) {
	if err := protocol.ValidateCollection(name); err != nil {
		return nil, invalid(err)
	}
	ps, ok := h.store.(store.Positions)
	if !ok {
		return nil, fmt.Errorf("viewsync: feed %s: the store (%T) keeps no source positions (store.Positions)", name, h.store)
	}
	f := &Feed{hub: h, name: name, store: ps, refusal: &ReadOnlyError{Collection: name, Source: source, Hint: hint}}
	if _, loaded := h.feeds.LoadOrStore(name, f); loaded {
		return nil, fmt.Errorf("viewsync: feed %s: %w", name, ErrFed)
	}
	return f, nil
}

// refusal returns the error refusing a write to collection name, or nil
// when no Feed owns it.
func (h *Hub) refusal(name string) error {
	if f, ok := h.feeds.Load(name); ok {
		return f.(*Feed).refusal
	}
	return nil
}

// Collection returns the fed collection's name.
func (f *Feed) Collection() string { return f.name }

// Position returns the source position stored with the collection's
// latest commit or drop that carried one; nil when none.
func (f *Feed) Position(ctx context.Context) ([]byte, error) {
	pos, err := f.store.Position(ctx, f.name)
	if err != nil {
		return nil, fmt.Errorf("viewsync: position of %s: %w", f.name, err)
	}
	return pos, nil
}

// Commit applies ops as one commit with the source position pos (nil:
// the position stays as it is), both durable together, and publishes it.
// Ids and values keep protocol's rules (an id of 1–256 bytes, valid JSON,
// nested at most protocol.MaxValueDepth), made compact; the hub's size
// limits, which bound what clients send, do not apply: the source's data
// is what it is.
func (f *Feed) Commit(ctx context.Context, ops []Op, pos []byte) (Commit, error) {
	norm, err := f.normalize(ops)
	if err != nil {
		return Commit{}, err
	}
	start := time.Now()
	ap, err := f.store.ApplyAt(ctx, f.name, norm, nil, pos)
	if err != nil {
		return Commit{}, fmt.Errorf("viewsync: feed %s: %w", f.name, err)
	}
	f.hub.publish(ctx, store.Event{Collection: f.name, Epoch: ap.Epoch, Commit: &ap.Commit, Version: ap.Commit.Version, Prev: ap.Prev})
	f.hub.met.Committed(f.name, len(norm), ap.Commit.Version, time.Since(start))
	return ap.Commit, nil
}

// normalize checks and compacts a commit's ops as Commit takes them.
func (f *Feed) normalize(ops []Op) ([]Op, error) {
	if len(ops) == 0 {
		return nil, ErrEmptyCommit
	}
	lim := protocol.Limits{MaxIDBytes: protocol.MaxIDLen, MaxValueDepth: protocol.MaxValueDepth}
	norm := make([]Op, len(ops))
	for i, op := range ops {
		n, err := lim.NormalizeOp(op)
		if err != nil {
			return nil, invalid(fmt.Errorf("feed %s: op %d: %w", f.name, i, err))
		}
		norm[i] = n
	}
	return norm, nil
}

// FeedCommit is one commit of Feed.CommitAll: its ops and the source
// position stored with it (nil: the position stays as it is).
type FeedCommit struct {
	Ops []Op
	Pos []byte
}

// CommitAll applies commits in order, each as Commit would, made durable
// together when the store can (store.BatchPositions: boltstore does),
// else one after the other: a source with a backlog pays one durable
// write for many commits. The commits made are always a prefix of
// commits, each published once made; CommitAll returns them and the first
// failure (nil when all were made). A bad commit among them fails them
// all before any is made.
func (f *Feed) CommitAll(ctx context.Context, commits []FeedCommit) ([]Commit, error) {
	ats := make([]store.AtCommit, len(commits))
	for i, c := range commits {
		norm, err := f.normalize(c.Ops)
		if err != nil {
			return nil, fmt.Errorf("viewsync: feed %s: commit %d: %w", f.name, i, err)
		}
		ats[i] = store.AtCommit{Ops: norm, Pos: c.Pos}
	}
	start := time.Now()
	var applied []store.Applied
	var err error
	if bp, ok := f.store.(store.BatchPositions); ok {
		applied, err = bp.ApplyAllAt(ctx, f.name, ats)
	} else {
		for _, c := range ats {
			var ap store.Applied
			if ap, err = f.store.ApplyAt(ctx, f.name, c.Ops, nil, c.Pos); err != nil {
				break
			}
			applied = append(applied, ap)
		}
	}
	made := make([]Commit, len(applied))
	for i, ap := range applied {
		f.hub.publish(ctx, store.Event{Collection: f.name, Epoch: ap.Epoch, Commit: &ap.Commit, Version: ap.Commit.Version, Prev: ap.Prev})
		f.hub.met.Committed(f.name, len(ap.Commit.Ops), ap.Commit.Version, time.Since(start))
		made[i] = ap.Commit
	}
	if err != nil {
		return made, fmt.Errorf("viewsync: feed %s: %w", f.name, err)
	}
	return made, nil
}

// Drop replaces the collection's history with an empty one in a new
// epoch, whose source position is pos (nil: none), and resets its
// clients.
func (f *Feed) Drop(ctx context.Context, pos []byte) (Head, error) {
	hd, err := f.store.DropAt(ctx, f.name, pos)
	if err != nil {
		return Head{}, fmt.Errorf("viewsync: feed %s: drop: %w", f.name, err)
	}
	f.hub.publish(ctx, store.Event{Collection: f.name, Epoch: hd.Epoch, Version: hd.Version})
	return hd, nil
}

// Close ends the feed: other writers may write the collection again.
func (f *Feed) Close() {
	f.hub.feeds.CompareAndDelete(f.name, f)
}
