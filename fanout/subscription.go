package fanout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// EventKind tells what an Event carries.
type EventKind int

// The kinds of event a subscription delivers.
const (
	// EventCommits: one or more commits, in order, right after the cursor.
	EventCommits EventKind = iota
	// EventCatchUp: the records changed and ids deleted since the cursor,
	// replacing a backlog that was dropped or trimmed.
	EventCatchUp
	// EventReset: a full snapshot; the client replaces its state.
	EventReset
)

// String names the kind as the wire does.
func (k EventKind) String() string {
	switch k {
	case EventCommits:
		return "commit"
	case EventCatchUp:
		return "catchup"
	default:
		return "reset"
	}
}

// Event is what Next returns. Exactly the field named by Kind is set.
type Event struct {
	Kind EventKind
	// Frames are the commits of an EventCommits, oldest first. The slice
	// is reused by the next call to Next; the frames themselves are
	// immutable and may be kept.
	Frames []*Frame
	// CatchUp is set for EventCatchUp.
	CatchUp *protocol.CatchUp
	// Reset is set for EventReset.
	Reset *protocol.Snapshot
}

// Subscription follows one collection from a cursor. Next is not safe for
// concurrent use; Close may be called from any goroutine.
type Subscription struct {
	b *Broker
	t *topic
	// v is the filtered view followed, nil for the whole collection.
	v *view

	// cur is the position after the last event returned.
	cur       protocol.Cursor
	needReset bool
	// live is set once the subscription has read from the topic's buffer
	// (or been given a catch-up or reset): falling behind the buffer then
	// means it was too slow, and it gets a catch-up instead of the backlog.
	live bool
	// checkedAhead is set once a cursor ahead of the buffer was found to be
	// within the store's history.
	checkedAhead bool
	buf          []*Frame
	// hold is the history memory the last event read from the store
	// holds (Options.Memory), released when the caller comes back for
	// the next event, or closes.
	hold atomic.Pointer[limit.Hold]
	// idle is NextIdle's reusable timer.
	idle *time.Timer

	closeOnce sync.Once
	done      chan struct{}
}

// Cursor returns the position after the last event Next returned.
func (s *Subscription) Cursor() protocol.Cursor { return s.cur }

// Close ends the subscription; a blocked Next returns ErrClosed.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.b.release(s.t, s.v)
		s.hold.Swap(nil).Release()
	})
}

// Next blocks until there is something after the cursor and returns it:
// the commits that follow (all the buffer holds, for one coalesced write),
// a catch-up, or a reset. It returns ctx.Err() when ctx ends, and ErrClosed
// when the subscription or broker is closed.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	return s.next(ctx, modeWait, 0)
}

// NextIdle is Next with a bound on waiting: when nothing arrives within
// idle it returns ErrIdle (a transport then sends a keep-alive and calls
// again). Only the waiting is bounded; store reads are bounded by ctx alone,
// so a slow snapshot is never cut short by the idle time.
func (s *Subscription) NextIdle(ctx context.Context, idle time.Duration) (Event, error) {
	return s.next(ctx, modeWait, idle)
}

// ErrWouldBlock is returned by TryNext and NextNow when there is nothing
// after the cursor yet: the caller waits on Changed and tries again.
var ErrWouldBlock = errors.New("fanout: nothing new yet")

// ErrBehind is returned by TryNext when what follows the cursor is not in
// the topic's buffer (a page, catch-up or reset must be read from the
// store): the caller goes on with NextNow or Next, which read it.
var ErrBehind = errors.New("fanout: behind the buffer")

// TryNext returns, without waiting and without reading the store, the
// commits the topic's buffer holds after the cursor. It returns
// ErrWouldBlock when there are none yet, ErrBehind when the next event
// needs the store, and ErrClosed when the subscription or broker is closed.
// It is for transports that serve many idle subscriptions without a
// goroutine each: they wait on Changed and sweep their subscriptions.
func (s *Subscription) TryNext() (Event, error) {
	return s.next(context.Background(), modeBuffer, 0)
}

// NextNow is Next without the wait: it reads the store when needed (a
// page, catch-up or reset) but returns ErrWouldBlock instead of waiting
// for a commit.
func (s *Subscription) NextNow(ctx context.Context) (Event, error) {
	return s.next(ctx, modeNoWait, 0)
}

// Changed returns a channel closed when the topic next changes (a commit
// arrives, the history is replaced or the topic stops). Take it before
// TryNext, so that a change in between is not missed.
func (s *Subscription) Changed() <-chan struct{} {
	s.t.mu.RLock()
	defer s.t.mu.RUnlock()
	if s.v != nil {
		return s.v.changed.ch
	}
	return s.t.changed.ch
}

