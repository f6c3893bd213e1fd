// Package live serves many long-lived subscriptions with few goroutines:
// the "live path" of the push transports. A stream that is current (its
// cursor at its topic's head) sits in its collection's pump, in a shard of
// at most ShardSize streams. A shard waits for its topic's next change
// with a callback, not a goroutine; the change puts it in a run queue that
// a small pool of workers, shared by every pump, drains: each sweep writes
// what every stream of the shard is owed, without blocking. A stream that
// cannot (its socket is full, it fell behind the topic's buffer) leaves
// the pump for a goroutine of its own and comes back once it is current.
// Idle streams, and idle collections, cost no goroutine; one timer ticks
// every shard.
package live

import (
	"runtime"
	"sync"
	"time"
)

// ShardSize is how many streams one sweep visits.
const ShardSize = 512

// SpacingFactor is how many times its duration a sweep is kept apart from
// the next when Pumps.Interval is set.
const SpacingFactor = 10

// Stream is one subscription on the live path. Its methods are called from
// the worker sweeping its shard, one at a time.
type Stream interface {
	// AfterChange arranges for f to be called once at its topic's next
	// change; stop cancels that (fanout.Subscription.AfterChange). f is
	// quick and does not block.
	AfterChange(f func()) (stop func() bool)
	// Sweep writes, without blocking, what the stream is owed. It returns
	// nil to stay in the pump, or what to do once the stream has left it
	// (typically: go on a goroutine of its own, or end).
	Sweep() (leave func())
	// Tick is called every tick interval, for keep-alives and expiry; it
	// returns like Sweep.
	Tick(now time.Time) (leave func())
	// Member is the stream's place in the pump.
	Member() *Member
}

// Member records which shard holds a stream. Embed one in each stream.
type Member struct {
	mu    sync.Mutex
	shard *shard
	// gone is set by Pumps.Remove: the stream must not come back.
	gone bool
	// index is the stream's place in its shard's streams, guarded by the
	// shard's lock.
	index int
}

// Pumps holds a pump per collection, and the workers sweeping them.
type Pumps struct {
	// Tick is the interval of Stream.Tick. Default 1s.
	Tick time.Duration
	// Interval bounds how long a change may wait for its sweep. The
	// sweeps of a shard start at least SpacingFactor times the last
	// sweep's duration apart, and at most Interval: changes that come
	// faster wait for the next sweep and are written together, one write
	// for several, so that the pump spends at most about a tenth of its
	// time writing. A shard whose sweeps are quick (few streams, an idle
	// machine) holds nothing back; a large one under a fast stream of
	// changes trades up to Interval of delay for a fraction of the CPU. A
	// change after a quiet spell is swept at once. 0: every change is
	// swept at once.
	Interval time.Duration
	// Workers is the most goroutines sweeping at once, across all pumps;
	// they run while there is work and end when there is none. Default:
	// GOMAXPROCS, and at least 4.
	Workers int

	// Lock order: Member.mu, then Pumps.mu, then shard.mu, then queueMu.
	mu      sync.Mutex
	pumps   map[string]*pump
	shards  int
	ticking *time.Timer

	queueMu sync.Mutex
	queue   []*shard
	head    int
	workers int
}

type pump struct {
	key    string
	shards []*shard
}

type shard struct {
	ps *Pumps
	p  *pump

	mu      sync.Mutex
	streams []Stream
	// dead: taken out of its pump, never queued again.
	dead bool
	// queued: in the run queue; running: a worker visits it.
	queued, running bool
	// sweep: a sweep is due; tick: a tick is due, for that time.
	sweep bool
	tick  time.Time
	// changed: the topic changed since the last sweep began, and a sweep
	// is not due yet (held by the spacing, or during a sweep).
	changed bool
	// waiting: a change callback is registered; cancel cancels it.
	waiting bool
	cancel  func() bool
	// swept is when the last sweep started; spacing how far apart from it
	// the next one starts; hold waits it out.
	swept   time.Time
	spacing time.Duration
	hold    *time.Timer
	holding bool
}

