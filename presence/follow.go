package presence

import (
	"context"
	"sync"
)

// FollowOptions configures a Follower. Write must be set.
type FollowOptions struct {
	// Session is the follower's own session, if its connection has one:
	// its first sync names it (Event.Self, Event.Session).
	Session *Session
	// Write writes events to the client, in order, blocking at most the
	// transport's stall timeout. It is called from the follower's
	// goroutine, one call at a time, never with the registry's lock held.
	// An error stops the follower: the transport ends the connection.
	Write func(evs []Event) error
	// Visible, when set, says whether the follower's principal may see
	// the presence of a member on record (it may read only some rows): a
	// member on a record it may not read is not shown to it at all — it
	// leaves when it moves there, joins when it moves back — so that no
	// record id outside the principal's rows reaches it. It may block (a
	// store read), from the follower's goroutine, with ctx ending when
	// the follower stops. Nil: every member is visible.
	Visible func(ctx context.Context, record string) bool
}

// Follower delivers one collection's presence to one subscriber: a sync,
// then the changes, from a goroutine of its own that runs while events
// wait and ends when there are none. Make one with Registry.Follow; Stop
// it when the subscriber goes.
type Follower struct {
	r    *Registry
	room *room
	opts FollowOptions
	self string

	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the fields below. Taken after Registry.mu.
	mu      sync.Mutex
	queue   []Event
	resync  bool
	running bool
	stopped bool
	// idle is closed, and replaced, when the goroutine ends.
	idle chan struct{}

	// shown is what a follower with Visible shows: member → its record.
	// Owned by the goroutine.
	shown map[string]string
}

// Follow follows collection's presence with opts. The caller validated
// the collection's name and its principal's right to read it.
func (r *Registry) Follow(collection string, opts FollowOptions) (*Follower, error) {
	f := &Follower{r: r, opts: opts}
	if opts.Session != nil {
		f.self = opts.Session.member
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		f.cancel()
		return nil, ErrClosed
	}
	f.room = r.room(collection)
	f.room.followers[f] = struct{}{}
	ev := r.sync(f.room, f)
	if opts.Session != nil {
		ev.Session, ev.TTL = opts.Session.id, r.opts.TTL
	}
	f.push(ev)
	return f, nil
}

// Stop stops the follower: once it returns, nothing more is written (a
// write under way has returned). It must not be called from Write.
func (f *Follower) Stop() {
	r := f.r
	r.mu.Lock()
	if rm := f.room; rm.followers != nil {
		delete(rm.followers, f)
		if len(rm.members) == 0 && len(rm.followers) == 0 && r.rooms[rm.name] == rm {
			delete(r.rooms, rm.name)
		}
	}
	r.mu.Unlock()
	f.cancel()
	f.mu.Lock()
	f.stopped = true
	f.queue = nil
	idle := f.idle
	running := f.running
	f.mu.Unlock()
	if running {
		<-idle
	}
}

// push queues ev, starting the goroutine if needed. Past MaxQueue the
// queue is dropped for a sync. Registry.mu is held.
func (f *Follower) push(ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	switch {
	case ev.Kind == Sync:
		// A sync replaces everything before it.
		f.queue = append(f.queue[:0], ev)
		f.resync = false
	case f.resync:
	case len(f.queue) >= f.r.opts.MaxQueue:
		f.queue = nil
		f.resync = true
	default:
		f.queue = append(f.queue, ev)
	}
	if !f.running {
		f.running = true
		f.idle = make(chan struct{})
		go f.run(f.idle)
	}
}

// run writes what is queued until nothing is.
func (f *Follower) run(idle chan struct{}) {
	defer close(idle)
	for {
		f.mu.Lock()
		resync := f.resync
		f.mu.Unlock()
		if resync {
			f.r.mu.Lock()
			f.mu.Lock()
			if f.resync && !f.stopped {
				f.queue = append(f.queue[:0], f.r.sync(f.room, f))
				f.resync = false
			}
			f.mu.Unlock()
			f.r.mu.Unlock()
		}
		f.mu.Lock()
		batch := f.queue
		f.queue = nil
		if f.stopped || len(batch) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		if f.opts.Visible != nil {
			batch = f.restrict(batch)
			if len(batch) == 0 {
				continue
			}
		}
		if err := f.opts.Write(batch); err != nil {
			f.mu.Lock()
			f.stopped = true
			f.queue = nil
			f.running = false
			f.mu.Unlock()
			return
		}
	}
}

// restrict turns batch into what a follower with Visible sees.
func (f *Follower) restrict(batch []Event) []Event {
	out := batch[:0]
	for _, ev := range batch {
		switch ev.Kind {
		case Sync:
			f.shown = map[string]string{}
			if ev.Members != nil {
				members := make([]Member, 0, len(ev.Members))
				for _, m := range ev.Members {
					if f.visible(m.Record) {
						members = append(members, m)
						f.shown[m.ID] = m.Record
					}
				}
				ev.Members = members
				ev.Count = len(members)
			}
		case Join, Update:
			_, was := f.shown[ev.Member.ID]
			switch {
			case f.visible(ev.Member.Record):
				f.shown[ev.Member.ID] = ev.Member.Record
				if !was {
					ev.Kind = Join
				} else {
					ev.Kind = Update
				}
			case was:
				delete(f.shown, ev.Member.ID)
				ev = Event{Kind: Leave, Collection: ev.Collection, Member: Member{ID: ev.Member.ID}}
			default:
				continue
			}
		case Leave:
			if _, was := f.shown[ev.Member.ID]; !was {
				continue
			}
			delete(f.shown, ev.Member.ID)
		}
		out = append(out, ev)
	}
	return out
}

// visible reports whether the follower may see presence on record.
func (f *Follower) visible(record string) bool {
	return record == "" || f.opts.Visible(f.ctx, record)
}
