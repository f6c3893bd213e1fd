package e2e

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// How subscribers behave.
const (
	// A connection lives [minLife, maxLife) before the subscriber drops it.
	minLife = 100 * time.Millisecond
	maxLife = 2 * time.Second
	// Between connections a subscriber waits [0, shortAway), or one time
	// in longAwayOdds until awayCommits more commits were made to (one
	// of) its collections: more than the fanout buffer and the change log
	// hold together (about 17 commits of the writers' average size, and
	// 16), so that it resumes with a catch-up read from the store.
	shortAway    = 100 * time.Millisecond
	longAwayOdds = 8
	awayCommits  = 40
	// A slow subscriber pauses [0, slowRead) after each event, and one
	// time in stallOdds stops reading until stallCommits more commits were
	// made: its socket and queue fill, it falls out of the fanout buffer
	// and gets a catch-up from the buffer's topic. Counting commits rather
	// than time keeps this so however fast the machine writes.
	slowRead     = 30 * time.Millisecond
	stallOdds    = 40
	stallCommits = 60
	// slowReadBuffer is a slow subscriber's socket receive buffer.
	slowReadBuffer = 4 << 10
)

// subscriber is one client: one stream (SSE or NDJSON), or one WebSocket
// connection following one or both collections. It reconnects at random
// and resumes each collection from its cursor.
type subscriber struct {
	name string
	via  pushTransport
	rng  *rand.Rand
	slow bool
	// joinAfter delays its first connection.
	joinAfter time.Duration
	follows   []*follower
	tr        *http.Transport
	client    *http.Client
	// narrow is set while the subscriber's connections get a small
	// receive buffer: while a slow one reads slowly.
	narrow atomic.Bool
	// reconnects counts the connections after the first.
	reconnects int
	// life ends the current connection when its lifetime is over; nil
	// while draining.
	life *time.Timer
}

func newSubscriber(pick *rand.Rand, seed uint64, i int, tr pushTransport) *subscriber {
	s := &subscriber{
		name: fmt.Sprintf("%s-%d", tr, i),
		via:  tr,
		rng:  rand.New(rand.NewPCG(seed, uint64(1<<33+i))),
		slow: pick.IntN(4) == 0,
	}
	if s.slow {
		s.name += "-slow"
	}
	s.tr = &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil && s.narrow.Load() {
				err = c.(*net.TCPConn).SetReadBuffer(slowReadBuffer)
			}
			return c, err
		},
	}
	s.client = &http.Client{Transport: s.tr}
	s.narrow.Store(s.slow)
	return s
}

// run connects and reconnects until the writers are done and every
// collection it follows is at its final head, or ctx ends.
func (s *subscriber) run(ctx context.Context, base string, ph *phases) error {
	if !sleepCtx(ph.writing, s.joinAfter) && ctx.Err() != nil {
		return ctx.Err()
	}
	for first := true; ; first = false {
		draining := ph.draining()
		if draining && s.atTargets(ph.targets) {
			return nil
		}
		if draining {
			s.narrow.Store(false)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w within the time allowed: at %s", errNotAtHead, s.cursors())
		}
		if !first {
			s.reconnects++
		}
		var cctx context.Context
		var cancel context.CancelFunc
		if draining {
			cctx, cancel = context.WithCancel(ctx)
		} else {
			cctx, cancel = context.WithCancel(ph.writing)
			s.life = time.AfterFunc(s.lifetime(), cancel)
		}
		err := s.follow(cctx, base, ph, draining)
		if s.life != nil {
			s.life.Stop()
			s.life = nil
		}
		cancel()
		if err != nil {
			return err
		}
		if !draining {
			if s.rng.IntN(longAwayOdds) == 0 {
				ph.waitCommits(ph.writing, s.follows[s.rng.IntN(len(s.follows))].coll, awayCommits)
			} else {
				sleepCtx(ph.writing, time.Duration(s.rng.Int64N(int64(shortAway))))
			}
		}
	}
}

// lifetime draws how long the next connection lives.
func (s *subscriber) lifetime() time.Duration {
	return minLife + time.Duration(s.rng.Int64N(int64(maxLife-minLife)))
}

