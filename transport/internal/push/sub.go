package push

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/transport/internal/live"
)

// Owner is the connection a Sub writes to, which the Sub asks for what
// depends on it.
type Owner interface {
	// Go runs f on a goroutine of the connection's (a Sub's slow path),
	// reporting false when the connection is past starting any.
	Go(f func()) bool
	// Context returns the context of the slow path's reads of history: it
	// ends when the connection does, or when its token expires.
	Context() (context.Context, context.CancelFunc)
	// Closing reports whether the connection is ending: the Sub then
	// writes nothing more.
	Closing() bool
	// Tick is called from the pump every tick interval, for keep-alives
	// and expiry; it returns like live.Stream.Tick. A connection that
	// keeps itself alive returns nil.
	Tick(now time.Time) (leave func())
	// Ended is told, once, why the Sub ended on its own: a write failed
	// (a *WriteError), the subscription did (fanout.ErrClosed,
	// fanout.ErrBusy, the context's error, …), an event could not be
	// encoded, or the Sub was taken out of its pump (ErrRemoved). It is
	// not told of a Sub stopped with Stop. It may be called from a pump's
	// goroutine: it must not block.
	Ended(err error)
}

// ErrRemoved ends a Sub taken out of its pump (Remove) while it was on its
// own goroutine.
var ErrRemoved = errors.New("push: taken out of its pump")

// Sub pushes one subscription's events to one connection: from the pump
// while the client is current, from a goroutine of its own (the slow path)
// while it is behind. Make one with NewSub and start it with Run.
type Sub struct {
	member live.Member

	sub   *fanout.Subscription
	sock  *Sock
	enc   Encoder
	frame *Format
	pumps *live.Pumps
	key   string
	owner Owner

	// stopped is set by Stop, under the Sock's write lock: nothing of the
	// Sub is written after.
	stopped atomic.Bool
	// sent is the version of the latest message written or being written.
	sent atomic.Uint64

	// Counts of what was written; owned by whoever holds the Sub (its
	// shard or its goroutine), to be read once it ended.
	commits, catchUps, resets int
}

var _ live.Stream = (*Sub)(nil)

// NewSub returns the Sub pushing sub's events through sock, encoded in
// format, in the pump of pumps named key (its collection), for owner.
func NewSub(sub *fanout.Subscription, sock *Sock, format *Format, pumps *live.Pumps, key string, owner Owner) *Sub {
	if v := sub.ViewKey(); v != "" {
		key += "?where=" + v // a pump per view: only its commits wake it
	}
	return &Sub{sub: sub, sock: sock, enc: format.enc, frame: format, pumps: pumps, key: key, owner: owner}
}

// Run writes what the client is owed, on the calling goroutine and under
// the stall timeout, until the client is current; it then hands the Sub to
// its pump and returns. It returns too when the Sub ends.
func (s *Sub) Run() { s.slow(nil) }

// Stop ends the Sub: nothing of it is written once Stop returns, its
// subscription is closed, and its owner is not told.
func (s *Sub) Stop() {
	s.sock.lock(func() { s.stopped.Store(true) })
	s.pumps.Remove(s)
	s.sub.Close()
}

// Remove takes the Sub out of its pump for good and reports whether it
// was there; if it was, the caller owns it and ends it. If it was not,
// its goroutine tells its owner (ErrRemoved) when it would go back.
func (s *Sub) Remove() bool { return s.pumps.Remove(s) }

// Sent returns the version of the latest message written, or being
// written, to the client.
func (s *Sub) Sent() uint64 { return s.sent.Load() }

// Counts returns how many commits, catch-ups and resets were written.
// Read it once the Sub ended.
func (s *Sub) Counts() (commits, catchUps, resets int) { return s.commits, s.catchUps, s.resets }

// Subscription returns the subscription the Sub follows.
func (s *Sub) Subscription() *fanout.Subscription { return s.sub }

func (s *Sub) isStopped() bool { return s.stopped.Load() }

// AfterChange implements live.Stream.
func (s *Sub) AfterChange(f func()) (stop func() bool) { return s.sub.AfterChange(f) }

// Member implements live.Stream.
func (s *Sub) Member() *live.Member { return &s.member }

// Tick implements live.Stream: the owner's, then, for a filtered view, a
// progress message when its cursor moved past commits that did not
// concern the view since the last message, so that a client resuming
// does not ask for them again.
func (s *Sub) Tick(now time.Time) (leave func()) {
	if leave := s.owner.Tick(now); leave != nil || !s.sub.Filtered() {
		return leave
	}
	if leave := s.Sweep(); leave != nil {
		return leave
	}
	cur := s.sub.Cursor()
	if cur.Version <= s.sent.Load() || cur.Epoch == "" {
		return nil
	}
	res, err := s.sock.TryWrite(s.isStopped, [][]byte{s.enc.Progress(s.sub.Collection(), cur.Epoch, cur.Version)})
	switch res {
	case Written:
		s.sent.Store(cur.Version)
	case Failed:
		return func() { s.end(&WriteError{err}) }
	case Partial:
		s.sent.Store(cur.Version)
		return s.behind(nil)
	}
	return nil // or the socket is busy: the next tick says it
}

