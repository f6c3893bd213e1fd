package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/internal/wstest"
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

// subscriber is one client: one SSE stream, or one WebSocket connection
// following one or both collections. It reconnects at random and resumes
// each collection from its cursor.
type subscriber struct {
	name string
	isWS bool
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

func newSubscriber(pick *rand.Rand, seed uint64, i int, isWS bool) *subscriber {
	s := &subscriber{
		name: fmt.Sprintf("sse-%d", i),
		isWS: isWS,
		rng:  rand.New(rand.NewPCG(seed, uint64(1<<33+i))),
		slow: pick.IntN(4) == 0,
	}
	if isWS {
		s.name = fmt.Sprintf("ws-%d", i)
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
		var err error
		if s.isWS {
			err = s.websocket(cctx, base, ph, draining)
		} else {
			err = s.sse(cctx, base, s.follows[0], ph, draining)
		}
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

// sse follows f over one event stream, resuming with Last-Event-ID. It
// returns nil when ctx ends, or when draining and at the target.
func (s *subscriber) sse(ctx context.Context, base string, f *follower, ph *phases, draining bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/collections/"+f.coll+"/events", nil)
	if err != nil {
		return err
	}
	if f.cursored {
		req.Header.Set("Last-Event-ID", f.cur.String())
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("GET events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET events with Last-Event-ID %q: %d %s", req.Header.Get("Last-Event-ID"), resp.StatusCode, b)
	}
	f.connected()
	br := bufio.NewReader(resp.Body)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("event stream ended at %s: %w", f.cur, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			ev.field(line)
			continue
		}
		if ev.event == "" {
			ev = sseEvent{} // the retry hint, or comments
			continue
		}
		if err := f.applySSE(ev); err != nil {
			return err
		}
		ev = sseEvent{}
		if draining && f.cur == ph.targets[f.coll].Cursor() {
			return nil
		}
		s.pace(ctx, ph, f.coll, draining)
	}
}

// sseEvent is one event of a stream, as its lines set it.
type sseEvent struct {
	id, event, data string
}

// field takes one line of an event; comments and unknown fields are
// ignored, as a browser does.
func (e *sseEvent) field(line string) {
	if line[0] == ':' {
		return
	}
	name, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch name {
	case "id":
		e.id = value
	case "event":
		e.event = value
	case "data":
		if e.data != "" {
			e.data += "\n"
		}
		e.data += value
	}
}

// applySSE applies one event to the follower. Each event's id must be the
// cursor after it.
func (f *follower) applySSE(ev sseEvent) error {
	id, err := protocol.ParseCursor(ev.id)
	if err != nil {
		return fmt.Errorf("%s event with id %q: %w", ev.event, ev.id, err)
	}
	var at protocol.Cursor
	switch ev.event {
	case "reset":
		var snap protocol.Snapshot
		if err := json.Unmarshal([]byte(ev.data), &snap); err != nil || !snap.Reset {
			return fmt.Errorf("reset %s: %v in %.200s", ev.id, err, ev.data)
		}
		f.reset(snap)
		at = protocol.Cursor{Epoch: snap.Epoch, Version: snap.Version}
	case "catchup":
		var cu protocol.CatchUp
		if err := json.Unmarshal([]byte(ev.data), &cu); err != nil || !cu.Compacted {
			return fmt.Errorf("catch-up %s: %v in %.200s", ev.id, err, ev.data)
		}
		f.catchUp(cu)
		at = protocol.Cursor{Epoch: cu.Epoch, Version: cu.Version}
	case "commit":
		var cm protocol.Commit
		if err := json.Unmarshal([]byte(ev.data), &cm); err != nil {
			return fmt.Errorf("commit %s: %v in %.200s", ev.id, err, ev.data)
		}
		f.commit(id.Epoch, cm)
		at = protocol.Cursor{Epoch: id.Epoch, Version: cm.Version}
	default:
		return fmt.Errorf("unknown event %q", ev.event)
	}
	if id != at {
		return fmt.Errorf("%s event with id %s is at %s", ev.event, ev.id, at)
	}
	return nil
}

// websocket follows every collection of the subscriber over one
// connection, subscribing with after and epoch where it has a cursor. It
// returns nil when ctx ends, or when draining and at the targets.
func (s *subscriber) websocket(ctx context.Context, base string, ph *phases, draining bool) error {
	c, resp, err := wstest.Dial(ctx, wsURL(base), &wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
		NetDial:      wstest.NetDialOf(s.client),
		ReadLimit:    64 << 20,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return fmt.Errorf("dial: %w (status %d)", err, status)
	}
	defer c.CloseNow()
	byName := map[string]*follower{}
	for _, f := range s.follows {
		m := &protocol.SubscribeMessage{Collection: f.coll}
		if f.cursored {
			v := f.cur.Version
			m.After, m.Epoch = &v, f.cur.Epoch
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := c.WriteMessage(ctx, gws.OpText, b); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("subscribe: %w", err)
		}
		f.connected()
		byName[f.coll] = f
	}
	for {
		op, b, err := c.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("connection ended at %s: %w", s.cursors(), err)
		}
		if op != gws.OpText {
			return fmt.Errorf("server sent a message of opcode %d", op)
		}
		m, err := protocol.DecodeServerMessage(b)
		if err != nil {
			return fmt.Errorf("%w: %.200s", err, b)
		}
		if m.Type == protocol.TypeError {
			return fmt.Errorf("server error %s: %s", m.Code, m.Message)
		}
		f := byName[m.Collection]
		if f == nil {
			return fmt.Errorf("a %s message of %q, not subscribed to", m.Type, m.Collection)
		}
		switch m.Type {
		case protocol.TypeReset:
			if !m.Reset {
				return fmt.Errorf("reset without reset: %.200s", b)
			}
			f.reset(protocol.Snapshot{Epoch: m.Epoch, Version: m.Version, Records: m.Records})
		case protocol.TypeCatchUp:
			if !m.Compacted {
				return fmt.Errorf("catch-up without compacted: %.200s", b)
			}
			f.catchUp(protocol.CatchUp{Epoch: m.Epoch, Version: m.Version, Records: m.Records, Deleted: m.Deleted})
		case protocol.TypeCommit:
			f.commit(m.Epoch, protocol.Commit{Version: m.Version, Ops: m.Ops})
		default:
			return fmt.Errorf("unexpected %s message: %.200s", m.Type, b)
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
