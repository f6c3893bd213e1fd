package memstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/internal/colstate"
	"github.com/viewsync/viewsync/store/internal/keyset"
)

// collection is the state of one collection, guarded by mu.
type collection struct {
	mu sync.RWMutex
	colstate.State
	// pos is the source position (store.Positions), nil when none.
	pos []byte
	// keys are the collection's idempotency keys (store.Keys).
	keys keyset.Set
}

// newCollection returns an empty collection at version 0 in epoch.
func newCollection(epoch string) *collection {
	return &collection{State: colstate.New(epoch)}
}

// apply checks ifs, applies ops (owned by the collection from now on) as
// one commit and returns it, with the value each op's record had before
// it (see store.Applied.Prev). On error nothing changes.
func (c *collection) apply(ops []protocol.Op, ifs map[string]uint64, cfg store.Config) (protocol.Commit, []json.RawMessage, error) {
	for _, id := range slices.Sorted(maps.Keys(ifs)) {
		want := ifs[id]
		if have, _ := c.RecordVersion(id); have != want {
			return protocol.Commit{}, nil, &store.PreconditionError{ID: id, Want: want, Have: have}
		}
	}

	// after holds, for each id the ops have touched so far, the record's
	// value after them: nil once deleted. What is taken from it is
	// copied, since the ops' values are the collection's.
	after := make(map[string]json.RawMessage, len(ops))
	prev := make([]json.RawMessage, len(ops))
	for i, op := range ops {
		v, touched := after[op.ID]
		if touched {
			v = slices.Clone(v)
		} else {
			r, _ := c.Get(op.ID) // a copy
			v = r.Value
		}
		prev[i] = v
		switch op.Op {
		case protocol.OpPut:
			after[op.ID] = op.Value
		case protocol.OpDelete:
			if v == nil {
				return protocol.Commit{}, nil, fmt.Errorf("op %d: delete %q: %w", i, op.ID, store.ErrNotFound)
			}
			after[op.ID] = nil
		default:
			return protocol.Commit{}, nil, fmt.Errorf("op %d: %w: unknown op %q", i, protocol.ErrBadOp, op.Op)
		}
	}

	at := cfg.Now().UTC()
	cm := protocol.Commit{Version: c.Version + 1, At: at, Ops: ops}
	c.Apply(cm, 0)
	c.TrimLog(cfg.RetainCommits, 1)
	c.RaiseHorizon(c.ExpiredHorizon(at, cfg.RetainTombstones), nil)
	return cm, prev, nil
}
