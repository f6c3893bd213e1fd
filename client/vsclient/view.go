package vsclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Kind tells what a Change is.
type Kind uint8

// The kinds of Change.
const (
	// Reset replaces the view's records with Records: the first state, or
	// a new one when history was lost or replaced (a new Epoch).
	Reset Kind = iota + 1
	// CatchUp brings the view from its cursor to Version at once: Records
	// changed, Deleted are gone.
	CatchUp
	// CommitKind is one commit: Ops in order.
	CommitKind
	// Progress moves a filtered view's cursor past commits that did not
	// concern it; nothing changes.
	Progress
)

func (k Kind) String() string {
	switch k {
	case Reset:
		return "reset"
	case CatchUp:
		return "catchup"
	case CommitKind:
		return "commit"
	case Progress:
		return "progress"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Change is one step of a View: applying the changes in order gives the
// collection (or the view's part of it) at Version.
type Change struct {
	Kind    Kind
	Epoch   string
	Version uint64
	// After is a commit's predecessor in the view: Version-1 for a whole
	// collection; for a filtered view, no commit between After and Version
	// concerned it.
	After uint64
	// At is when a commit was made.
	At time.Time
	// Ops are a commit's ops.
	Ops []protocol.Op
	// Records are a reset's records (all of them) or a catch-up's (those
	// that changed).
	Records []protocol.Record
	// Deleted are the ids a catch-up removes.
	Deleted []string
}

// SubscribeOptions configure a View.
type SubscribeOptions struct {
	// Where, when not nil, is a filter (a JSON-encodable value or
	// json.RawMessage): the view holds the records that match it.
	Where any
	// From, when set, resumes from a cursor kept earlier (the view starts
	// empty, and gets the changes after it); nil starts with a reset.
	From *protocol.Cursor
}

// View is a live view of a collection (or of its records matching a
// filter), kept in sync by a goroutine of its own until Close or its
// context's end. Its methods are safe for concurrent use.
type View struct {
	c          *Client
	collection string
	where      []byte

	changes chan Change
	// end is closed when the reader stops; err says why.
	end  chan struct{}
	err  error
	stop context.CancelFunc

	mu      sync.Mutex
	records map[string]protocol.Record
	cur     protocol.Cursor
	synced  bool
	closed  bool
	// moved is closed and replaced whenever cur moves, for WaitFor.
	moved chan struct{}
}

// Subscribe opens a live view of collection. It connects in the
// background: the first change (a reset, or what followed opts.From)
// comes from Next. A bad filter ends the view at once with its error.
func (c *Client) Subscribe(ctx context.Context, collection string, opts SubscribeOptions) *View {
	ctx, cancel := context.WithCancel(ctx)
	v := &View{c: c, collection: collection, changes: make(chan Change), end: make(chan struct{}), stop: cancel,
		records: map[string]protocol.Record{}, moved: make(chan struct{})}
	if opts.From != nil {
		v.cur = *opts.From
	}
	if opts.Where != nil {
		w, err := marshal(opts.Where)
		if err != nil {
			v.err = err
			close(v.end)
			return v
		}
		v.where = w
	}
	go v.run(ctx, opts.From)
	return v
}

// run connects and reconnects, handing each change to Next once and in
// order, until ctx ends or an error that retrying cannot mend.
func (v *View) run(ctx context.Context, from *protocol.Cursor) {
	defer close(v.end)
	// handed is the cursor of the last change handed to Next: what a
	// reconnect resumes from.
	var handed *protocol.Cursor
	if from != nil {
		c := *from
		handed = &c
	}
	backoff := v.c.opts.MinBackoff
	for {
		st, err := v.c.open(ctx, v.collection, v.where, handed)
		if err == nil {
			var got bool
			got, err = v.read(ctx, st, &handed)
			st.close()
			if got {
				backoff = v.c.opts.MinBackoff
			}
		}
		switch {
		case ctx.Err() != nil:
			v.err = ctx.Err()
			return
		case v.c.permanent(err):
			v.err = err
			return
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, v.c.opts.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			v.err = ctx.Err()
			return
		case <-t.C:
		}
	}
}

// errGap is a commit that does not follow the cursor: the stream is
// dropped and resumed from the cursor.
var errGap = errors.New("vsclient: a commit does not follow the cursor")

// read hands the stream's changes to Next until it fails; got says
// whether it handed any.
func (v *View) read(ctx context.Context, st stream, handed **protocol.Cursor) (got bool, err error) {
	for {
		ch, err := st.next()
		if err != nil {
			return got, err
		}
		h := *handed
		switch ch.Kind {
		case CommitKind:
			switch {
			case h == nil || ch.Epoch != h.Epoch || ch.After > h.Version:
				return got, errGap
			case ch.Version <= h.Version:
				continue // already handed
			}
		case Progress:
			if h == nil || ch.Epoch != h.Epoch || ch.Version <= h.Version {
				continue
			}
		case CatchUp:
			if h == nil || ch.Epoch != h.Epoch {
				return got, errGap
			}
		}
		select {
		case v.changes <- ch:
		case <-ctx.Done():
			return got, ctx.Err()
		}
		got = true
		*handed = &protocol.Cursor{Epoch: ch.Epoch, Version: ch.Version}
	}
}

// Next waits for the next change, applies it to the view and returns it.
// It returns the view's end: ErrClosed after Close, ctx's error, the
// subscription's context's error, or an error retrying cannot mend (an
// *Error: a bad filter, a right the token lacks).
func (v *View) Next(ctx context.Context) (Change, error) {
	select {
	case ch := <-v.changes:
		v.apply(ch)
		return ch, nil
	case <-v.end:
		return Change{}, v.endErr()
	case <-ctx.Done():
		return Change{}, ctx.Err()
	}
}

// endErr is why the view ended.
func (v *View) endErr() error {
	v.mu.Lock()
	closed := v.closed
	v.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return v.err
}

// apply applies a change to the records and moves the cursor.
func (v *View) apply(ch Change) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	switch ch.Kind {
	case Reset:
		clear(v.records)
		for _, r := range ch.Records {
			v.records[r.ID] = r
		}
		v.synced = true
	case CatchUp:
		for _, r := range ch.Records {
			v.records[r.ID] = r
		}
		for _, id := range ch.Deleted {
			delete(v.records, id)
		}
		v.synced = true
	case CommitKind:
		for _, op := range ch.Ops {
			if op.Op == protocol.OpDelete {
				delete(v.records, op.ID)
			} else {
				v.records[op.ID] = protocol.Record{ID: op.ID, Value: op.Value, Version: ch.Version}
			}
		}
	}
	v.cur = protocol.Cursor{Epoch: ch.Epoch, Version: ch.Version}
	close(v.moved)
	v.moved = make(chan struct{})
}

// Cursor returns the cursor of the last change Next returned: keep it to
// resume later (SubscribeOptions.From).
func (v *View) Cursor() protocol.Cursor {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cur
}

// Synced reports whether the view holds a whole state: it has applied a
// reset or a catch-up (a view resumed From a cursor holds only what came
// after it until then).
func (v *View) Synced() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.synced
}

// Get returns a record of the view.
func (v *View) Get(id string) (protocol.Record, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, ok := v.records[id]
	return r, ok
}

// Records returns a copy of the view's records, id → record.
func (v *View) Records() map[string]protocol.Record {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]protocol.Record, len(v.records))
	for id, r := range v.records {
		out[id] = r
	}
	return out
}

// WaitFor waits until the view includes version (of the collection: a
// filtered view includes the versions it skips), e.g. a Put's or a call's
// (CallResult.Versions), while another goroutine calls Next. It returns
// at once once the view has moved to another epoch.
func (v *View) WaitFor(ctx context.Context, version uint64) error {
	v.mu.Lock()
	epoch := v.cur.Epoch
	v.mu.Unlock()
	for {
		v.mu.Lock()
		done := v.cur.Version >= version || (epoch != "" && v.cur.Epoch != epoch)
		moved := v.moved
		v.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-moved:
		case <-v.end:
			return v.endErr()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops following the collection. The records stay readable; Next
// and WaitFor return ErrClosed.
func (v *View) Close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.stop()
	<-v.end
}