// AfterChange arranges for f to be called once, at the topic's next change
// (for a filtered view: the view's), like Changed's channel closing. It is
// for transports that wait for many topics without a goroutine each. f is
// called with the topic locked: it must return quickly and must not call
// back into the broker (handing the work to another goroutine is what it
// is for). When the topic has stopped, f is called at once. stop cancels
// the call, reporting whether it did so before f was called.
func (s *Subscription) AfterChange(f func()) (stop func() bool) {
	t := s.t
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		f()
		return func() bool { return false }
	}
	sig := &t.changed
	if s.v != nil {
		sig = &s.v.changed
	}
	w := &afterChange{f: f}
	sig.funcs = append(sig.funcs, w)
	t.mu.Unlock()
	return func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return sig.remove(w)
	}
}

// Collection returns the name of the collection followed.
func (s *Subscription) Collection() string { return s.t.name }

// Filtered reports whether the subscription follows a filtered view.
func (s *Subscription) Filtered() bool { return s.v != nil }

// ViewKey returns the key of the view followed (filter.Filter.Key), empty
// for the whole collection.
func (s *Subscription) ViewKey() string {
	if s.v == nil {
		return ""
	}
	return s.v.key
}

// nextMode says how next may get what follows the cursor.
type nextMode int

const (
	// modeWait: read the store when needed, and wait for a commit (Next,
	// NextIdle).
	modeWait nextMode = iota
	// modeNoWait: read the store when needed, never wait (NextNow).
	modeNoWait
	// modeBuffer: only the topic's buffer, never wait (TryNext).
	modeBuffer
)

// next returns what follows the cursor as mode allows; in modeWait, idle
// (when positive) bounds the wait.
func (s *Subscription) next(ctx context.Context, mode nextMode, idle time.Duration) (Event, error) {
	// The caller is done with the last event: its memory is free again.
	s.hold.Swap(nil).Release()
	t := s.t
	var idleC <-chan time.Time
	if idle > 0 {
		if s.idle == nil {
			s.idle = time.NewTimer(idle)
		} else {
			s.idle.Reset(idle)
		}
		defer s.idle.Stop()
		idleC = s.idle.C
	}
	for {
		select {
		case <-s.done:
			return Event{}, ErrClosed
		case <-s.b.done:
			return Event{}, ErrClosed
		default:
		}
		if s.needReset {
			if mode == modeBuffer {
				return Event{}, ErrBehind
			}
			return s.reset(ctx)
		}
		t.mu.RLock()
		if !t.ready {
			t.mu.RUnlock()
			if mode == modeBuffer {
				return Event{}, ErrBehind
			}
			t.mu.Lock()
			err := t.initLocked(ctx)
			t.mu.Unlock()
			if err != nil {
				return Event{}, err
			}
			continue
		}
		if t.stopped {
			t.mu.RUnlock()
			return Event{}, ErrClosed
		}
		if s.cur.Epoch == "" {
			s.cur.Epoch = t.epoch
		}
		if s.cur.Epoch != t.epoch {
			t.mu.RUnlock()
			if mode == modeBuffer {
				return Event{}, ErrBehind
			}
			return s.reset(ctx)
		}
		// What the buffer holds after the cursor: the topic's frames, or
		// the view's (commits that do not concern it are skipped).
		c := s.cur.Version
		ahead := c > t.last
		changed := t.changed.ch
		var frames []*Frame
		behind := false
		switch {
		case ahead:
		case s.v != nil:
			changed = s.v.changed.ch
			if c >= s.v.from {
				frames = s.v.framesAfter(c)
			} else {
				behind = true
			}
		case c+1 >= t.first:
			frames = t.frames[c+1-t.first:]
		default:
			behind = true
		}
		switch {
		case len(frames) > 0:
			clear(s.buf) // drop the last batch's frames, so they can be freed
			s.buf = append(s.buf[:0], frames...)
			s.cur.Version = t.last
			t.mu.RUnlock()
			s.live, s.checkedAhead = true, false
			return Event{Kind: EventCommits, Frames: s.buf}, nil
		case behind:
			t.mu.RUnlock()
			if mode == modeBuffer {
				return Event{}, ErrBehind
			}
			if s.live {
				return s.catchUp(ctx)
			}
			ev, ok, err := s.page(ctx)
			if err != nil || ok {
				return ev, err
			}
		default:
			if !ahead {
				// Everything up to the head is read (a view's cursor moves
				// past the commits that did not concern it).
				s.cur.Version = t.last
			}
			t.mu.RUnlock()
			if ahead && !s.checkedAhead {
				if mode == modeBuffer {
					return Event{}, ErrBehind
				}
				// The store may be ahead of the buffer (a commit not yet
				// published), or the cursor is bogus.
				hd, err := s.b.store.Head(ctx, t.name)
				if err != nil {
					return Event{}, err
				}
				if store.Lost(s.cur, hd) {
					return s.reset(ctx)
				}
				s.checkedAhead = true
			}
			if mode != modeWait {
				select {
				case <-s.done:
					return Event{}, ErrClosed
				default:
				}
				return Event{}, ErrWouldBlock
			}
			if err := s.wait(ctx, changed, idleC); err != nil {
				return Event{}, err
			}
		}
	}
}

