package natskv

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// In the shared layout a process follows every collection it has open
// with one consumer of the shared stream, the feed, instead of one
// consumer per collection: the servers then keep one consumer and send
// one heartbeat per process, however many collections it has open. The
// feed delivers every collection's messages in stream order; each goes to
// the open collection it belongs to, and is dropped when none is open.
//
// A collection registers with the feed when it opens (it is in
// Store.colls before it reads anything), so every message of it stored
// after that reaches it. While it is not live (loading, re-loading after
// a break, never written) it keeps what the feed brings in a backlog; its
// history it reads with batched direct gets, without a consumer, up to at
// least its newest message when the read began, then it applies the
// backlog's newer messages and goes live. Every message of it is thus in
// the history read or in the backlog.
//
// The feed remembers the stream sequence of the last message it
// delivered. When its consumer is lost (its server went away, messages
// were skipped) it reads the stream's new messages with direct gets,
// which any replica answers, while it makes a new consumer that starts
// just after that sequence, so a lost consumer costs no message and
// pauses nothing for longer than a direct get takes.

// feed is a process's one consumer of the shared stream (see above).
type feed struct {
	s    *Store
	kick chan struct{} // restart

	// mu is held while a message is delivered, so that the consumer and
	// the tip reader deliver one at a time, in order. Lock order: mu,
	// then Store.mu, then coll.mu.
	mu sync.Mutex
	// gen counts the consumers: deliveries of an older one are dropped.
	gen uint64
	// live: the consumer of gen delivers; when false, the tip reader
	// reads and restart makes a new consumer.
	live bool
	tip  bool // the tip reader runs
	cc   jetstream.ConsumeContext
	name string // of the consumer
	// dseq is the consumer sequence of the last message the consumer
	// delivered: each must follow it, else messages were skipped.
	dseq uint64
	// last is the stream sequence of the last message delivered.
	last uint64
	// backlog bounds each collection's backlog (see coll.fed):
	// Options.MaxBacklog.
	backlog int
}

// feedMsg is a message of the shared stream, as the feed delivers it.
type feedMsg struct {
	subj string
	hdr  nats.Header
	data []byte
	seq  uint64
}

// startFeed makes the store's feed, delivering the messages stored after
// stream sequence last, and the goroutine that replaces its consumer when
// lost; backlog is Options.MaxBacklog.
func (s *Store) startFeed(ctx context.Context, last uint64, backlog int) error {
	fd := &feed{s: s, kick: make(chan struct{}, 1), last: last, backlog: backlog}
	if err := fd.follow(ctx); err != nil {
		return err
	}
	s.feed = fd
	s.wg.Go(func() { serve(s.ctx.Done(), fd.kick, fd.restart) })
	return nil
}

// follow makes a consumer that delivers from just after the last message
// delivered, and makes it the feed's.
func (fd *feed) follow(ctx context.Context) error {
	s := fd.s
	fd.mu.Lock()
	start := fd.last + 1
	fd.mu.Unlock()
	name := "vs-feed-" + nuid.Next()
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.prefix, jetstream.ConsumerConfig{
		Name:              name,
		Description:       "viewsync feed",
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		FilterSubject:     sharedSubjects(s.prefix),
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: s.timeout,
		Replicas:          1,
		MemoryStorage:     true,
	})
	if err != nil {
		return err
	}
	fd.mu.Lock()
	fd.gen++
	gen := fd.gen
	fd.live, fd.dseq, fd.name = true, 0, name
	fd.mu.Unlock()
	cc, err := cons.Consume(func(m jetstream.Msg) { fd.consumed(gen, m) },
		jetstream.PullHeartbeat(s.beat),
		jetstream.PullExpiry(max(30*time.Second, 4*s.beat)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { fd.consumerError(gen, err) }))
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if err != nil {
		if fd.gen == gen {
			fd.loseLocked()
		}
		return err
	}
	if fd.gen != gen || s.ctx.Err() != nil {
		// Lost already, or the store closed meanwhile.
		fd.retire(cc, name)
		return nil
	}
	fd.cc = cc
	return nil
}

// restart replaces a lost consumer, trying again a little later when
// that fails, until the store closes.
func (fd *feed) restart() {
	fd.mu.Lock()
	live := fd.live
	fd.mu.Unlock()
	if live {
		return
	}
	s := fd.s
	ctx, cancel := context.WithTimeout(s.ctx, s.attempt)
	defer cancel()
	for _, t := range []*term{s.meta.Load(), s.link.Load()} {
		defer context.AfterFunc(t.ctx, cancel)()
	}
	if err := fd.follow(ctx); err != nil && s.ctx.Err() == nil {
		s.log.Debug("natskv: feed consumer", "err", err)
		sleep(s.ctx, jitter(resyncDelay))
		signal(fd.kick)
	}
}