// Sweep implements live.Stream: it writes the encodings of the commits
// the topic's buffer holds after the cursor in one non-blocking write.
func (s *Sub) Sweep() (leave func()) {
	if s.stopped.Load() || s.owner.Closing() {
		return func() {}
	}
	ev, err := s.sub.TryNext()
	switch {
	case errors.Is(err, fanout.ErrWouldBlock):
		return nil
	case errors.Is(err, fanout.ErrBehind):
		return s.behind(nil)
	case err != nil:
		return func() { s.end(err) }
	}
	// Only commits come from the buffer.
	var stack [16][]byte
	bufs := stack[:0]
	for _, f := range ev.Frames {
		bufs = append(bufs, f.Encoding(s.frame))
	}
	// Sent before it is written: the client may acknowledge it as soon as
	// it has it.
	s.sent.Store(ev.Frames[len(ev.Frames)-1].Version())
	res, err := s.sock.TryWrite(s.isStopped, bufs)
	clear(bufs)
	switch res {
	case Written:
		s.commits += len(ev.Frames)
		clear(ev.Frames)
		return nil
	case Skipped:
		return func() {}
	case Failed:
		return func() { s.end(&WriteError{err}) }
	case Partial:
		// The rest is pending on the socket: the slow path flushes it
		// under the stall timeout.
		s.commits += len(ev.Frames)
		clear(ev.Frames)
		return s.behind(nil)
	}
	// Busy: another write holds the connection; write these on our own.
	frames := append([]*fanout.Frame(nil), ev.Frames...)
	clear(ev.Frames)
	return s.behind(frames)
}

// behind returns the leave function moving s to its slow path, which
// writes frames first.
func (s *Sub) behind(frames []*fanout.Frame) func() {
	return func() { s.owner.Go(func() { s.slow(frames) }) }
}

// slow is the slow path: it writes what is pending, then frames, then
// every event until the client is current, each under the stall timeout,
// and hands s back to the pump.
func (s *Sub) slow(frames []*fanout.Frame) {
	ctx, cancel := s.owner.Context()
	defer cancel()
	if err := s.sock.Flush(); err != nil {
		s.end(&WriteError{err})
		return
	}
	if len(frames) > 0 && !s.write(fanout.Event{Kind: fanout.EventCommits, Frames: frames}) {
		return
	}
	for {
		if s.stopped.Load() || s.owner.Closing() {
			return
		}
		ev, err := s.sub.NextNow(ctx)
		switch {
		case errors.Is(err, fanout.ErrWouldBlock):
			if !s.pumps.Add(s.key, s) {
				s.end(ErrRemoved)
			}
			return
		case err != nil:
			s.end(err)
			return
		}
		if !s.write(ev) {
			return
		}
	}
}

// write writes ev, blocking under the stall timeout, unless stopped; it
// reports whether the Sub goes on.
func (s *Sub) write(ev fanout.Event) bool {
	bufs, version, err := encodeEvent(s.enc, ev)
	if err != nil {
		s.end(err)
		return false
	}
	s.sent.Store(version)
	if err := s.sock.WriteBuffers(s.isStopped, bufs...); err != nil {
		s.end(&WriteError{err})
		return false
	}
	s.count(ev)
	return true
}

// count counts an event written.
func (s *Sub) count(ev fanout.Event) {
	switch ev.Kind {
	case fanout.EventCommits:
		s.commits += len(ev.Frames)
	case fanout.EventCatchUp:
		s.catchUps++
	case fanout.EventReset:
		s.resets++
	}
}

// end tells the owner why s ended, unless it was stopped.
func (s *Sub) end(err error) {
	if !s.stopped.Load() {
		s.owner.Ended(err)
	}
}

// EncodeError is an event that could not be encoded, as opposed to one
// that could not be written.
type EncodeError struct{ Err error }

func (e *EncodeError) Error() string { return "encode an event: " + e.Err.Error() }
func (e *EncodeError) Unwrap() error { return e.Err }

// encodeEvent returns ev's messages, in parts to be written one after the
// other, and the version they bring the client to. Commits are written
// from their frames' JSON, without copies, so that a page read from the
// store for one client is not encoded into messages it would keep; the
// frames' slice, the subscription's, is cleared.
func encodeEvent(enc Encoder, ev fanout.Event) ([][]byte, uint64, error) {
	switch ev.Kind {
	case fanout.EventCommits:
		heads := make([]byte, 0, 96*len(ev.Frames))
		bufs := make([][]byte, 0, 3*len(ev.Frames))
		for _, f := range ev.Frames {
			start := len(heads)
			var body, tail []byte
			heads, body, tail = enc.Commit(heads, f)
			bufs = append(bufs, heads[start:len(heads):len(heads)], body)
			if len(tail) > 0 {
				bufs = append(bufs, tail)
			}
		}
		version := ev.Frames[len(ev.Frames)-1].Version()
		// The slice is the subscription's, reused by its next call: drop
		// its references, so that a later, shorter batch does not keep
		// these frames alive once the topic has let them go.
		clear(ev.Frames)
		return bufs, version, nil
	case fanout.EventCatchUp:
		bufs, err := enc.CatchUp(ev.CatchUp)
		if err != nil {
			return nil, 0, &EncodeError{err}
		}
		return bufs, ev.CatchUp.Version, nil
	case fanout.EventReset:
		bufs, err := enc.Reset(ev.Reset)
		if err != nil {
			return nil, 0, &EncodeError{err}
		}
		return bufs, ev.Reset.Version, nil
	}
	return nil, 0, &EncodeError{fmt.Errorf("unknown event kind %d", int(ev.Kind))}
}