// Add puts s in the pump of key (its collection). It reports false, doing
// nothing, when s was removed for good (Remove) meanwhile.
func (ps *Pumps) Add(key string, s Stream) bool {
	m := s.Member()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.pumps == nil {
		ps.pumps = map[string]*pump{}
	}
	p := ps.pumps[key]
	if p == nil {
		p = &pump{key: key}
		ps.pumps[key] = p
	}
	var sh *shard
	for _, x := range p.shards {
		x.mu.Lock()
		n := len(x.streams)
		x.mu.Unlock()
		if n < ShardSize {
			sh = x
			break
		}
	}
	if sh == nil {
		sh = &shard{ps: ps, p: p}
		p.shards = append(p.shards, sh)
		ps.shards++
		if ps.ticking == nil {
			ps.ticking = time.AfterFunc(ps.tickInterval(), ps.tickAll)
		}
	}
	sh.mu.Lock()
	m.index = len(sh.streams)
	sh.streams = append(sh.streams, s)
	m.shard = sh
	sh.sweep = true // the new stream may be owed something already
	sh.readyLocked()
	sh.mu.Unlock()
	return true
}

// Remove takes s out of its pump for good, if it is in one, reporting
// whether it was; a later Add of s does nothing. It waits while the pump
// is sweeping s. The caller then owns s.
func (ps *Pumps) Remove(s Stream) bool {
	m := s.Member()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gone = true
	sh := m.shard
	if sh == nil {
		return false
	}
	sh.takeLocked(m, s)
	return true
}

func (ps *Pumps) tickInterval() time.Duration {
	if ps.Tick <= 0 {
		return time.Second
	}
	return ps.Tick
}

// tickAll makes a tick due on every shard, and runs again a tick later
// while there are shards.
func (ps *Pumps) tickAll() {
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.shards == 0 {
		ps.ticking = nil
		return
	}
	for _, p := range ps.pumps {
		for _, sh := range p.shards {
			sh.mu.Lock()
			sh.tick = now
			sh.readyLocked()
			sh.mu.Unlock()
		}
	}
	ps.ticking.Reset(ps.tickInterval())
}

// enqueue puts sh in the run queue, starting a worker if fewer than
// Workers run.
func (ps *Pumps) enqueue(sh *shard) {
	ps.queueMu.Lock()
	ps.queue = append(ps.queue, sh)
	start := ps.workers < ps.maxWorkers()
	if start {
		ps.workers++
	}
	ps.queueMu.Unlock()
	if start {
		go ps.work()
	}
}

func (ps *Pumps) maxWorkers() int {
	if ps.Workers > 0 {
		return ps.Workers
	}
	return max(runtime.GOMAXPROCS(0), 4)
}

// dequeue returns the next shard to run, or nil (the calling worker then
// ends) when there is none.
func (ps *Pumps) dequeue() *shard {
	ps.queueMu.Lock()
	defer ps.queueMu.Unlock()
	if ps.head == len(ps.queue) {
		clear(ps.queue)
		ps.queue, ps.head = ps.queue[:0], 0
		ps.workers--
		return nil
	}
	sh := ps.queue[ps.head]
	ps.queue[ps.head] = nil
	ps.head++
	if ps.head > 1024 && ps.head*2 > len(ps.queue) {
		n := copy(ps.queue, ps.queue[ps.head:])
		clear(ps.queue[n:])
		ps.queue, ps.head = ps.queue[:n], 0
	}
	return sh
}

// work runs queued shards until there are none.
func (ps *Pumps) work() {
	var buf []Stream
	for sh := ps.dequeue(); sh != nil; sh = ps.dequeue() {
		buf = sh.run(buf)
	}
}

// readyLocked queues the shard when something is due and no worker has it
// yet; a worker running it looks again when done. sh.mu is held.
func (sh *shard) readyLocked() {
	if sh.dead || sh.queued || sh.running || (!sh.sweep && sh.tick.IsZero()) {
		return
	}
	sh.queued = true
	sh.ps.enqueue(sh)
}

// changedLocked turns a change into a due sweep, at once or, while the
// spacing since the last sweep lasts, when it ends. sh.mu is held.
func (sh *shard) changedLocked() {
	if !sh.changed || sh.holding || sh.running {
		return
	}
	if sh.ps.Interval > 0 {
		if d := sh.spacing - time.Since(sh.swept); d > 0 {
			// Let more commits come, to be written with this one.
			sh.holding = true
			if sh.hold == nil {
				sh.hold = time.AfterFunc(d, sh.held)
			} else {
				sh.hold.Reset(d)
			}
			return
		}
	}
	sh.changed = false
	sh.sweep = true
	sh.readyLocked()
}