// consumed takes a message of the consumer of generation gen.
func (fd *feed) consumed(gen uint64, m jetstream.Msg) {
	md, err := m.Metadata()
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if gen != fd.gen || !fd.live {
		return
	}
	if err != nil || md.Sequence.Consumer != fd.dseq+1 {
		fd.s.log.Debug("natskv: feed skipped messages", "after", fd.dseq, "err", err)
		fd.loseLocked()
		return
	}
	fd.dseq = md.Sequence.Consumer
	fd.deliverLocked(feedMsg{subj: m.Subject(), hdr: m.Headers(), data: m.Data(), seq: md.Sequence.Stream})
}

// consumerError takes an error of the consumer of generation gen: one
// that says the consumer may be gone makes the feed follow on with a new
// one.
func (fd *feed) consumerError(gen uint64, err error) {
	if isClosedErr(err) {
		return
	}
	fd.s.log.Debug("natskv: feed consumer error", "err", err)
	fd.mu.Lock()
	if gen == fd.gen {
		fd.loseLocked()
	}
	fd.mu.Unlock()
}

// loseLocked notes that the consumer is lost: the tip reader reads on
// while restart makes a new one. fd.mu must be held.
func (fd *feed) loseLocked() {
	if !fd.live {
		return
	}
	fd.live = false
	fd.gen++
	fd.retire(fd.cc, fd.name)
	fd.cc, fd.name = nil, ""
	if !fd.tip && fd.s.ctx.Err() == nil {
		fd.tip = true
		fd.s.wg.Go(fd.readTip)
	}
	signal(fd.kick)
}

// retire stops a consumer the feed no longer uses and deletes it from
// the server, in the background.
func (fd *feed) retire(cc jetstream.ConsumeContext, name string) {
	s := fd.s
	s.wg.Go(func() {
		if cc != nil {
			cc.Stop()
		}
		if err := s.deleteConsumer(s.prefix, name); err != nil {
			s.log.Debug("natskv: delete a feed consumer", "consumer", name, "err", err)
		}
	})
}

// readTip reads the stream's new messages with direct gets while the feed
// has no consumer.
func (fd *feed) readTip() {
	s := fd.s
	defer func() {
		fd.mu.Lock()
		fd.tip = false
		fd.mu.Unlock()
	}()
	for s.ctx.Err() == nil {
		fd.mu.Lock()
		live, from := fd.live, fd.last+1
		fd.mu.Unlock()
		if live {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.attempt)
		n, err := s.directGet(ctx, s.prefix, directRequest{Seq: from, Batch: tipBatch, NextFor: sharedSubjects(s.prefix)}, func(m feedMsg) bool {
			fd.mu.Lock()
			defer fd.mu.Unlock()
			if fd.live {
				return false
			}
			fd.deliverLocked(m)
			return true
		})
		cancel()
		if err != nil {
			s.log.Debug("natskv: feed direct get", "from", from, "err", err)
		}
		if n == 0 || err != nil {
			sleep(s.ctx, jitter(tipInterval))
		}
	}
}

// deliverLocked hands a message to the open collection it belongs to.
// fd.mu must be held.
func (fd *feed) deliverLocked(m feedMsg) {
	if m.seq <= fd.last {
		return // read by the tip reader already
	}
	fd.last = m.seq
	if c := fd.s.openColl(m.subj); c != nil {
		c.fed(m)
	}
}

// stop stops the feed's consumer: the store is closing.
func (fd *feed) stop() {
	fd.mu.Lock()
	cc := fd.cc
	fd.gen++
	fd.live, fd.cc = false, nil
	fd.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}

// openColl returns the open collection a message of the shared stream
// (PREFIX.ESCAPED.EPOCH.…) belongs to, nil if none.
func (s *Store) openColl(subj string) *coll {
	rest, ok := strings.CutPrefix(subj, s.prefix+".")
	if !ok {
		return nil
	}
	token, _, ok := strings.Cut(rest, ".")
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.colls[unescape(token)]
}

