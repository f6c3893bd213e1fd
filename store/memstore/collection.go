package memstore

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/internal/colstate"
)

// collection is the state of one collection, guarded by mu.
type collection struct {
	mu sync.RWMutex
	colstate.State
}

// newCollection returns an empty collection at version 0 in epoch.
func newCollection(epoch string) *collection {
	return &collection{State: colstate.New(epoch)}
}

// apply checks ifs, applies ops (owned by the collection from now on) as
// one commit and returns it. On error nothing changes.
func (c *collection) apply(ops []protocol.Op, ifs map[string]uint64, cfg store.Config) (protocol.Commit, error) {
	for _, id := range slices.Sorted(maps.Keys(ifs)) {
		want := ifs[id]
		if have, _ := c.RecordVersion(id); have != want {
			return protocol.Commit{}, &store.PreconditionError{ID: id, Want: want, Have: have}
		}
	}

	// exists tells, for each id the ops have touched so far, whether the
	// record exists after them.
	exists := make(map[string]bool, len(ops))
	for i, op := range ops {
		switch op.Op {
		case protocol.OpPut:
			exists[op.ID] = true
		case protocol.OpDelete:
			ok, touched := exists[op.ID]
			if !touched {
				_, ok = c.RecordVersion(op.ID)
			}
			if !ok {
				return protocol.Commit{}, fmt.Errorf("op %d: delete %q: %w", i, op.ID, store.ErrNotFound)
			}
			exists[op.ID] = false
		default:
			return protocol.Commit{}, fmt.Errorf("op %d: %w: unknown op %q", i, protocol.ErrBadOp, op.Op)
		}
	}

	at := cfg.Now().UTC()
	cm := protocol.Commit{Version: c.Version + 1, At: at, Ops: ops}
	c.Apply(cm, 0)
	c.TrimLog(cfg.RetainCommits, 1)
	c.RaiseHorizon(c.ExpiredHorizon(at, cfg.RetainTombstones), nil)
	return cm, nil
}
