package presence

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/viewsync/viewsync/internal/errcode"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Options configures a Registry. Zero fields mean the defaults; negative
// ones are refused by New.
type Options struct {
	// TTL is how long a session's presence in a collection lasts without
	// a set or heartbeat: a connection gone without a word leaves within
	// it. Clients heartbeat well within it (viewsync.js: every third).
	// Default 30s.
	TTL time.Duration
	// MaxStateBytes bounds a published state (compact JSON). Default
	// 1 KiB.
	MaxStateBytes int
	// MaxMembers is how many members a collection's followers see listed;
	// above it they see only the count (count-only mode), until the
	// members are MaxMembers again. Default 100.
	MaxMembers int
	// MaxCollections bounds the collections one session is present in at
	// once. Default 100.
	MaxCollections int
	// MaxQueue bounds the events waiting for one follower; past it they
	// are dropped and the follower gets a fresh sync instead, as a slow
	// view client gets a catch-up. Default 256.
	MaxQueue int
	// SetRate bounds how often one session sets its state: SetRate sets
	// per second on average, in bursts of twice as many (at least 1);
	// past it Session.Set fails with ErrTooFast, which carries a
	// *RateLimitError saying when to retry. Heartbeats are not sets.
	// Default 10.
	SetRate float64
	// Bus, when set, shares the presence with the other nodes serving
	// the same collections (see Bus): followers see the members of every
	// node. The registry starts it in New and closes it in Close. Nil:
	// this process's presence only.
	Bus Bus
}

// Defaults of Options.
const (
	DefaultTTL            = 30 * time.Second
	DefaultMaxStateBytes  = 1 << 10
	DefaultMaxMembers     = 100
	DefaultMaxCollections = 100
	DefaultMaxQueue       = 256
	DefaultSetRate        = 10
)

// Sentinel errors. A caller maps them to wire codes with
// viewsync.ErrorCode: ErrNoSession is not_found, ErrTooMany
// rate_limited, ErrClosed unavailable.
var (
	// ErrNoSession: no such session (it ended, or was never opened), or
	// one of another principal. It matches store.ErrNotFound.
	ErrNoSession = fmt.Errorf("presence: no such session: %w", store.ErrNotFound)
	// ErrTooMany: the session is present in MaxCollections collections.
	ErrTooMany = fmt.Errorf("presence: %w", errcode.ErrRateLimited)
	// ErrClosed: the registry is closed. It matches store.ErrClosed.
	ErrClosed = fmt.Errorf("presence: %w", store.ErrClosed)
	// ErrTooFast: the session sets its state more often than SetRate
	// allows. The error Set returns also holds a *RateLimitError (of
	// package viewsync's), which says when to retry and matches
	// viewsync.ErrRateLimited (rate_limited).
	ErrTooFast = errors.New("presence: state set too often")
)

// Registry holds the presence of every collection of a hub. It is safe
// for concurrent use.
type Registry struct {
	opts Options

	// mu guards everything below and each room, member, entry and
	// session's entries. Lock order: mu, then a Follower's mu; nothing
	// is written to a client, nor any callback run, with mu held.
	mu       sync.Mutex
	closed   bool
	rooms    map[string]*room
	sessions map[string]*Session
	seq      uint64

	// bus is set when the registry shares presence with other nodes
	// (cluster.go): their members, the local changes still to publish.
	bus *busState
	// limited counts the sets refused by SetRate.
	limited atomic.Uint64
}

// room is one collection's presence.
type room struct {
	name      string
	members   map[string]*member
	followers map[*Follower]struct{}
	// countOnly is set while the members are more than MaxMembers.
	countOnly bool
}

// member is one member's sessions present in a room: this node's, and
// other nodes' presence of it.
type member struct {
	id      string
	entries []*entry
	// shown is the local entry set last.
	shown *entry
	// remote is the member's presence on other nodes, by node id; nil
	// without a bus.
	remote map[string]*remote
}

