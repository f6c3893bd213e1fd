package viewsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Collection is a named set of records in a hub. It is a light handle:
// making one costs nothing and it holds no state of its own.
type Collection struct {
	hub  *Hub
	name string
	// call, when set, records the versions this handle reads and writes
	// for a call's answer.
	call *Call
	// where, when set, restricts the handle to a filtered view (Where).
	where *filter.Filter
}

// Name returns the collection's name.
func (c *Collection) Name() string { return c.name }

// WriteOption sets a precondition on a single-record write (IfVersion,
// IfAbsent), or makes a write record an idempotency key (Keyed.Record).
type WriteOption func(*writeOpts)

type writeOpts struct {
	ifVersion *uint64
	// key, when set, is recorded with the commit (store.Keys); keyed
	// learns when the store had it already.
	key   *store.NewKey
	keyed *Keyed
	// callWrite: key is a keyed call's write (callkeys.go); when the
	// store holds it already the write answers what it recorded.
	callWrite bool
}

// writeOptions collects opts.
func writeOptions(opts []WriteOption) writeOpts {
	var o writeOpts
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// IfVersion makes a write succeed only if the record is at version v
// (v == 0: only if the record does not exist).
func IfVersion(v uint64) WriteOption {
	return func(o *writeOpts) { o.ifVersion = &v }
}

// IfAbsent makes a write succeed only if the record does not exist.
func IfAbsent() WriteOption { return IfVersion(0) }

func (c *Collection) conds(id string, opts []WriteOption) map[string]uint64 {
	o := writeOptions(opts)
	if o.ifVersion == nil {
		return nil
	}
	return map[string]uint64{id: *o.ifVersion}
}

// Head returns the collection's epoch and version, from memory after the
// first call.
func (c *Collection) Head(ctx context.Context) (Head, error) {
	st, err := c.hub.head(ctx, c.name)
	if err != nil {
		return Head{}, err
	}
	c.call.observe(c.name, st.head.Version)
	return st.head, nil
}

// Get returns one record, or an error wrapping ErrNotFound.
func (c *Collection) Get(ctx context.Context, id string) (Record, error) {
	if err := protocol.ValidateID(id, c.hub.limits.MaxIDBytes); err != nil {
		return Record{}, invalid(err)
	}
	r, err := c.hub.store.Get(ctx, c.name, id)
	if err == nil && c.where != nil && !c.where.Match(r.ID, r.Value) {
		err = store.ErrNotFound // outside the view: as if absent
	}
	if err != nil {
		return Record{}, fmt.Errorf("viewsync: get %s/%s: %w", c.name, id, err)
	}
	c.observeHead(ctx)
	return r, nil
}

// observeHead records the current head for a call reading this collection.
func (c *Collection) observeHead(ctx context.Context) {
	if c.call == nil {
		return
	}
	if st, err := c.hub.head(ctx, c.name); err == nil {
		c.call.observe(c.name, st.head.Version)
	}
}

// Snapshot returns every record of the collection, read at one version.
func (c *Collection) Snapshot(ctx context.Context) (Snapshot, error) {
	s, err := c.hub.store.Snapshot(ctx, c.name)
	if err != nil {
		return Snapshot{}, fmt.Errorf("viewsync: snapshot %s: %w", c.name, err)
	}
	if c.where != nil {
		s.Records = c.filterRecords(s.Records)
	}
	s.Collection = c.name
	c.call.observe(c.name, s.Version)
	return s, nil
}

// Changes returns what a client at cursor needs to move forward, by the
// rule of store.Resume: the commits after it (as many as page takes: see
// Page) when the log still holds them, else a compacted catch-up, else a
// reset. A cursor from another epoch or ahead of the head gets a reset. An
// empty cursor epoch means the current epoch.
func (c *Collection) Changes(ctx context.Context, cur Cursor, page Page) (Changes, error) {
	if c.where != nil {
		return c.Poll(ctx, cur, page, 0)
	}
	ch, err := store.Resume(ctx, c.hub.store, c.name, cur, page)
	if err != nil {
		return Changes{}, fmt.Errorf("viewsync: changes %s after %s: %w", c.name, cur, err)
	}
	if ch.Kind == KindReset {
		c.call.observe(c.name, ch.Reset.Version)
	}
	return ch, nil
}

// Wait blocks until the collection's head is past cur (a newer version, or
// another epoch) and returns it, or until ctx is done (returning ctx.Err())
// or the hub closes (ErrClosed). It is what long-polls wait on. A store
// that releases idle collections (store.Holder) holds this one meanwhile,
// so that the commits of other processes wake it.
func (c *Collection) Wait(ctx context.Context, cur Cursor) (Head, error) {
	if c.hub.holder != nil {
		defer c.hub.holder.Hold(c.name)()
	}
	for {
		st, err := c.hub.head(ctx, c.name)
		if err != nil {
			return Head{}, err
		}
		if st.head.Version > cur.Version || (cur.Epoch != "" && cur.Epoch != st.head.Epoch) {
			return st.head, nil
		}
		select {
		case <-st.changed:
		case <-ctx.Done():
			return st.head, ctx.Err()
		case <-c.hub.done:
			return st.head, ErrClosed
		}
	}
}

// Commit applies ops atomically, all or nothing, if every precondition in
// ifs holds (record id → required version; 0: must not exist). It returns
// the stored commit once it is durable. Every value must keep the value
// rules (see protocol.Limits.CheckValue) within the hub's Limits: a value
// over MaxValueBytes fails with ErrTooLarge, any other break with an error
// matching ErrInvalid (and protocol.ErrTooDeep past MaxValueDepth).
//
// A collection fed from a source (Hub.Feed) refuses every write here, the
// one place below every transport where writes pass, with a
// *ReadOnlyError (ErrReadOnly, a 403 forbidden on the wire).
//
// The only options Commit takes are those of Keyed.Record (preconditions
// are in ifs); a keyed commit whose key the store holds already applies
// nothing and fails with an error matching store.ErrKeyExists.
func (c *Collection) Commit(ctx context.Context, ops []Op, ifs map[string]uint64, opts ...WriteOption) (Commit, error) {
	o := writeOptions(opts)
	if o.ifVersion != nil {
		return Commit{}, invalid(errors.New("IfVersion and IfAbsent are for single-record writes; a commit's preconditions are its ifs"))
	}
	if err := c.hub.refusal(c.name); err != nil {
		return Commit{}, err
	}
	l := c.hub.limits
	if len(ops) == 0 {
		return Commit{}, ErrEmptyCommit
	}
	if len(ops) > l.MaxOpsPerCommit {
		return Commit{}, fmt.Errorf("%w: %d ops, limit %d", ErrTooLarge, len(ops), l.MaxOpsPerCommit)
	}
	norm := make([]Op, len(ops))
	for i, op := range ops {
		n, err := l.values().NormalizeOp(op)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return Commit{}, fmt.Errorf("op %d: %w", i, err)
			}
			return Commit{}, invalid(fmt.Errorf("op %d: %w", i, err))
		}
		norm[i] = n
	}
	if size := protocol.CommitSize(Commit{Ops: norm}); size > l.MaxCommitBytes {
		return Commit{}, fmt.Errorf("%w: commit of %d bytes, limit %d", ErrTooLarge, size, l.MaxCommitBytes)
	}
	for id := range ifs {
		if err := protocol.ValidateID(id, l.MaxIDBytes); err != nil {
			return Commit{}, invalid(fmt.Errorf("precondition: %w", err))
		}
	}
	var callDone func()
	if o.key == nil {
		if opt, done, ok := c.call.writeKey(c.name, norm); ok {
			opt(&o)
			callDone = done
		}
	}
	start := time.Now()
	var ap store.Applied
	var err error
	if c.where != nil {
		ap, err = c.applyWhere(ctx, norm, ifs, o)
	} else {
		ap, err = c.apply(ctx, norm, maps.Clone(ifs), o)
	}
	var ke *store.KeyExistsError
	if o.callWrite && errors.As(err, &ke) {
		cm, err := recordedCallWrite(ke.Key, norm)
		if err != nil {
			return Commit{}, err
		}
		callDone()
		c.call.observe(c.name, cm.Version)
		return cm, nil
	}
	if err != nil {
		return Commit{}, fmt.Errorf("viewsync: commit to %s: %w", c.name, err)
	}
	if callDone != nil {
		callDone()
	}
	c.hub.publish(ctx, store.Event{Collection: c.name, Epoch: ap.Epoch, Commit: &ap.Commit, Version: ap.Commit.Version, Prev: ap.Prev})
	c.call.observe(c.name, ap.Commit.Version)
	c.hub.met.Committed(c.name, len(norm), ap.Commit.Version, time.Since(start))
	return ap.Commit, nil
}

