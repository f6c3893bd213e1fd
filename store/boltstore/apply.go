package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Apply implements store.Store. It returns once the transaction holding
// the commit is durable (unless Options.NoSync). While the commit waits in
// the queue a done ctx withdraws it; once it is being written Apply waits
// for the outcome, so an error always means nothing changed.
//
// Ops are expected normalized (protocol.NormalizeOp); Apply still refuses,
// with protocol.ErrBadID, ErrBadOp or ErrBadValue, an op that would make
// the write fail or the log unreadable, so that one bad commit never fails
// the others of its batch. Values are stored as given.
func (s *Store) Apply(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64) (store.Applied, error) {
	return s.ApplyAt(ctx, collection, ops, ifs, nil)
}

// ApplyAt implements store.Positions: Apply, storing pos (when not nil) in
// the collection's meta in the same transaction.
func (s *Store) ApplyAt(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, pos []byte) (store.Applied, error) {
	return s.apply(ctx, collection, ops, ifs, pos, nil)
}

// ApplyKeyed implements store.Keys: Apply, recording k in the same
// transaction. k.Answer is called by the committer, inside the
// transaction.
func (s *Store) ApplyKeyed(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, k store.NewKey) (store.Applied, error) {
	if err := k.Check(); err != nil {
		return store.Applied{}, fmt.Errorf("boltstore: apply %q: %w", collection, err)
	}
	return s.apply(ctx, collection, ops, ifs, nil, &k)
}

// apply is ApplyAt, recording k with the commit when not nil.
func (s *Store) apply(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, pos []byte, k *store.NewKey) (store.Applied, error) {
	if err := protocol.ValidateCollection(collection); err != nil {
		return store.Applied{}, fmt.Errorf("boltstore: apply: %w", err)
	}
	if len(ops) == 0 {
		return store.Applied{}, fmt.Errorf("boltstore: apply %q: %w", collection, store.ErrEmptyCommit)
	}
	for i := range ops {
		if err := checkOp(&ops[i]); err != nil {
			return store.Applied{}, fmt.Errorf("boltstore: apply %q: op %d: %w", collection, i, err)
		}
	}
	// Encoding the ops here, in the caller's goroutine, keeps it out of
	// the committer, which every commit waits for.
	r := &request{collection: collection, ops: ops, ifs: ifs, opsJSON: protocol.AppendOps(nil, ops), vals: recordValues(ops), pos: bytes.Clone(pos), key: k}
	if err := s.submit(ctx, r); err != nil {
		return store.Applied{}, fmt.Errorf("boltstore: apply %q: %w", collection, err)
	}
	return r.applied, nil
}

// ApplyAllAt implements store.BatchPositions: the commits are queued at
// once, in order, so that they share the committer's transactions (one
// fsync for as many as one transaction takes), each after the one before
// it; a commit whose predecessor failed or was withdrawn fails too, so
// that what is made is a prefix of commits. A done ctx withdraws the
// commits still queued.
func (s *Store) ApplyAllAt(ctx context.Context, collection string, commits []store.AtCommit) ([]store.Applied, error) {
	if err := protocol.ValidateCollection(collection); err != nil {
		return nil, fmt.Errorf("boltstore: apply: %w", err)
	}
	reqs := make([]*request, len(commits))
	for i, c := range commits {
		if len(c.Ops) == 0 {
			return nil, fmt.Errorf("boltstore: apply %q: commit %d: %w", collection, i, store.ErrEmptyCommit)
		}
		for j := range c.Ops {
			if err := checkOp(&c.Ops[j]); err != nil {
				return nil, fmt.Errorf("boltstore: apply %q: commit %d: op %d: %w", collection, i, j, err)
			}
		}
		reqs[i] = &request{collection: collection, ops: c.Ops, opsJSON: protocol.AppendOps(nil, c.Ops), vals: recordValues(c.Ops), pos: bytes.Clone(c.Pos)}
		if i > 0 {
			reqs[i].after = reqs[i-1]
		}
	}
	made, err := s.submitAll(ctx, reqs)
	applied := make([]store.Applied, made)
	for i := range applied {
		applied[i] = reqs[i].applied
	}
	if err != nil {
		return applied, fmt.Errorf("boltstore: apply %q: commit %d of %d: %w", collection, made, len(commits), err)
	}
	return applied, nil
}

