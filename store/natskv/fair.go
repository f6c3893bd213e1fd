package natskv

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Fair writers. Processes committing to one collection race for each of
// its stream's sequences: every batch expects the sequence its state was
// read at, and all but the first to reach the leader are refused. The
// process nearest the leader, which learns of each new batch first, would
// win nearly every race and the others starve. So a process whose batch
// is refused says so on the collection's contention subject (core NATS,
// PREFIX.COLLECTION.w, outside every stream), and a process whose last
// batch was stored, hearing of a refusal it has not yet made way for,
// holds its next batch back until the stream moves (the loser's batch, or
// anyone's) or for about two of its own commit times, then plans it again.
// Losers never hold back. A refused process's next batch holds every
// commit queued meanwhile, so taking turns shares the commits out.

// contentionSubject is the collection's contention subject.
func (n names) contentionSubject() string { return n.base + ".w" }

// contentionFilter is the subscription to every collection's contention
// subject of the prefix.
func contentionFilter(prefix string) string { return prefix + ".*.w" }

// fairness is a collection's state of the turn taking. The committer
// (under wmu) uses all but heard, which the contention handler counts.
type fairness struct {
	// heard counts the refusals other processes announced.
	heard atomic.Uint64
	// madeWay is heard when the committer last held back.
	madeWay uint64
	// won: the committer's last batch was stored.
	won bool
	// commitTime is a moving average of the time from publishing a
	// batch to its acknowledgement.
	commitTime time.Duration
}

// holdBounds bound how long a winner holds its next batch back.
const (
	minHold = 2 * time.Millisecond
	maxHold = 100 * time.Millisecond
)

// stored notes that a batch was stored, acknowledged after d.
func (f *fairness) stored(d time.Duration) {
	f.won = true
	if f.commitTime == 0 {
		f.commitTime = d
	} else {
		f.commitTime += (d - f.commitTime) / 8
	}
}

// ackWait is how long the committer waits for a batch's acknowledgement
// before it looks for the batch and tries again: eight of its recent
// commit times, at least minAckWait, at most Options.AttemptTimeout. A
// leader that vanished with the batch, unannounced, costs no more.
func (c *coll) ackWait() time.Duration {
	if c.fair.commitTime == 0 {
		return c.s.attempt
	}
	return min(max(8*c.fair.commitTime, minAckWait), c.s.attempt)
}

// minAckWait is the shortest ackWait.
const minAckWait = 500 * time.Millisecond

// contention counts another process's refusal announced on a collection's
// contention subject; the message is the announcing store's id.
func (s *Store) contention(m *nats.Msg) {
	if string(m.Data) == s.id {
		return
	}
	// PREFIX.ESCAPED.w → collection ESCAPED, unescaped.
	token, ok := strings.CutSuffix(strings.TrimPrefix(m.Subject, s.prefix+"."), ".w")
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.colls[unescape(token)]
	s.mu.Unlock()
	if c != nil {
		c.fair.heard.Add(1)
	}
}

// refused notes that the stream refused p's batch for an old expected
// sequence, and announces it so that the winners make way.
func (c *coll) refused() {
	c.fair.won = false
	if err := c.s.nc.Publish(c.names.contentionSubject(), []byte(c.s.id)); err != nil {
		c.s.log.Debug("natskv: announce contention", "collection", c.name, "err", err)
	}
}

// makeWay holds back a batch planned at the stream's sequence expect when
// this process won the last race and another announced a refusal since it
// last made way: until the stream moves past expect, or about two commit
// times. It reports whether the stream moved (the batch must be planned
// again).
func (c *coll) makeWay(ctx context.Context, epoch string, expect uint64) bool {
	f := &c.fair
	heard := f.heard.Load()
	if !f.won || heard == f.madeWay {
		return false
	}
	f.madeWay = heard
	hold := min(max(2*f.commitTime, minHold), maxHold)
	hctx, cancel := context.WithTimeout(ctx, hold)
	defer cancel()
	err := c.waitFor(hctx, func() bool {
		return c.broken || c.st.Epoch != epoch || c.st.lastSeq != expect
	})
	return err == nil
}
