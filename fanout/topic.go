package fanout

import (
	"context"
	"sync"
	"time"

	"github.com/viewsync/viewsync/store"
)

// topic is one collection's live stream: a buffer of recent frames, in
// version order without gaps, from first to last.
type topic struct {
	b    *Broker
	name string
	// refs counts subscriptions; guarded by Broker.mu.
	refs int

	mu sync.RWMutex
	// ready is set once the head has been read from the store; until then
	// offered frames wait in pending.
	ready bool
	// stopped is set when the topic has no subscribers left or the broker
	// closed; its timers stop and waiters wake.
	stopped bool
	epoch   string
	// last is the version of the newest frame, or of the head the topic
	// started from; first is the version of frames[0] (last+1 when empty).
	first, last uint64
	frames      []*Frame
	bytes       int
	// pending holds frames offered ahead of last+1, by version.
	pending  map[uint64]*Frame
	gapTimer *time.Timer
	// changed is closed and replaced whenever last, epoch or stopped change.
	changed signal

	// views are the filtered views subscribed to, by filter key; index
	// finds those a commit may concern.
	views map[string]*view
	index viewIndex
	// viewLog lists the frames added to views, oldest first, for trimming.
	viewLog []viewEntry
	// routePass numbers routing passes (view.mark); candBuf is reused.
	routePass uint64
	candBuf   []*view

	// unhold releases the store's hold on the collection (store.Holder),
	// taken while the topic lives so that the commits other processes make
	// keep reaching it; nil when the store does not release collections.
	unhold func()
}

// newTopic makes the topic of collection name, and holds the collection
// in a store that releases those not in use (store.Holder) until the
// topic stops: the one place where a collection gets its first subscriber
// on this process and loses its last.
func newTopic(b *Broker, name string) *topic {
	t := &topic{b: b, name: name, pending: map[uint64]*Frame{}, changed: newSignal()}
	if h, ok := b.store.(store.Holder); ok {
		t.unhold = h.Hold(name)
	}
	return t
}

// maxPending bounds frames held out of order; past it the gap is filled
// from the store at once.
const maxPending = 4096

// init reads the head from the store, once. Frames offered before it wait
// in pending; those at or below the head are already in the store.
// t.mu must be held.
func (t *topic) initLocked(ctx context.Context) error {
	if t.ready {
		return nil
	}
	hd, err := t.b.store.Head(ctx, t.name)
	if err != nil {
		return err
	}
	t.ready = true
	t.resetLocked(hd.Epoch, hd.Version)
	return nil
}

// resetLocked starts the buffer afresh at a head; pending frames of that
// epoch beyond it are kept.
func (t *topic) resetLocked(epoch string, version uint64) {
	t.epoch = epoch
	t.first, t.last = version+1, version
	clear(t.frames)
	t.frames = t.frames[:0]
	t.restartViewsLocked(version)
	t.bytes = 0
	for v, f := range t.pending {
		if f.Epoch != epoch || v <= version {
			delete(t.pending, v)
		}
	}
	t.drainLocked()
	t.notifyLocked()
}

// offer adds a published frame.
func (t *topic) offer(f *Frame) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if !t.ready {
		if len(t.pending) < maxPending {
			t.pending[f.Version()] = f
		}
		return
	}
	if f.Epoch != t.epoch {
		// The history was replaced, or f is from the one before. The store
		// says which; only a new epoch restarts the buffer.
		t.reloadLocked(false)
		if f.Epoch != t.epoch {
			return
		}
	}
	if f.Version() <= t.last {
		return
	}
	t.pending[f.Version()] = f
	if t.drainLocked() {
		t.notifyLocked()
	}
	t.armGapLocked()
}

// drainLocked moves contiguous pending frames into the buffer and reports
// whether any moved.
func (t *topic) drainLocked() bool {
	moved := false
	for {
		f, ok := t.pending[t.last+1]
		if !ok {
			break
		}
		delete(t.pending, t.last+1)
		t.frames = append(t.frames, f)
		t.bytes += f.size()
		t.last++
		t.routeLocked(f)
		moved = true
	}
	if !moved {
		return false
	}
	max := t.b.opts.BufferBytes
	drop := 0
	for t.bytes > max && drop < len(t.frames)-1 {
		t.bytes -= t.frames[drop].size()
		drop++
		t.trimViewsLocked(t.frames[drop].Version())
	}
	if drop > 0 {
		clear(t.frames[:drop])
		t.frames = t.frames[drop:]
		t.first += uint64(drop)
		if cap(t.frames) > 2*len(t.frames)+64 {
			t.frames = append([]*Frame(nil), t.frames...)
		}
	}
	return true
}

func (t *topic) notifyLocked() { t.changed.fire() }

// armGapLocked schedules reading missing commits from the store when
// frames wait out of order.
func (t *topic) armGapLocked() {
	if len(t.pending) == 0 || t.gapTimer != nil || t.stopped {
		return
	}
	delay := t.b.opts.GapTimeout
	if len(t.pending) >= maxPending {
		delay = 0
	}
	t.gapTimer = time.AfterFunc(delay, t.fillGap)
}

// fillGap reads the commits between last and the oldest pending frame from
// the store.
func (t *topic) fillGap() {
	t.mu.Lock()
	t.gapTimer = nil
	if t.stopped || len(t.pending) == 0 {
		t.mu.Unlock()
		return
	}
	from, epoch := t.last, t.epoch
	to := uint64(0)
	for v := range t.pending {
		if to == 0 || v < to {
			to = v
		}
	}
	t.mu.Unlock()

	ctx, cancel := t.b.storeCtx()
	defer cancel()
	ch, err := t.b.store.Changes(ctx, t.name, from, store.Page{Commits: int(to - 1 - from)})

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.epoch != epoch {
		return
	}
	if err != nil || ch.Epoch != epoch {
		// The log no longer holds them (or the history changed): start the
		// buffer afresh at the store's head; live subscribers now behind
		// it get a catch-up or a reset.
		t.b.log.Warn("fanout: filling a gap from the store failed; restarting the stream", "collection", t.name, "after", from, "err", err)
		t.reloadLocked(true)
		return
	}
	for _, c := range ch.Commits {
		if c.Version <= t.last {
			continue
		}
		f, err := NewFrame(t.name, epoch, c)
		if err != nil {
			continue
		}
		t.pending[c.Version] = f
	}
	if t.drainLocked() {
		t.notifyLocked()
	}
	t.armGapLocked()
}

// reloadLocked re-reads the head from the store and restarts the buffer
// there: always when force is set, else only if the epoch changed.
func (t *topic) reloadLocked(force bool) {
	ctx, cancel := t.b.storeCtx()
	defer cancel()
	hd, err := t.b.store.Head(ctx, t.name)
	if err != nil {
		t.b.log.Warn("fanout: reading head failed", "collection", t.name, "err", err)
		return
	}
	if force || hd.Epoch != t.epoch {
		t.resetLocked(hd.Epoch, hd.Version)
	}
}

// reinit restarts the topic from the store's head (after a drop).
func (t *topic) reinit() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready && !t.stopped {
		t.reloadLocked(false)
	}
}

// stop ends the topic: no more frames, waiters wake.
func (t *topic) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	if t.unhold != nil {
		t.unhold()
	}
	if t.gapTimer != nil {
		t.gapTimer.Stop()
		t.gapTimer = nil
	}
	clear(t.pending)
	t.notifyLocked()
	for _, v := range t.views {
		if v.linger != nil {
			v.linger.Stop()
		}
		v.notify()
	}
}
