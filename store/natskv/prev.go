package natskv

import (
	"encoding/json"
	"slices"

	"github.com/viewsync/viewsync/protocol"
)

// prevValues returns, for each op of ops, the value its record had just
// before the op (see store.Applied.Prev): for the first op on an id, what
// get returns (a copy, nil when there is no record); for a later one, a
// copy of what the ops before it left.
func prevValues(ops []protocol.Op, get func(id string) json.RawMessage) []json.RawMessage {
	prev := make([]json.RawMessage, len(ops))
	if len(ops) == 1 {
		prev[0] = get(ops[0].ID)
		return prev
	}
	after := make(map[string]json.RawMessage, len(ops))
	for i, op := range ops {
		if v, ok := after[op.ID]; ok {
			prev[i] = slices.Clone(v)
		} else {
			prev[i] = get(op.ID)
		}
		after[op.ID] = opValue(op)
	}
	return prev
}

// opValue returns the value op leaves its record with: nil for a delete.
func opValue(op protocol.Op) json.RawMessage {
	if op.Op == protocol.OpDelete {
		return nil
	}
	return op.Value
}

// getter returns a function that looks records up in st for prevValues.
func getter(st *state) func(id string) json.RawMessage {
	return func(id string) json.RawMessage {
		r, _ := st.Get(id) // a copy
		return r.Value
	}
}

// cloneValues returns a deep copy of vals.
func cloneValues(vals []json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(vals))
	for i, v := range vals {
		out[i] = slices.Clone(v)
	}
	return out
}
