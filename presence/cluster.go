package presence

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"
)

// Bus carries presence messages between the registries of the nodes that
// serve the same collections. Each registry publishes its own members of
// a collection (joins, changes and leaves as they happen, and all of them
// again every third of its TTL), and keeps every other node's for as long
// as that node's TTL after hearing of them: the presence of a node that
// dies leaves the others within its TTL and a sweep (TTL/10). A registry
// that starts, or whose bus lost messages, asks the others to publish
// theirs at once (a hello) rather than waiting a refresh period. Messages
// are bounded (see MaxBusMessageBytes); a malformed or oversized one is
// dropped and counted (Stats.BusDropped).
//
// An implementation delivers every node's messages to every node (its
// own may come back: they are ignored), in the order each node published
// them; it need not be reliable — what is lost is repaired by the next
// refresh, a leave by the TTL.
type Bus interface {
	// Start starts delivering messages to deliver, one call at a time,
	// and calls lost (from any goroutine, not during deliver) whenever
	// messages may have been missed, as after a reconnection. It
	// returns once messages published from then on reach deliver.
	Start(deliver func(msg []byte), lost func()) error
	// Publish sends msg, about collection (empty: about the node as a
	// whole), to every node. It does not wait on the network for long:
	// a message it cannot send at once fails.
	Publish(collection string, msg []byte) error
	// Close stops the deliveries: once it returns, deliver and lost are
	// not called.
	Close() error
}

// MaxBusMessageBytes is the size a registry fills its bus messages to:
// a refresh of many members is split into messages of about this size. A
// message with a single member may be larger, by up to the member's
// record and state; a registry drops messages larger than this plus
// twice its MaxStateBytes and 4 KiB.
const MaxBusMessageBytes = 64 << 10

// Stats are a registry's figures, for metrics.
type Stats struct {
	// Members is the number of members in every collection, as followers
	// see them: this node's and, with a bus, the other nodes'.
	Members int
	// Sessions is the number of this node's sessions' presences (one per
	// session and collection).
	Sessions int
	// Remote is the number of other nodes' presences of members (one per
	// node, collection and member).
	Remote int
	// Limited counts the sets refused by SetRate.
	Limited uint64
	// BusIn and BusInBytes count the messages received from other nodes
	// and applied; BusOut and BusOutBytes those published.
	BusIn, BusInBytes, BusOut, BusOutBytes uint64
	// BusDropped counts the messages received and dropped: malformed,
	// oversized, or from a newer wire version.
	BusDropped uint64
	// BusFailed counts the messages the bus failed to publish (while
	// disconnected, say): the next refresh repairs them.
	BusFailed uint64
}

// Stats returns the registry's figures.
func (r *Registry) Stats() Stats {
	r.mu.Lock()
	var st Stats
	for _, rm := range r.rooms {
		st.Members += len(rm.members)
		for _, m := range rm.members {
			st.Sessions += len(m.entries)
			st.Remote += len(m.remote)
		}
	}
	r.mu.Unlock()
	st.Limited = r.limited.Load()
	if b := r.bus; b != nil {
		st.BusIn, st.BusInBytes = b.in.Load(), b.inBytes.Load()
		st.BusOut, st.BusOutBytes = b.out.Load(), b.outBytes.Load()
		st.BusDropped, st.BusFailed = b.dropped.Load(), b.failed.Load()
	}
	return st
}

// remote is one other node's presence of a member in a room.
type remote struct {
	record string
	state  json.RawMessage
	// at is when that node's member set the state, by its clock.
	at int64
	// expires is when it leaves unless the node refreshes it.
	expires time.Time
}

// busState is a registry's side of the bus.
type busState struct {
	bus Bus
	// id is this node's id on the bus, random per registry.
	id string
	// maxIn bounds a message received.
	maxIn int

	// pending (guarded by Registry.mu) are the members whose local
	// presence changed since the last publish, by collection.
	pending map[string]map[string]struct{}

	// kick wakes the publisher for pending changes; refresh asks it to
	// publish every member (another node said hello); resync to say
	// hello and publish every member (the bus lost messages).
	kick, refresh, resync chan struct{}
	stop, done            chan struct{}

	in, inBytes, out, outBytes, dropped, failed atomic.Uint64
}

// node returns this node's id on the bus, empty without one.
func (r *Registry) node() string {
	if r.bus == nil {
		return ""
	}
	return r.bus.id
}

// startBus starts the bus and the publisher, and says hello.
func (r *Registry) startBus() error {
	var id [12]byte
	rand.Read(id[:])
	b := &busState{
		bus:     r.opts.Bus,
		id:      base64.RawURLEncoding.EncodeToString(id[:]),
		maxIn:   MaxBusMessageBytes + 2*r.opts.MaxStateBytes + 4<<10,
		pending: map[string]map[string]struct{}{},
		kick:    make(chan struct{}, 1),
		refresh: make(chan struct{}, 1),
		resync:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	r.bus = b
	if err := b.bus.Start(r.receive, func() { signal(b.resync) }); err != nil {
		return fmt.Errorf("presence: start the bus: %w", err)
	}
	go r.runBus()
	r.publish("", appendNodeMessage(nil, b.id, "hello"))
	return nil
}

// stopBus stops the publisher, tells the other nodes that this one's
// members are gone, and closes the bus.
func (r *Registry) stopBus() {
	b := r.bus
	close(b.stop)
	<-b.done
	r.publish("", appendNodeMessage(nil, b.id, "bye"))
	b.bus.Close()
}

// signal wakes whoever waits on c, once however many signals.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// changed notes that this node's presence of member id in collection
// changed, for the publisher. r.mu is held.
func (b *busState) changed(collection, id string) {
	p := b.pending[collection]
	if p == nil {
		p = map[string]struct{}{}
		b.pending[collection] = p
	}
	p[id] = struct{}{}
	signal(b.kick)
}

// runBus publishes: pending changes as soon as there are some, every
// member each refresh period, and expires other nodes' members.
func (r *Registry) runBus() {
	b := r.bus
	defer close(b.done)
	refresh := time.NewTicker(r.refreshPeriod())
	defer refresh.Stop()
	sweep := time.NewTicker(max(r.opts.TTL/10, time.Millisecond))
	defer sweep.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.kick:
			r.flush(false)
		case <-b.refresh:
			r.flush(true)
		case <-refresh.C:
			r.flush(true)
		case <-b.resync:
			r.publish("", appendNodeMessage(nil, b.id, "hello"))
			r.flush(true)
		case <-sweep.C:
			r.sweep()
		}
	}
}