// apply applies a checked commit through the store, recording the key of
// o with it when there is one and the store keeps keys.
func (c *Collection) apply(ctx context.Context, ops []Op, ifs map[string]uint64, o writeOpts) (store.Applied, error) {
	ks, ok := c.hub.store.(store.Keys)
	if o.key == nil || !ok {
		return c.hub.store.Apply(ctx, c.name, ops, ifs)
	}
	ap, err := ks.ApplyKeyed(ctx, c.name, ops, ifs, *o.key)
	var ke *store.KeyExistsError
	if errors.As(err, &ke) && o.keyed != nil {
		o.keyed.recorded = &ke.Key
	}
	return ap, err
}

// keyOnly returns the options of opts that record a key, without the
// preconditions.
func keyOnly(opts []WriteOption) []WriteOption {
	o := writeOptions(opts)
	if o.key == nil {
		return nil
	}
	return []WriteOption{func(w *writeOpts) { w.key, w.keyed, w.callWrite = o.key, o.keyed, o.callWrite }}
}

// Put writes value under id and returns the record as stored.
func (c *Collection) Put(ctx context.Context, id string, value json.RawMessage, opts ...WriteOption) (Record, error) {
	cm, err := c.Commit(ctx, []Op{Put(id, value)}, c.conds(id, opts), keyOnly(opts)...)
	if err != nil {
		return Record{}, err
	}
	return Record{ID: id, Value: cm.Ops[0].Value, Version: cm.Version}, nil
}