// fed takes a message of the collection from the feed: a live follower
// applies it, else it waits in the backlog (see feedLiveLocked).
func (c *coll) fed(m feedMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if f := c.fol; c.onFeedLocked() {
		if m.seq > c.st.lastSeq {
			msg, ok := f.parse(m.subj, m.hdr, m.data, m.seq)
			c.takeLocked(f, msg, ok, m.subj)
		}
		return
	}
	if c.overflow {
		return
	}
	if len(c.backlog) >= c.s.feed.backlog {
		c.backlog, c.overflow = nil, true
		return
	}
	c.backlog = append(c.backlog, m)
	if c.absent {
		// Written at last, elsewhere.
		c.resync()
	}
}

// onFeedLocked reports whether the collection's follower is live on the
// feed. c.mu must be held.
func (c *coll) onFeedLocked() bool {
	return c.fol != nil && c.fol.onFeed && !c.broken && !c.absent && c.st != nil
}

// feedLiveLocked makes f, which has its state (loaded, or the empty one),
// live on the feed: it applies the backlog's messages newer than the
// state, in order. c.mu must be held and f be the follower.
func (c *coll) feedLiveLocked(f *follower) {
	f.onFeed = true
	if c.overflow {
		c.backlog, c.overflow = nil, false
		c.breakLocked(errBacklog)
		return
	}
	backlog := c.backlog
	c.backlog = nil
	for _, m := range backlog {
		if c.fol != f || !c.onFeedLocked() {
			// Broke: the next load reads what is left.
			return
		}
		if m.seq > c.st.lastSeq {
			msg, ok := f.parse(m.subj, m.hdr, m.data, m.seq)
			c.takeLocked(f, msg, ok, m.subj)
		}
	}
}

// maxReplayBatch bounds the messages one direct get of a load reads. A
// load starts with the tip's batches and takes four times more after
// each full one: a direct get costs a few milliseconds besides its
// messages (a 100,000-record load took 3.3 s in batches of 256, 1.0 s
// growing to 16,384), and most collections fit the first.
const maxReplayBatch = 1 << 14

// errBacklog: more messages came while the collection loaded than its
// backlog keeps.
var errBacklog = errors.New("backlog overflowed while loading")

// replay reads f's history with direct gets, as a consumer of the
// collection would deliver it, until f has loaded (f.ld is nil), broke,
// or is no longer the follower. The load ends at the first batch's end at
// or past f.target.
//
// It asks for the last message of each of the collection's subjects
// (which, one message a subject, are all it holds, in stream order): the
// server finds them in its subject index at once, where reading next by
// subject goes through the stream to its end (tens of milliseconds at a
// few hundred thousand messages). A collection of more subjects than
// such an answer holds is read next by subject, in batches.
func (c *coll) replay(f *follower) {
	from, batch, multi := uint64(1), tipBatch, true
	for c.ctx.Err() == nil {
		c.mu.RLock()
		loading := c.fol == f && f.ld != nil && !c.broken && !c.closed
		c.mu.RUnlock()
		if !loading {
			return
		}
		ctx, cancel := c.attemptCtx(c.ctx)
		req := directRequest{Seq: from, Batch: batch, NextFor: c.names.filter()}
		if multi {
			req = directRequest{Seq: from, MultiLast: []string{c.names.filter()}}
		}
		n, err := c.s.directGet(ctx, c.names.stream, req, func(m feedMsg) bool {
			msg, ok := f.parse(m.subj, m.hdr, m.data, m.seq)
			msg.pending = 1 // unknown: f.target ends the load
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.fol != f || f.ld == nil || c.broken || c.closed {
				return false
			}
			from = m.seq + 1
			c.takeLocked(f, msg, ok, m.subj)
			return true
		})
		if err == nil && n == 0 {
			// The end of what the replica that answered holds, short of
			// f.target: it lags, or the collection was replaced and its
			// older messages purged. Its stream's leader tells which.
			var last *storedMsg
			if last, err = c.lastMsg(ctx); err == nil && (last == nil || last.seq < from) {
				c.mu.Lock()
				if c.fol == f && f.ld != nil {
					c.breakLocked(errors.New("collection replaced while loading"))
				}
				c.mu.Unlock()
				cancel()
				return
			}
		}
		cancel()
		if errors.Is(err, errTooMany) {
			multi = false
			continue
		}
		if !multi && n == batch {
			batch = min(4*batch, maxReplayBatch)
		}
		if err != nil {
			c.s.log.Debug("natskv: load by direct get", "collection", c.name, "from", from, "err", err)
		}
		if n == 0 || err != nil {
			sleep(c.ctx, jitter(tipInterval))
		}
	}
}