// atTargets reports whether every followed collection is at its target.
func (s *subscriber) atTargets(targets map[string]protocol.Head) bool {
	for _, f := range s.follows {
		if f.cur != targets[f.coll].Cursor() {
			return false
		}
	}
	return true
}

func (s *subscriber) cursors() string {
	var parts []string
	for _, f := range s.follows {
		parts = append(parts, f.coll+"@"+f.cur.String())
	}
	return strings.Join(parts, ", ")
}

// pace slows a slow subscriber down after an event of coll, while the
// writers write.
func (s *subscriber) pace(ctx context.Context, ph *phases, coll string, draining bool) {
	if !s.slow || draining {
		return
	}
	if s.rng.IntN(stallOdds) == 0 {
		// The connection outlives the stall: its lifetime starts again
		// after it, unless it has just ended.
		if s.life != nil && s.life.Stop() {
			ph.waitCommits(ph.writing, coll, stallCommits)
			s.life.Reset(s.lifetime())
		}
		return
	}
	sleepCtx(ctx, time.Duration(s.rng.Int64N(int64(slowRead))))
}

// sleepCtx sleeps for d or until ctx ends; it reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// follow follows every collection of the subscriber over one connection
// of its transport, from its cursors where it has them (an event stream
// sends Last-Event-ID, the NDJSON stream after and epoch, a WebSocket
// subscribes with them). It returns nil when ctx ends, or when draining
// and at the targets.
func (s *subscriber) follow(ctx context.Context, base string, ph *phases, draining bool) error {
	byName := map[string]*follower{}
	var fs []pushFollow
	for _, f := range s.follows {
		pf := pushFollow{coll: f.coll}
		if f.cursored {
			cur := f.cur
			pf.cur = &cur
		}
		fs = append(fs, pf)
		byName[f.coll] = f
	}
	conn, r, err := s.via.open(ctx, s.client, base, nil, fs...)
	if err != nil || conn == nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("open at %s: %v %s", s.cursors(), err, r)
	}
	defer conn.close()
	for _, f := range s.follows {
		f.connected()
	}
	for {
		ev, err := conn.next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("connection ended at %s: %w", s.cursors(), err)
		}
		f := byName[ev.coll]
		if f == nil {
			return fmt.Errorf("%s, not followed", ev)
		}
		switch ev.kind {
		case evReset:
			f.reset(protocol.Snapshot{Epoch: ev.epoch, Version: ev.version, Records: ev.records})
		case evCatchUp:
			f.catchUp(protocol.CatchUp{Epoch: ev.epoch, Version: ev.version, Records: ev.records, Deleted: ev.deleted})
		case evCommit:
			f.commit(ev.epoch, protocol.Commit{Version: ev.version, Ops: ev.ops})
		default:
			return fmt.Errorf("server: %s", ev)
		}
		if draining && s.atTargets(ph.targets) {
			return nil
		}
		s.pace(ctx, ph, f.coll, draining)
	}
}

// kind is what an entry of a follower's history records.
type kind uint8

const (
	kConnect kind = iota
	kReset
	kCatchUp
	kCommit
)

func (k kind) String() string {
	return [...]string{"connect", "reset", "catchup", "commit"}[k]
}

// seen is one entry of a follower's history.
type seen struct {
	kind kind
	// cursored, for kConnect: the subscription resumed from a cursor.
	cursored bool
	epoch    string
	version  uint64
	// hash is a kCommit's opsHash.
	hash uint64
}

// follower is one subscriber's view of one collection: the state it built
// and the sequence of everything it saw.
type follower struct {
	coll string
	// cursored is set once the follower has a cursor to resume from: from
	// the start when it began at version 0, else from its first reset.
	cursored bool
	// cur is the position after the last event, as the server stated it.
	cur     protocol.Cursor
	records map[string]string
	history []seen

	commits, catchUps, resets int
}

func newFollower(coll string, atZero bool) *follower {
	return &follower{coll: coll, cursored: atZero, records: map[string]string{}}
}

func (f *follower) connected() {
	f.history = append(f.history, seen{kind: kConnect, cursored: f.cursored})
}

func (f *follower) reset(s protocol.Snapshot) {
	f.records = recordMap(s.Records)
	f.cur, f.cursored = protocol.Cursor{Epoch: s.Epoch, Version: s.Version}, true
	f.history = append(f.history, seen{kind: kReset, epoch: s.Epoch, version: s.Version})
	f.resets++
}