func (s *Subscription) wait(ctx context.Context, changed <-chan struct{}, idle <-chan time.Time) error {
	select {
	case <-changed:
		return nil
	case <-idle:
		return ErrIdle
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	case <-s.b.done:
		return ErrClosed
	}
}

// reserve waits, at most Options.MemoryWait, for the history memory a read
// of the store may hold, and keeps it in s.hold until the next event is
// asked for: twice a page's bytes, for the commits read and their frames'
// encoding (catch-ups and resets are charged what they take once read).
func (s *Subscription) reserve(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, s.b.opts.MemoryWait)
	defer cancel()
	want := 2 * int64(s.b.opts.PageBytes)
	h, err := s.b.opts.Memory.Reserve(wctx, want, want)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrBusy
	}
	s.hold.Store(h)
	select {
	case <-s.done: // closed meanwhile: Close may have missed h
		s.hold.Swap(nil).Release()
	default:
	}
	return nil
}

// page reads what follows the cursor from the store, by store.Resume's
// rule: the next page of commits, a catch-up or a reset. It reports false
// when the page is empty (the buffer has moved on meanwhile: look again).
func (s *Subscription) page(ctx context.Context) (Event, bool, error) {
	if s.v != nil {
		// A view's history is not in the log (a commit's ops do not say
		// whether their records were in the view before): a catch-up.
		ev, err := s.catchUp(ctx)
		return ev, err == nil, err
	}
	return s.read(ctx, func(bytes int) (store.Resumed, error) {
		page := store.Page{Commits: s.b.opts.PageSize, Bytes: bytes}
		return store.Resume(ctx, s.b.store, s.t.name, s.cur, page)
	})
}

// catchUp replaces everything after the cursor with one compacted
// catch-up (or a reset, when even that is impossible).
func (s *Subscription) catchUp(ctx context.Context) (Event, error) {
	ev, _, err := s.read(ctx, func(int) (store.Resumed, error) {
		if s.v != nil {
			return store.ResumeView(ctx, s.b.store, s.t.name, s.cur, s.v.match)
		}
		return store.ResumeCompacted(ctx, s.b.store, s.t.name, s.cur)
	})
	return ev, err
}

// reset reads a snapshot and continues after it.
func (s *Subscription) reset(ctx context.Context) (Event, error) {
	ev, _, err := s.read(ctx, func(int) (store.Resumed, error) {
		if s.v != nil {
			return store.ResumeViewReset(ctx, s.b.store, s.t.name, s.v.match)
		}
		return store.ResumeReset(ctx, s.b.store, s.t.name)
	})
	return ev, err
}

// read reserves history memory, reads with resume (given the bytes a page
// of commits may take) and charges what the answer takes: a frame keeps
// the commit and its JSON, a catch-up or snapshot its records and their
// encoding, which the transport builds whole. It turns the answer into the
// next event, and reports false for an empty page of commits.
func (s *Subscription) read(ctx context.Context, resume func(pageBytes int) (store.Resumed, error)) (Event, bool, error) {
	// A read looking again after an empty page starts afresh.
	s.hold.Swap(nil).Release()
	if err := s.reserve(ctx); err != nil {
		return Event{}, false, err
	}
	r, err := resume(int(s.hold.Load().Bytes() / 2))
	if err != nil {
		s.hold.Swap(nil).Release()
		return Event{}, false, err
	}
	s.hold.Load().Set(2 * int64(r.Size()))
	switch r.Kind {
	case store.KindCommits:
		if len(r.Commits.Commits) == 0 {
			return Event{}, false, nil
		}
		clear(s.buf)
		s.buf = s.buf[:0]
		for _, c := range r.Commits.Commits {
			f, err := NewFrame(s.t.name, r.Commits.Epoch, c)
			if err != nil {
				return Event{}, false, err
			}
			s.buf = append(s.buf, f)
		}
		s.cur.Version = s.buf[len(s.buf)-1].Version()
		return Event{Kind: EventCommits, Frames: s.buf}, true, nil
	case store.KindCatchUp:
		s.cur.Version = r.CatchUp.Version
		s.live, s.checkedAhead = true, false
		return Event{Kind: EventCatchUp, CatchUp: r.CatchUp}, true, nil
	default:
		s.cur = r.Head().Cursor()
		s.needReset, s.live, s.checkedAhead = false, false, false
		return Event{Kind: EventReset, Reset: r.Reset}, true, nil
	}
}