// refreshPeriod is how often a node publishes all its members: a third
// of the TTL, so that one lost refresh does not make them leave.
func (r *Registry) refreshPeriod() time.Duration { return max(r.opts.TTL/3, time.Millisecond) }

// flush publishes the pending changes, or with all every local member.
func (r *Registry) flush(all bool) {
	b := r.bus
	type batch struct {
		items  []busItem
		leaves []string
	}
	batches := map[string]*batch{}
	get := func(c string) *batch {
		bt := batches[c]
		if bt == nil {
			bt = &batch{}
			batches[c] = bt
		}
		return bt
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	for c, ids := range b.pending {
		rm := r.rooms[c]
		for id := range ids {
			var m *member
			if rm != nil {
				m = rm.members[id]
			}
			switch {
			case m != nil && m.shown != nil:
				if !all {
					get(c).items = append(get(c).items, busItem{member: id, record: m.shown.record, state: m.shown.state, at: m.shown.at})
				}
			default:
				get(c).leaves = append(get(c).leaves, id)
			}
		}
	}
	clear(b.pending)
	if all {
		for c, rm := range r.rooms {
			for id, m := range rm.members {
				if m.shown != nil {
					get(c).items = append(get(c).items, busItem{member: id, record: m.shown.record, state: m.shown.state, at: m.shown.at})
				}
			}
		}
	}
	r.mu.Unlock()
	ttl := r.opts.TTL.Milliseconds()
	for _, c := range slices.Sorted(maps.Keys(batches)) {
		bt := batches[c]
		for msg := range splitMessages(b.id, c, ttl, bt.items, bt.leaves) {
			r.publish(c, msg)
		}
	}
}

// publish publishes msg about collection, counting it.
func (r *Registry) publish(collection string, msg []byte) {
	b := r.bus
	if err := b.bus.Publish(collection, msg); err != nil {
		b.failed.Add(1)
		return
	}
	b.out.Add(1)
	b.outBytes.Add(uint64(len(msg)))
}

// receive applies a message from the bus.
func (r *Registry) receive(msg []byte) {
	b := r.bus
	if len(msg) > b.maxIn {
		b.dropped.Add(1)
		return
	}
	m, err := decodeBusMessage(msg, r.opts.MaxStateBytes)
	if err != nil {
		b.dropped.Add(1)
		return
	}
	if m.node == b.id {
		return
	}
	b.in.Add(1)
	b.inBytes.Add(uint64(len(msg)))
	switch m.kind {
	case "hello":
		signal(b.refresh)
	case "bye":
		r.forget(func(node string) bool { return node == m.node }, time.Time{})
	default:
		r.apply(m)
	}
}

// apply applies another node's members of a collection.
func (r *Registry) apply(msg *busMessage) {
	expires := time.Now().Add(msg.ttl)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for _, it := range msg.items {
		if rm := r.rooms[msg.collection]; rm != nil {
			if m := rm.members[it.member]; m != nil {
				if rem := m.remote[msg.node]; rem != nil && (it.at < rem.at || it.at == rem.at && rem.record == it.record && bytes.Equal(rem.state, it.state)) {
					// A refresh, or older than what the node said last.
					rem.expires = expires
					continue
				}
			}
		}
		r.update(r.room(msg.collection), it.member, func(m *member) {
			if m.remote == nil {
				m.remote = map[string]*remote{}
			}
			m.remote[msg.node] = &remote{record: it.record, state: it.state, at: it.at, expires: expires}
		})
	}
	rm := r.rooms[msg.collection]
	for _, id := range msg.leaves {
		if rm == nil {
			break
		}
		if m := rm.members[id]; m != nil && m.remote[msg.node] != nil {
			r.update(rm, id, func(m *member) { delete(m.remote, msg.node) })
		}
		rm = r.rooms[msg.collection]
	}
}

// sweep removes the other nodes' members not refreshed in time.
func (r *Registry) sweep() {
	r.forget(func(string) bool { return true }, time.Now())
}

// forget removes other nodes' presences: of the nodes gone says, those
// expired before now (all of them with a zero now).
func (r *Registry) forget(gone func(node string) bool, now time.Time) {
	type key struct{ coll, id, node string }
	r.mu.Lock()
	defer r.mu.Unlock()
	var drop []key
	for c, rm := range r.rooms {
		for id, m := range rm.members {
			for node, rem := range m.remote {
				if gone(node) && (now.IsZero() || rem.expires.Before(now)) {
					drop = append(drop, key{c, id, node})
				}
			}
		}
	}
	for _, k := range drop {
		if rm := r.rooms[k.coll]; rm != nil {
			r.update(rm, k.id, func(m *member) { delete(m.remote, k.node) })
		}
	}
}
