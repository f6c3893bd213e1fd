package natskv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// An attempt whose acknowledgement was lost is normally found by the
// follower: it reads the batch's last message, whose id the committer
// awaits (coll.committed). Two things can hide it: the follower reloads
// the collection after the batch's last message was purged (its log entry
// trimmed by another process's commits) and so reads a state that holds
// the batch without seeing its id; or the collection is dropped, and the
// follower moves to the new epoch without reading the old one's end. The
// expected last sequence no longer protects the next attempt then: it is
// planned from a state at or past the lost batch. So before planning past
// such an attempt the committer asks the stream (fateOf), and when the
// stream cannot tell either it relies on the server's duplicate detection:
// every attempt of a group carries the group's Nats-Msg-Id, and a stream
// that stored one attempt refuses the others for its duplicate window
// (errDuplicate). Past half that window, or on a connection that could
// hold a publish back while reconnecting, it gives up with
// ErrOutcomeUnknown rather than risk a second commit.

// fate is what the stream tells of an attempt whose outcome is unknown.
type fate int

const (
	// fateUnknown: the stream no longer holds the messages that would
	// tell (purged, or of a dropped history).
	fateUnknown fate = iota
	// fateStored: the stream holds the attempt's batch, at
	// expect+1 … expect+len(msgs).
	fateStored
	// fateNot: another message follows the attempt's expected last
	// sequence: the attempt was not stored, and never will be.
	fateNot
)

// fateOf reads what the stream holds where p's batch would be, had it been
// stored: right after the last sequence it was planned at. The caller
// knows that the stream moved past that sequence (or was dropped).
func (c *coll) fateOf(ctx context.Context, p *plan) (fate, error) {
	if c.s.shared {
		return c.fateShared(ctx, p)
	}
	ctx, cancel := c.attemptCtx(ctx)
	defer cancel()
	stream, err := c.s.js.Stream(ctx, c.names.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fateUnknown, nil
	}
	if err != nil {
		return fateUnknown, fmt.Errorf("stream %s: %w", c.names.stream, err)
	}
	prefix := c.names.prefix(p.epoch)
	// The first message (a record's, which a later write may have
	// replaced) and the last (a log entry's, which trimming may have
	// purged): any message of the epoch there tells.
	for _, seq := range []uint64{p.expect + 1, p.expect + uint64(len(p.msgs))} {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fateUnknown, fmt.Errorf("stream %s: message %d: %w", c.names.stream, seq, err)
		}
		if !strings.HasPrefix(m.Subject, prefix) {
			// Another history's message: a stream deleted and made
			// again numbers its messages afresh.
			continue
		}
		if m.Header.Get(hdrBatchID) == p.id {
			return fateStored, nil
		}
		return fateNot, nil
	}
	return fateUnknown, nil
}

// endSeq is the stream sequence of the last message of p's batch, had it
// been stored: a batch is stored whole, right after the last sequence it
// expects. In the shared layout, where other collections' messages may
// come between, it is a lower bound unless the stream told (p.end).
func (p *plan) endSeq() uint64 {
	if p.end != 0 {
		return p.end
	}
	return p.expect + uint64(len(p.msgs))
}

// unsure returns the attempts of tried that the follower has read past
// without seeing them, whose fate the stream has not told yet. c.mu must
// be held for reading.
func (c *coll) unsure(tried []*plan) []*plan {
	var ps []*plan
	for _, p := range tried {
		if !p.settled && c.awaited[p.id] == 0 && (c.st.Epoch != p.epoch || c.st.lastSeq > p.expect) {
			ps = append(ps, p)
		}
	}
	return ps
}

// guarded reports whether the server's duplicate detection still refuses
// a new attempt should p have been stored: p was published less than half
// the stream's duplicate window ago, and the connection sends at once or
// fails (a publish held back while reconnecting could reach the server
// after the window).
func (c *coll) guarded(p *plan) bool {
	return p.window > 0 && time.Since(p.published) < p.window/2 && c.s.nc.Opts.ReconnectBufSize < 0
}

// settle asks the stream about each unsure attempt before the committer
// plans past it. It returns the attempt stored, if one was (with the
// sequence its batch ended at), and tried less the attempts never stored.
// An attempt the stream cannot tell about stays in tried, settled: the
// server's duplicate detection guards against it from then on, while it
// can (guarded); when it cannot, settle returns ErrOutcomeUnknown.
func (c *coll) settle(ctx context.Context, unsure, tried []*plan) (*plan, uint64, []*plan, error) {
	for _, p := range unsure {
		f, err := c.fateOf(ctx, p)
		if err != nil {
			return nil, 0, tried, err
		}
		c.s.log.Debug("natskv: fate of an unseen attempt", "collection", c.name, "fate", f, "guarded", c.guarded(p))
		switch f {
		case fateStored:
			return p, p.endSeq(), tried, nil
		case fateNot:
			c.forget(p)
			tried = deletePlan(tried, p)
		default:
			if !c.guarded(p) {
				return nil, 0, tried, ErrOutcomeUnknown
			}
			p.settled = true
		}
	}
	return nil, 0, tried, nil
}

// whichStored finds, after the stream refused an attempt as a duplicate,
// the attempt of tried that it stored, and the sequence its batch ended
// at.
func (c *coll) whichStored(ctx context.Context, epoch string, tried []*plan) (*plan, uint64, error) {
	// The follower finds it, unless it is hidden (see above).
	if err := c.catchUp(ctx, epoch); err == nil {
		c.mu.RLock()
		p, seq := c.committed(tried)
		c.mu.RUnlock()
		if p != nil {
			return p, seq, nil
		}
	}
	var maybe []*plan
	for _, p := range tried {
		f, err := c.fateOf(ctx, p)
		switch {
		case err != nil:
			return nil, 0, err
		case f == fateStored:
			return p, p.endSeq(), nil
		case f == fateUnknown:
			maybe = append(maybe, p)
		}
	}
	if len(maybe) == 1 {
		return maybe[0], maybe[0].endSeq(), nil
	}
	return nil, 0, fmt.Errorf("%w: one of %d attempts was stored, the stream no longer tells which", ErrOutcomeUnknown, len(maybe))
}

// deletePlan returns ps without p.
func deletePlan(ps []*plan, p *plan) []*plan {
	out := ps[:0]
	for _, q := range ps {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}
