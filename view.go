package viewsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Where returns a handle on the filtered view of the collection by f
// (ANDed with the handle's own filter, if any; nil f: the same view).
// The view has the collection's methods, each kept to the records f
// matches:
//
//   - Get answers ErrNotFound for a record outside the view;
//   - Snapshot, Changes, Poll and Subscribe return only the view's
//     records, and a record leaving the view as a delete (see
//     fanout.Broker.SubscribeView); cursors are the collection's;
//   - Commit (and Put, Patch, Delete) applies only ops on records that
//     match f before the op (when they exist) and after it (puts):
//     otherwise it fails with ErrForbidden and changes nothing. This is
//     how a write right restricted by a filter is enforced.
//
// Wait still ends at any commit to the collection.
func (c *Collection) Where(f *filter.Filter) *Collection {
	v := *c
	v.where = filter.And(c.where, f)
	return &v
}

// Unfiltered returns a handle on the whole collection.
func (c *Collection) Unfiltered() *Collection {
	v := *c
	v.where = nil
	return &v
}

// Filter returns the handle's filter, nil for the whole collection.
func (c *Collection) Filter() *filter.Filter { return c.where }

// filterRecords returns the records in the view, in their order.
func (c *Collection) filterRecords(recs []Record) []Record {
	out := recs[:0:0]
	for _, r := range recs {
		if c.where.Match(r.ID, r.Value) {
			out = append(out, r)
		}
	}
	if out == nil {
		out = []Record{}
	}
	return out
}

// Poll returns what a client at cur needs to move forward, as Changes
// does, waiting up to wait for something when there is nothing yet (0:
// no wait). With no commits, the answer's Version is the cursor to ask
// from next: on a view it moves past commits that did not concern the
// view. It returns ErrClosed when the hub closes.
//
// On a view, it reads through the hub's live buffer (a filtered view is
// not in the store's log), which keeps the view a while after each poll
// (fanout.Options.ViewLinger), so that the next poll resumes from it.
func (c *Collection) Poll(ctx context.Context, cur Cursor, page Page, wait time.Duration) (Changes, error) {
	if c.where == nil {
		ch, err := c.Changes(ctx, cur, page)
		if err != nil || wait <= 0 || ch.Kind != KindCommits || len(ch.Commits.Commits) > 0 {
			return ch, err
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, err = c.Wait(wctx, cur)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return ch, err
			}
			return ch, nil
		}
		return c.Changes(ctx, cur, page)
	}
	sub, err := c.Subscribe(&cur)
	if err != nil {
		return Changes{}, err
	}
	defer sub.Close()
	var ev fanout.Event
	if wait > 0 {
		ev, err = sub.NextIdle(ctx, wait)
	} else {
		ev, err = sub.NextNow(ctx)
	}
	switch {
	case errors.Is(err, fanout.ErrIdle), errors.Is(err, fanout.ErrWouldBlock):
		// The subscription's cursor names the epoch once it has looked
		// at its (ready) topic, as it has here.
		at := sub.Cursor()
		return Changes{Kind: KindCommits, Commits: &protocol.Changes{Epoch: at.Epoch, Version: at.Version, Commits: []Commit{}}}, nil
	case err != nil:
		if errors.Is(err, fanout.ErrClosed) {
			err = ErrClosed
		}
		return Changes{}, fmt.Errorf("viewsync: changes %s after %s: %w", c.name, cur, err)
	}
	switch ev.Kind {
	case fanout.EventCommits:
		cs := make([]Commit, len(ev.Frames))
		for i, f := range ev.Frames {
			cs[i] = f.Commit
		}
		at := sub.Cursor()
		return Changes{Kind: KindCommits, Commits: &protocol.Changes{Epoch: ev.Frames[0].Epoch, Version: at.Version, Commits: cs}}, nil
	case fanout.EventCatchUp:
		return Changes{Kind: KindCatchUp, CatchUp: ev.CatchUp}, nil
	default:
		c.call.observe(c.name, ev.Reset.Version)
		return Changes{Kind: KindReset, Reset: ev.Reset}, nil
	}
}

// maxWhereRetries bounds how often a commit through a view is planned
// again because a record it checked changed meanwhile.
const maxWhereRetries = 100

// applyWhere applies ops, normalized, if every op's record matches the
// view before the op (when it exists) and after it (puts); otherwise it
// fails with ErrForbidden. The records are read first, and the commit
// made on the condition that none changed meanwhile (planned again if one
// did), so that the check holds for the commit as applied.
func (c *Collection) applyWhere(ctx context.Context, ops []Op, ifs map[string]uint64, o writeOpts) (store.Applied, error) {
	for attempt := 0; ; attempt++ {
		versions := make(map[string]uint64, len(ops))
		values := make(map[string]json.RawMessage, len(ops))
		for _, op := range ops {
			if _, seen := versions[op.ID]; seen {
				continue
			}
			r, err := c.hub.store.Get(ctx, c.name, op.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				versions[op.ID] = 0
			case err != nil:
				return store.Applied{}, err
			default:
				versions[op.ID], values[op.ID] = r.Version, r.Value
			}
		}
		for i, op := range ops {
			if v, ok := values[op.ID]; ok && !c.where.Match(op.ID, v) {
				return store.Applied{}, fmt.Errorf("%w: op %d: record %q is outside the rows this principal may write", ErrForbidden, i, op.ID)
			}
			if op.Op == protocol.OpPut {
				if !c.where.Match(op.ID, op.Value) {
					return store.Applied{}, fmt.Errorf("%w: op %d: the new value of record %q is outside the rows this principal may write", ErrForbidden, i, op.ID)
				}
				values[op.ID] = op.Value
			} else {
				delete(values, op.ID)
			}
		}
		all := maps.Clone(ifs)
		if all == nil {
			all = make(map[string]uint64, len(versions))
		}
		for id, v := range versions {
			if _, ok := all[id]; !ok {
				all[id] = v
			}
		}
		ap, err := c.apply(ctx, ops, all, o)
		var pe *store.PreconditionError
		if errors.As(err, &pe) && attempt < maxWhereRetries {
			if _, theirs := ifs[pe.ID]; !theirs {
				continue // changed since read: judge it again
			}
		}
		return ap, err
	}
}

// ParseFilter parses a view's filter, as a client sends it, within the
// hub's Limits.Filter. A bad filter fails with an error matching
// ErrInvalid, its message naming the problem.
func (h *Hub) ParseFilter(b []byte) (*filter.Filter, error) {
	f, err := filter.Parse(b, h.limits.Filter)
	if err != nil {
		return nil, invalid(err)
	}
	return f, nil
}

// WhereQuery returns the filter of a query string's where parameter (the
// filter's JSON, URL-encoded), nil when there is none. A bad filter, or
// where given twice, fails with an error matching ErrInvalid.
func (h *Hub) WhereQuery(rawQuery string) (*filter.Filter, error) {
	if !strings.Contains(rawQuery, "where") {
		return nil, nil
	}
	q, err := protocol.ParseQuery(rawQuery, "where")
	if err != nil {
		return nil, err
	}
	vs, ok := q["where"]
	if !ok || len(vs) == 0 {
		return nil, nil
	}
	f, err := h.ParseFilter([]byte(vs[0]))
	if err != nil {
		return nil, fmt.Errorf("where: %w", err)
	}
	return f, nil
}