func (f *follower) catchUp(cu protocol.CatchUp) {
	for _, r := range cu.Records {
		f.records[r.ID] = string(r.Value)
	}
	for _, id := range cu.Deleted {
		delete(f.records, id)
	}
	f.cur, f.cursored = protocol.Cursor{Epoch: cu.Epoch, Version: cu.Version}, true
	f.history = append(f.history, seen{kind: kCatchUp, epoch: cu.Epoch, version: cu.Version})
	f.catchUps++
}

func (f *follower) commit(epoch string, c protocol.Commit) {
	applyOps(f.records, c.Ops)
	f.cur, f.cursored = protocol.Cursor{Epoch: epoch, Version: c.Version}, true
	f.history = append(f.history, seen{kind: kCommit, epoch: epoch, version: c.Version, hash: opsHash(c.Ops)})
	f.commits++
}

// check verifies the history against the final head and the hashes of the
// acknowledged commits: commits strictly consecutive in the one epoch,
// each with the acknowledged ops; catch-ups never going back; resets only
// first on a connection made without a cursor; and the end at the head.
func (f *follower) check(head protocol.Head, acked map[uint64]uint64) error {
	var (
		have     bool   // a position in the history is known
		ver      uint64 // that position
		first    bool   // the next event is the first on its connection
		cursored bool   // the connection resumed from a cursor
	)
	for i, e := range f.history {
		if e.kind != kConnect && e.epoch != head.Epoch {
			return fmt.Errorf("entry %d: %s in epoch %q, the collection's is %q", i, e.kind, e.epoch, head.Epoch)
		}
		switch e.kind {
		case kConnect:
			first, cursored = true, e.cursored
			if have && !cursored {
				return fmt.Errorf("entry %d: connected without the cursor it had", i)
			}
			// A follower that began at version 0 connects with a cursor
			// before it has seen anything.
			have = cursored
			continue
		case kReset:
			if !first || cursored {
				return fmt.Errorf("entry %d: reset at %d on a connection that resumed from %d (first event: %v)", i, e.version, ver, first)
			}
		case kCatchUp:
			if !have {
				return fmt.Errorf("entry %d: catch-up to %d before any reset", i, e.version)
			}
			if e.version < ver {
				return fmt.Errorf("entry %d: catch-up back from %d to %d", i, ver, e.version)
			}
		case kCommit:
			switch {
			case !have:
				return fmt.Errorf("entry %d: commit %d before any reset", i, e.version)
			case e.version <= ver:
				return fmt.Errorf("entry %d: commit %d again (duplicate; at %d)", i, e.version, ver)
			case e.version != ver+1:
				return fmt.Errorf("entry %d: commit %d after %d: a gap of %d", i, e.version, ver, e.version-ver-1)
			}
			if want, ok := acked[e.version]; !ok || want != e.hash {
				return fmt.Errorf("entry %d: commit %d carries ops other than those acknowledged", i, e.version)
			}
		}
		have, ver, first = true, e.version, false
	}
	if !have || ver != head.Version {
		return fmt.Errorf("ended at version %d (known: %v), the head is %d", ver, have, head.Version)
	}
	return nil
}

// describe summarises the history for a failure message: its counts and
// its last entries.
func (f *follower) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %d entries, %d commits, %d catch-ups, %d resets; last:", len(f.history), f.commits, f.catchUps, f.resets)
	for _, e := range f.history[max(0, len(f.history)-12):] {
		if e.kind == kConnect {
			fmt.Fprintf(&b, " connect(cursor:%v)", e.cursored)
		} else {
			fmt.Fprintf(&b, " %s@%d", e.kind, e.version)
		}
	}
	return b.String()
}

// opsHash hashes a commit's ops exactly: kinds, ids and value bytes, in
// order.
func opsHash(ops []protocol.Op) uint64 {
	h := fnv.New64a()
	for _, op := range ops {
		io.WriteString(h, string(op.Op))
		h.Write([]byte{0})
		io.WriteString(h, op.ID)
		h.Write([]byte{0})
		h.Write(op.Value)
		h.Write([]byte{0xff})
	}
	return h.Sum64()
}
