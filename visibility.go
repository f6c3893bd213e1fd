package viewsync

import (
	"sync"
	"time"
)

// Visibility: how long a commit takes to be on a client's screen. Clients
// report what they have rendered (a WebSocket "ack", or the cursor of their
// next poll); the hub looks up when that commit was made and reports the
// difference through Metrics.Visible. It also keeps each reporting client's
// position, so Lagging can count the clients that are behind.

// commitTimesKept is how many recent commit times the hub keeps per
// collection; renders of older commits are not measured. A collection's
// ring starts at minCommitTimes and doubles as its commits come, so that a
// collection written a few times costs a few hundred bytes, not 16 KiB.
const (
	commitTimesKept = 1024
	minCommitTimes  = 4
)

// maxClientsTracked bounds the client positions kept for Lagging.
const maxClientsTracked = 100_000

// clientTTL is how long a client that stopped reporting is remembered.
const clientTTL = 2 * time.Minute

// visibility holds recent commit times and client positions.
type visibility struct {
	mu sync.Mutex
	// times maps a collection to a ring of its recent commits' times.
	times map[string]*timeRing
	// clients maps a client (and collection) to its last rendered version.
	clients map[clientKey]clientPos
}

// timeRing holds the times of a collection's recent commits, version v
// at slots[v % len(slots)].
type timeRing struct {
	// epoch is the history whose commits the ring holds.
	epoch string
	slots []commitTime
}

// commitTime is when the commit of a version was made (Unix nanoseconds);
// version 0 marks an empty slot.
type commitTime struct {
	version uint64
	at      int64
}

// put records version's time, first doubling the ring (up to
// commitTimesKept) when that would overwrite a commit still within the
// larger ring's reach.
func (r *timeRing) put(version uint64, at int64) {
	if len(r.slots) == 0 {
		r.slots = make([]commitTime, minCommitTimes)
	}
	if old := r.slots[version%uint64(len(r.slots))]; old.version != 0 && old.version != version && len(r.slots) < commitTimesKept {
		grown := make([]commitTime, 2*len(r.slots))
		for _, ct := range r.slots {
			if ct.version != 0 {
				grown[ct.version%uint64(len(grown))] = ct
			}
		}
		r.slots = grown
	}
	r.slots[version%uint64(len(r.slots))] = commitTime{version, at}
}

// get returns when version was committed, if the ring holds it.
func (r *timeRing) get(version uint64) (int64, bool) {
	if version == 0 || len(r.slots) == 0 {
		return 0, false
	}
	ct := r.slots[version%uint64(len(r.slots))]
	return ct.at, ct.version == version
}

type clientKey struct {
	client     string
	collection string
}

type clientPos struct {
	version uint64
	seen    time.Time
}

func newVisibility() *visibility {
	return &visibility{times: map[string]*timeRing{}, clients: map[clientKey]clientPos{}}
}

// committed records when a commit of epoch was made.
func (v *visibility) committed(collection, epoch string, version uint64, at time.Time, maxCollections int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ringLocked(collection, epoch, maxCollections).put(version, at.UnixNano())
}

// replaced records that a collection's history was replaced by epoch.
func (v *visibility) replaced(collection, epoch string, maxCollections int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ringLocked(collection, epoch, maxCollections)
}

// ringLocked returns the ring of a collection's commits in epoch. The
// first sight of another epoch forgets the collection's commit times and
// client positions, which the new history's versions would match wrongly;
// clients report their positions again as they render it.
func (v *visibility) ringLocked(collection, epoch string, maxCollections int) *timeRing {
	r := v.times[collection]
	if r != nil && r.epoch == epoch {
		return r
	}
	if r != nil {
		for k := range v.clients {
			if k.collection == collection {
				delete(v.clients, k)
			}
		}
	} else if len(v.times) >= maxCollections {
		clear(v.times) // forget all: only measurements are lost
	}
	r = &timeRing{epoch: epoch}
	v.times[collection] = r
	return r
}

// commitTimeLocked returns when a recent commit was made.
func (v *visibility) commitTimeLocked(collection string, version uint64) (time.Time, bool) {
	r := v.times[collection]
	if r == nil {
		return time.Time{}, false
	}
	at, ok := r.get(version)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, at), true
}

// rendered records that client shows collection at version and returns
// how long after its commit that is; ok is false when the version was
// already reported by this client, or its commit time is not known.
func (v *visibility) rendered(client, collection string, version uint64, now time.Time) (time.Duration, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := clientKey{client, collection}
	prev, known := v.clients[key]
	if len(v.clients) >= maxClientsTracked && !known {
		v.expireLocked(now)
		if len(v.clients) >= maxClientsTracked {
			return 0, false
		}
	}
	v.clients[key] = clientPos{version: max(version, prev.version), seen: now}
	if known && version <= prev.version {
		return 0, false
	}
	at, ok := v.commitTimeLocked(collection, version)
	if !ok {
		return 0, false
	}
	return max(now.Sub(at), 0), true
}

// forget drops a client's position (it disconnected).
func (v *visibility) forget(client, collection string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.clients, clientKey{client, collection})
}

func (v *visibility) expireLocked(now time.Time) {
	for k, p := range v.clients {
		if now.Sub(p.seen) > clientTTL {
			delete(v.clients, k)
		}
	}
}

// lagging counts, per collection, the clients whose first unrendered
// commit (per head) was made more than threshold ago.
func (v *visibility) lagging(heads func(collection string) (uint64, bool), threshold time.Duration, now time.Time) map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.expireLocked(now)
	out := map[string]int{}
	for k, p := range v.clients {
		head, ok := heads(k.collection)
		if !ok {
			continue
		}
		if _, seen := out[k.collection]; !seen {
			out[k.collection] = 0
		}
		if p.version >= head {
			continue
		}
		at, ok := v.commitTimeLocked(k.collection, p.version+1)
		if !ok || now.Sub(at) > threshold {
			out[k.collection]++
		}
	}
	return out
}

// Rendered reports that a client (an opaque id, unique per connection or
// browser session) shows collection at version. The time since that
// commit was made is reported once per client and version through
// Metrics.Visible; the client's position feeds Lagging. Transports call it
// on a WebSocket ack, and with the cursor of a poll that names its client.
func (h *Hub) Rendered(client, collection string, version uint64) {
	if client == "" {
		return
	}
	if d, ok := h.vis.rendered(client, collection, version, time.Now()); ok {
		h.met.Visible(collection, d)
	}
}

// Forget drops a client's position, when it disconnects.
func (h *Hub) Forget(client, collection string) { h.vis.forget(client, collection) }

// Lagging returns, for each collection with reporting clients, how many of
// them show a version whose successor was committed more than threshold
// ago: the clients that are behind.
func (h *Hub) Lagging(threshold time.Duration) map[string]int {
	return h.vis.lagging(func(name string) (uint64, bool) {
		c, ok := h.heads.Load(name)
		if !ok {
			return 0, false
		}
		st := c.(*headCache).state.Load()
		if st == nil {
			return 0, false
		}
		return st.head.Version, true
	}, threshold, time.Now())
}