// recordValues lays out, back to back, the records values of the puts of
// ops: 8 bytes left for the version, then the value.
func recordValues(ops []protocol.Op) []byte {
	n := 0
	for i := range ops {
		if ops[i].Op == protocol.OpPut {
			n += 8 + len(ops[i].Value)
		}
	}
	vals := make([]byte, 0, n)
	for i := range ops {
		if ops[i].Op == protocol.OpPut {
			vals = append(vals, 0, 0, 0, 0, 0, 0, 0, 0)
			vals = append(vals, ops[i].Value...)
		}
	}
	return vals
}

// checkOp refuses an op the write phase could not carry out.
func checkOp(op *protocol.Op) error {
	if err := protocol.ValidateID(op.ID, 0); err != nil {
		return err
	}
	switch op.Op {
	case protocol.OpPut:
		if len(op.Value) == 0 {
			return fmt.Errorf("%w: put %q has no value", protocol.ErrBadOp, op.ID)
		}
		if !json.Valid(op.Value) {
			return fmt.Errorf("put %q: %w: not valid JSON", op.ID, protocol.ErrBadValue)
		}
	case protocol.OpDelete:
	default:
		return fmt.Errorf("%w: unknown op %q", protocol.ErrBadOp, op.Op)
	}
	return nil
}

// Drop implements store.Store. The new epoch is a fresh random one, never
// the collection's previous epoch.
func (s *Store) Drop(ctx context.Context, collection string) (protocol.Head, error) {
	return s.DropAt(ctx, collection, nil)
}

// DropAt implements store.Positions: Drop, the new history's source
// position pos (none when nil) written in the same transaction.
func (s *Store) DropAt(ctx context.Context, collection string, pos []byte) (protocol.Head, error) {
	if err := protocol.ValidateCollection(collection); err != nil {
		return protocol.Head{}, fmt.Errorf("boltstore: drop: %w", err)
	}
	r := &request{collection: collection, drop: true, pos: bytes.Clone(pos)}
	if err := s.submit(ctx, r); err != nil {
		return protocol.Head{}, fmt.Errorf("boltstore: drop %q: %w", collection, err)
	}
	return r.head, nil
}

// check verifies, without writing, every precondition of ifs and that every
// delete of ops targets a record that exists at that point of the commit.
func check(c coll, exists bool, ops []protocol.Op, ifs map[string]uint64) error {
	have := func(id string) uint64 {
		if !exists {
			return 0
		}
		v, _ := recordVersion(c.records.Get([]byte(id)))
		return v
	}
	// Report the smallest failing id, so that the error does not depend on
	// map order.
	var failed *store.PreconditionError
	for id, want := range ifs {
		if h := have(id); h != want && (failed == nil || id < failed.ID) {
			failed = &store.PreconditionError{ID: id, Want: want, Have: h}
		}
	}
	if failed != nil {
		return failed
	}
	if len(ops) == 1 {
		if ops[0].Op == protocol.OpDelete && have(ops[0].ID) == 0 {
			return fmt.Errorf("delete %q: %w", ops[0].ID, store.ErrNotFound)
		}
		return nil
	}
	// live records, for ids an earlier op of this commit wrote or deleted.
	var live map[string]bool
	for i := range ops {
		op := &ops[i]
		switch op.Op {
		case protocol.OpPut:
			if live == nil {
				live = make(map[string]bool, len(ops))
			}
			live[op.ID] = true
		case protocol.OpDelete:
			ok, seen := live[op.ID]
			if !seen {
				ok = have(op.ID) != 0
			}
			if !ok {
				return fmt.Errorf("delete %q: %w", op.ID, store.ErrNotFound)
			}
			if live == nil {
				live = make(map[string]bool, len(ops))
			}
			live[op.ID] = false
		}
	}
	return nil
}
