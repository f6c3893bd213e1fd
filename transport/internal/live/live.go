// Package live serves many long-lived subscriptions with few goroutines:
// the "live path" of the push transports. A stream that is current (its
// cursor at its topic's head) sits in its collection's pump; the pump's
// goroutines, one per ShardSize streams, wait for the topic to change and
// sweep their streams, each writing what it is owed without blocking. A
// stream that cannot (its socket is full, it fell behind the topic's
// buffer) leaves the pump for a goroutine of its own and comes back once
// it is current. Idle streams cost no goroutine.
package live

import (
	"sync"
	"time"
)

// ShardSize is how many streams one pump goroutine sweeps.
const ShardSize = 512

// SpacingFactor is how many times its duration a sweep is kept apart from
// the next when Pumps.Interval is set.
const SpacingFactor = 10

// Stream is one subscription on the live path. Its methods are called from
// the goroutine of the shard holding it, one at a time.
type Stream interface {
	// Changed returns the channel its topic closes at the next change
	// (fanout.Subscription.Changed).
	Changed() <-chan struct{}
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
}

// Pumps holds a pump per collection.
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

	mu    sync.Mutex
	pumps map[string]*pump
}

type pump struct {
	ps     *Pumps
	key    string
	shards []*shard
}

type shard struct {
	p *pump

	mu      sync.Mutex
	streams map[Stream]struct{}
	// wake wakes the goroutine for streams added since its sweep, and when
	// the last one is taken out.
	wake    chan struct{}
	running bool
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
	if ps.pumps == nil {
		ps.pumps = map[string]*pump{}
	}
	p := ps.pumps[key]
	if p == nil {
		p = &pump{ps: ps, key: key}
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
		sh = &shard{p: p, streams: map[Stream]struct{}{}, wake: make(chan struct{}, 1)}
		p.shards = append(p.shards, sh)
	}
	sh.mu.Lock()
	sh.streams[s] = struct{}{}
	m.shard = sh
	start := !sh.running
	sh.running = true
	sh.mu.Unlock()
	ps.mu.Unlock()
	if start {
		go sh.run()
	} else {
		sh.poke()
	}
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

func (sh *shard) poke() {
	select {
	case sh.wake <- struct{}{}:
	default:
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

// takeLocked takes s out of the shard; m.mu is held.
func (sh *shard) takeLocked(m *Member, s Stream) {
	sh.mu.Lock()
	delete(sh.streams, s)
	empty := len(sh.streams) == 0
	sh.mu.Unlock()
	m.shard = nil
	if empty {
		sh.poke() // so that the goroutine ends
	}
}

// run sweeps the shard's streams whenever their topic changes, ticks them,
// and returns once the shard is empty.
func (sh *shard) run() {
	interval := sh.p.ps.Tick
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var hold *time.Timer // waits out the spacing
	defer func() {
		if hold != nil {
			hold.Stop()
		}
	}()
	// swept is when the last sweep started; spacing how far apart from it
	// the next one starts.
	var swept time.Time
	var spacing time.Duration
	var streams []Stream
	snapshot := func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		streams = streams[:0]
		for s := range sh.streams {
			streams = append(streams, s)
		}
		return len(streams) > 0
	}
	for {
		if !snapshot() {
			if sh.stop() {
				return
			}
			continue
		}
		// Take the change channel before sweeping, so a change during the
		// sweep wakes the next one.
		changed := streams[0].Changed()
		if sh.p.ps.Interval > 0 {
			swept = time.Now()
		}
		for _, s := range streams {
			sh.visit(s, s.Sweep)
		}
		clear(streams)
		if limit := sh.p.ps.Interval; limit > 0 {
			spacing = min(limit, SpacingFactor*time.Since(swept))
		}
		select {
		case <-changed:
			if d := spacing - time.Since(swept); d > 0 {
				// Let more commits come, to be written with this one.
				if hold == nil {
					hold = time.NewTimer(d)
				} else {
					hold.Reset(d)
				}
				<-hold.C
			}
		case <-sh.wake:
		case now := <-tick.C:
			snapshot()
			for _, s := range streams {
				sh.visit(s, func() func() { return s.Tick(now) })
			}
			clear(streams)
		}
	}
}

// stop ends the shard's goroutine if the shard is still empty, and forgets
// the shard (and its pump once it has none).
func (sh *shard) stop() bool {
	ps := sh.p.ps
	ps.mu.Lock()
	defer ps.mu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.streams) > 0 {
		return false
	}
	sh.running = false
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
	return true
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