// onChange is the change callback: the topic changed.
func (sh *shard) onChange() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.waiting, sh.cancel = false, nil
	sh.changed = true
	sh.changedLocked()
}

// held ends the spacing's wait.
func (sh *shard) held() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.holding = false
	sh.changedLocked()
}

// run does what is due on the shard: a tick, a sweep (waiting for the next
// change before it, so that a change during the sweep is not missed). buf
// is the worker's, returned for reuse.
func (sh *shard) run(buf []Stream) []Stream {
	sh.mu.Lock()
	sh.queued = false
	if sh.dead {
		sh.mu.Unlock()
		return buf
	}
	sh.running = true
	sweep, tick := sh.sweep, sh.tick
	sh.sweep, sh.tick = false, time.Time{}
	buf = append(buf[:0], sh.streams...)
	arm := sweep && !sh.waiting && len(buf) > 0
	if arm {
		sh.waiting = true
		sh.changed = false // this sweep writes it
	}
	sh.mu.Unlock()

	if arm {
		sh.wait(buf[0])
	}
	if !tick.IsZero() {
		for _, s := range buf {
			sh.visit(s, func() func() { return s.Tick(tick) })
		}
	}
	if sweep {
		start := time.Now()
		for _, s := range buf {
			sh.visit(s, s.Sweep)
		}
		if limit := sh.ps.Interval; limit > 0 {
			sh.mu.Lock()
			sh.swept, sh.spacing = start, min(limit, SpacingFactor*time.Since(start))
			sh.mu.Unlock()
		}
	}
	clear(buf)

	sh.mu.Lock()
	sh.running = false
	sh.changedLocked()
	sh.readyLocked()
	sh.mu.Unlock()
	return buf
}

// wait registers the change callback with s's topic.
func (sh *shard) wait(s Stream) {
	cancel := s.AfterChange(sh.onChange)
	sh.mu.Lock()
	switch {
	case sh.dead:
		sh.waiting = false
	case sh.waiting:
		sh.cancel, cancel = cancel, nil
	default:
		cancel = nil // called already
	}
	sh.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// visit runs f (a Sweep or a Tick) on s with s's member locked, so that
// nobody takes s meanwhile; when f says s leaves, s is taken out of the
// shard and the leave function runs, unlocked.
func (sh *shard) visit(s Stream, f func() func()) {
	m := s.Member()
	m.mu.Lock()
	if m.shard != sh {
		m.mu.Unlock()
		return // taken meanwhile
	}
	leave := f()
	if leave != nil {
		sh.takeLocked(m, s)
	}
	m.mu.Unlock()
	if leave != nil {
		leave()
	}
}

// takeLocked takes s out of the shard, and the shard out of its pump when
// it is empty; m.mu is held.
func (sh *shard) takeLocked(m *Member, s Stream) {
	m.shard = nil
	sh.mu.Lock()
	last := len(sh.streams) - 1
	moved := sh.streams[last]
	sh.streams[m.index] = moved
	moved.Member().index = m.index
	sh.streams[last] = nil
	sh.streams = sh.streams[:last]
	if c := cap(sh.streams); c > 16 && last < c/4 {
		sh.streams = append([]Stream(nil), sh.streams...)
	}
	empty := last == 0
	sh.mu.Unlock()
	if empty {
		sh.drop()
	}
}

// drop forgets the shard if it is still empty (and its pump once it has
// none), cancelling its wait and its timer.
func (sh *shard) drop() {
	ps := sh.ps
	ps.mu.Lock()
	sh.mu.Lock()
	if len(sh.streams) > 0 || sh.dead {
		sh.mu.Unlock()
		ps.mu.Unlock()
		return
	}
	sh.dead = true
	cancel := sh.cancel
	sh.waiting, sh.cancel = false, nil
	if sh.hold != nil {
		sh.hold.Stop()
	}
	sh.mu.Unlock()
	p := sh.p
	for i, x := range p.shards {
		if x == sh {
			p.shards = append(p.shards[:i], p.shards[i+1:]...)
			break
		}
	}
	if len(p.shards) == 0 && ps.pumps[p.key] == p {
		delete(ps.pumps, p.key)
	}
	ps.shards--
	ps.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// AppendUnwritten appends to dst the bytes of bufs after the first n: what
// a partial write left over.
func AppendUnwritten(dst []byte, bufs [][]byte, n int) []byte {
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		dst = append(dst, b[n:]...)
		n = 0
	}
	return dst
}