// entry is one session's presence in one room.
type entry struct {
	s      *Session
	room   *room
	record string
	state  json.RawMessage
	// seq orders sets across the registry: the member shows its
	// latest.
	seq uint64
	// at is when the state was set (Unix nanoseconds), which orders it
	// against other nodes' presence of the member.
	at int64
	// expires is when the entry leaves unless refreshed; timer fires
	// then (or a little later) and checks it.
	expires time.Time
	timer   *time.Timer
}

// New returns a registry with opts (nil: the defaults).
func New(opts *Options) (*Registry, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.TTL < 0 || o.MaxStateBytes < 0 || o.MaxMembers < 0 || o.MaxCollections < 0 || o.MaxQueue < 0 || o.SetRate < 0 {
		return nil, errors.New("presence: negative option")
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxStateBytes == 0 {
		o.MaxStateBytes = DefaultMaxStateBytes
	}
	if o.MaxMembers == 0 {
		o.MaxMembers = DefaultMaxMembers
	}
	if o.MaxCollections == 0 {
		o.MaxCollections = DefaultMaxCollections
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = DefaultMaxQueue
	}
	if o.SetRate == 0 {
		o.SetRate = DefaultSetRate
	}
	r := &Registry{opts: o, rooms: map[string]*room{}, sessions: map[string]*Session{}}
	if o.Bus != nil {
		if err := r.startBus(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Options returns the options in force, defaults applied.
func (r *Registry) Options() Options { return r.opts }

// Close ends every session and follower: nothing is present after it, and
// Open and Follow fail with ErrClosed.
func (r *Registry) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	var followers []*Follower
	for _, rm := range r.rooms {
		for f := range rm.followers {
			followers = append(followers, f)
		}
		for _, m := range rm.members {
			for _, e := range m.entries {
				e.timer.Stop()
			}
		}
	}
	r.rooms = map[string]*room{}
	r.sessions = map[string]*Session{}
	r.mu.Unlock()
	for _, f := range followers {
		f.Stop()
	}
	if r.bus != nil {
		r.stopBus()
	}
}

// Present returns how many sessions are present in collection.
func (r *Registry) Present(collection string) (members, sessions int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rm := r.rooms[collection]
	if rm == nil {
		return 0, 0
	}
	for _, m := range rm.members {
		sessions += len(m.entries)
	}
	return len(rm.members), sessions
}

// Session is one connection's presence: in any number of collections (up
// to MaxCollections), as one member. Make one with Registry.Open.
type Session struct {
	r *Registry
	// id is the session's secret: whoever holds it may publish as it
	// (over HTTP, with the principal that opened it).
	id string
	// member is the public id followers see.
	member string
	// subject is the principal's, empty for an anonymous one.
	subject string
	// entries (guarded by r.mu) are the session's presence per
	// collection; nil once closed.
	entries map[string]*entry
	// sets bounds how often the session sets its state (SetRate).
	sets *rate.Limiter
}

// Open opens a session for the principal named subject (empty: an
// anonymous one, which is a member of its own). Close it when its
// connection ends.
func (r *Registry) Open(subject string) (*Session, error) {
	var b [16]byte
	rand.Read(b[:])
	s := &Session{r: r, id: base64.RawURLEncoding.EncodeToString(b[:]), subject: subject, entries: map[string]*entry{},
		sets: rate.NewLimiter(rate.Limit(r.opts.SetRate), max(1, int(math.Ceil(2*r.opts.SetRate))))}
	if subject != "" {
		sum := sha256.Sum256([]byte("viewsync presence member\x00" + subject))
		s.member = base64.RawURLEncoding.EncodeToString(sum[:12])
	} else {
		rand.Read(b[:12])
		s.member = base64.RawURLEncoding.EncodeToString(b[:12])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.sessions[s.id] = s
	return s, nil
}

// Session returns the open session with id, opened by the principal
// named subject; ErrNoSession otherwise (the same for a session of
// another principal, which is not told apart).
func (r *Registry) Session(id, subject string) (*Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sessions[id]; s != nil && s.subject == subject {
		return s, nil
	}
	return nil, ErrNoSession
}

// ID returns the session's secret id, which its client publishes with
// over HTTP.
func (s *Session) ID() string { return s.id }

// Member returns the member id followers see for the session.
func (s *Session) Member() string { return s.member }

// CheckState checks a state against the registry's limits: a JSON object
// (as protocol.DecodePresenceBody reads it) of at most MaxStateBytes.
// Errors wrap protocol.ErrTooLarge or protocol.ErrBadValue.
func (r *Registry) CheckState(state json.RawMessage) error {
	if len(state) == 0 || state[0] != '{' {
		return fmt.Errorf("%w: a presence state is a JSON object", protocol.ErrBadValue)
	}
	if len(state) > r.opts.MaxStateBytes {
		return fmt.Errorf("%w: presence state is %d bytes, limit %d", protocol.ErrTooLarge, len(state), r.opts.MaxStateBytes)
	}
	return nil
}

// Set publishes the session's presence in collection: about record
// (empty: the collection as a whole), with state, a compact JSON object
// (checked by CheckState; the caller validated collection and record).
// The same record and state again only refresh the TTL, like Touch.
// Past SetRate it fails with ErrTooFast and changes nothing.
func (s *Session) Set(collection, record string, state json.RawMessage) error {
	if err := s.r.CheckState(state); err != nil {
		return err
	}
	if res := s.sets.Reserve(); res.Delay() > 0 {
		wait := res.Delay()
		res.Cancel()
		s.r.limited.Add(1)
		return fmt.Errorf("%w: %w", ErrTooFast, &errcode.RateLimitError{Limit: "presence sets per second", RetryAfter: wait})
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if s.entries == nil {
		return ErrNoSession
	}
	e := s.entries[collection]
	if e != nil {
		e.expires = time.Now().Add(r.opts.TTL)
		if e.record == record && bytes.Equal(e.state, state) {
			return nil
		}
	} else {
		if len(s.entries) >= r.opts.MaxCollections {
			return fmt.Errorf("%w: present in %d collections, the most one connection may be", ErrTooMany, len(s.entries))
		}
		rm := r.room(collection)
		e = &entry{s: s, room: rm, expires: time.Now().Add(r.opts.TTL)}
		e.timer = time.AfterFunc(r.opts.TTL, func() { r.expire(e) })
		s.entries[collection] = e
	}
	r.seq++
	at := time.Now().UnixNano()
	r.update(e.room, s.member, func(m *member) {
		e.record, e.state, e.seq, e.at = record, bytes.Clone(state), r.seq, at
		if !slices.Contains(m.entries, e) {
			m.entries = append(m.entries, e)
		}
	})
	return nil
}

// Touch refreshes the session's presence in collection, as a heartbeat:
// nothing is fanned out. It reports whether the session is present there.
func (s *Session) Touch(collection string) bool {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	e := s.entries[collection]
	if e != nil {
		e.expires = time.Now().Add(r.opts.TTL)
	}
	return e != nil
}

// TouchAll refreshes the session's presence everywhere.
func (s *Session) TouchAll() {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for _, e := range s.entries {
		e.expires = now.Add(r.opts.TTL)
	}
}

// Clear withdraws the session's presence from collection, if any.
func (s *Session) Clear(collection string) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if e := s.entries[collection]; e != nil {
		r.remove(e)
	}
}

// Close withdraws the session's presence everywhere and forgets it: its
// id publishes nothing more.
func (s *Session) Close() {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		for _, e := range s.entries {
			r.remove(e)
		}
	}
	s.entries = nil
	delete(r.sessions, s.id)
}

// expire is an entry's timer: it removes the entry if it was not
// refreshed meanwhile, else waits again.
func (r *Registry) expire(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.s.entries == nil || e.s.entries[e.room.name] != e {
		return // gone already
	}
	if left := time.Until(e.expires); left > 0 {
		e.timer.Reset(left)
		return
	}
	r.remove(e)
}

// room returns collection's room, creating it. r.mu is held.
func (r *Registry) room(collection string) *room {
	rm := r.rooms[collection]
	if rm == nil {
		rm = &room{name: collection, members: map[string]*member{}, followers: map[*Follower]struct{}{}}
		r.rooms[collection] = rm
	}
	return rm
}

// remove takes e out of its session and room. r.mu is held.
func (r *Registry) remove(e *entry) {
	e.timer.Stop()
	delete(e.s.entries, e.room.name)
	r.update(e.room, e.s.member, func(m *member) {
		if i := slices.Index(m.entries, e); i >= 0 {
			m.entries = slices.Delete(m.entries, i, i+1)
		}
	})
}

// update changes member id of rm with mutate, which adds, changes or
// removes its local entries or other nodes' presence of it, then tells
// the followers what they see change, and the bus what this node's
// presence of the member became. r.mu is held.
func (r *Registry) update(rm *room, id string, mutate func(m *member)) {
	m := rm.members[id]
	if m == nil {
		m = &member{id: id}
		rm.members[id] = m
	}
	was := m.present()
	var old, oldLocal Member
	if was {
		old = r.view(m)
	}
	localWas := m.shown != nil
	if localWas {
		oldLocal = Member{Record: m.shown.record, State: m.shown.state}
	}
	mutate(m)
	m.shown = nil
	for _, e := range m.entries {
		if m.shown == nil || e.seq > m.shown.seq {
			m.shown = e
		}
	}
	if r.bus != nil && (localWas != (m.shown != nil) || m.shown != nil && !sameShown(oldLocal, Member{Record: m.shown.record, State: m.shown.state})) {
		r.bus.changed(rm.name, id)
	}
	switch {
	case !m.present():
		delete(rm.members, id)
		if was {
			r.membersChanged(rm, Event{Kind: Leave, Collection: rm.name, Member: Member{ID: id}})
		}
	case !was:
		r.membersChanged(rm, Event{Kind: Join, Collection: rm.name, Member: r.view(m)})
	default:
		if v := r.view(m); !sameShown(v, old) && !rm.countOnly {
			r.broadcast(rm, Event{Kind: Update, Collection: rm.name, Member: v})
		}
	}
	if len(rm.members) == 0 && len(rm.followers) == 0 {
		delete(r.rooms, rm.name)
	}
}

// sameShown reports whether a and b show the same record and state.
func sameShown(a, b Member) bool {
	return a.Record == b.Record && bytes.Equal(a.State, b.State)
}

// present reports whether the member is present on any node.
func (m *member) present() bool { return len(m.entries) > 0 || len(m.remote) > 0 }

// membersChanged tells the followers of a join or leave: the event
// itself, or in count-only mode the count, or a sync when the mode
// changes. r.mu is held.
func (r *Registry) membersChanged(rm *room, ev Event) {
	over := len(rm.members) > r.opts.MaxMembers
	switch {
	case over != rm.countOnly:
		rm.countOnly = over
		for f := range rm.followers {
			f.push(r.sync(rm, f))
		}
	case over:
		r.broadcast(rm, Event{Kind: Count, Collection: rm.name, Count: len(rm.members)})
	default:
		r.broadcast(rm, ev)
	}
}

// broadcast queues ev for every follower of rm. r.mu is held.
func (r *Registry) broadcast(rm *room, ev Event) {
	for f := range rm.followers {
		f.push(ev)
	}
}

// sync returns the sync event of rm for f. r.mu is held.
func (r *Registry) sync(rm *room, f *Follower) Event {
	ev := Event{Kind: Sync, Collection: rm.name, Count: len(rm.members), Self: f.self}
	if !rm.countOnly {
		ev.Members = make([]Member, 0, len(rm.members))
		for _, m := range rm.members {
			ev.Members = append(ev.Members, r.view(m))
		}
		slices.SortFunc(ev.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	}
	return ev
}

// view returns the member as followers see it: the state set last on
// any node (by the setting node's clock; the greater node id on a tie).
// The member is present. r.mu is held.
func (r *Registry) view(m *member) Member {
	v := Member{ID: m.id}
	var at int64
	var node string
	if e := m.shown; e != nil {
		v.Record, v.State, at, node = e.record, e.state, e.at, r.node()
	}
	for n, rem := range m.remote {
		if v.State == nil || rem.at > at || rem.at == at && n > node {
			v.Record, v.State, at, node = rem.record, rem.state, rem.at, n
		}
	}
	return v
}