// Delete deletes the record id and returns the commit's version. Deleting a
// missing record fails with ErrNotFound.
func (c *Collection) Delete(ctx context.Context, id string, opts ...WriteOption) (uint64, error) {
	cm, err := c.Commit(ctx, []Op{Delete(id)}, c.conds(id, opts), keyOnly(opts)...)
	if err != nil {
		return 0, err
	}
	return cm.Version, nil
}

// maxPatchRetries bounds the read-merge-write loop of Patch when concurrent
// writers keep changing the record. Each retry means another write to the
// record succeeded, so the bound only stops a patch starved by a flood.
const maxPatchRetries = 1000

// Patch applies a JSON merge patch (RFC 7396) to the record id, which must
// exist, and returns the record as stored. With IfVersion the patch applies
// only to that version; without, it is retried on concurrent changes so no
// other write is lost. The patch and the merged value both keep the value
// rules, as Commit checks them.
func (c *Collection) Patch(ctx context.Context, id string, patch json.RawMessage, opts ...WriteOption) (Record, error) {
	if err := c.hub.refusal(c.name); err != nil {
		return Record{}, err
	}
	o := writeOptions(opts)
	// The patch keeps the value rules, and so does the merged value, which
	// Put checks with the size limit too.
	if _, err := (protocol.Limits{MaxValueDepth: c.hub.limits.MaxValueDepth}).CheckValue(patch); err != nil {
		return Record{}, invalid(fmt.Errorf("patch: %w", err))
	}
	for attempt := 0; ; attempt++ {
		// The record as it is, in the view or not: a write through a view
		// is judged by Commit (ErrForbidden), not hidden.
		cur, err := c.Unfiltered().Get(ctx, id)
		if errors.Is(err, ErrNotFound) && o.ifVersion != nil && *o.ifVersion != 0 {
			return Record{}, fmt.Errorf("viewsync: patch %s/%s: %w", c.name, id,
				&store.PreconditionError{ID: id, Want: *o.ifVersion})
		}
		if err != nil {
			return Record{}, err
		}
		if o.ifVersion != nil && *o.ifVersion != cur.Version {
			return Record{}, fmt.Errorf("viewsync: patch %s/%s: %w", c.name, id,
				&store.PreconditionError{ID: id, Want: *o.ifVersion, Have: cur.Version})
		}
		merged, err := protocol.MergePatch(cur.Value, patch)
		if err != nil {
			return Record{}, invalid(err)
		}
		if err := ctx.Err(); err != nil {
			return Record{}, err
		}
		rec, err := c.Put(ctx, id, merged, append(keyOnly(opts), IfVersion(cur.Version))...)
		if err == nil || !errors.Is(err, ErrPrecondition) || o.ifVersion != nil || attempt >= maxPatchRetries {
			return rec, err
		}
	}
}

// Drop deletes every record and the history of the collection and starts a
// new epoch at version 0. Clients at old cursors get a reset. A
// collection fed from a source refuses it, as Commit does.
func (c *Collection) Drop(ctx context.Context) (Head, error) {
	if err := c.hub.refusal(c.name); err != nil {
		return Head{}, err
	}
	hd, err := c.hub.store.Drop(ctx, c.name)
	if err != nil {
		return Head{}, fmt.Errorf("viewsync: drop %s: %w", c.name, err)
	}
	c.hub.publish(ctx, store.Event{Collection: c.name, Epoch: hd.Epoch, Version: hd.Version})
	c.call.observe(c.name, hd.Version)
	return hd, nil
}

// Subscribe follows the collection live. With a cursor it resumes after it:
// first the commits after the cursor (or a catch-up, or a reset, when those
// are gone), then each new commit. With nil it starts with a reset (a
// snapshot). The caller must Close the subscription.
//
// On a view (Where), the subscription follows the view: see
// fanout.Broker.SubscribeView.
func (c *Collection) Subscribe(cursor *Cursor) (*fanout.Subscription, error) {
	if c.hub.closed.Load() {
		return nil, ErrClosed
	}
	return c.hub.broker.SubscribeView(c.name, c.where, cursor)
}
