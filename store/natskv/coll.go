package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/viewsync/viewsync/store"
)

// coll is a collection this store has open: its follower and state, its
// committer's queue and the goroutine that re-syncs it with the stream.
//
// Locking: mu guards fol, st, broken, lost, absent, closed, changed,
// awaited, backlog and overflow (and the follower's dseq, asm and onFeed,
// which handle and the feed use under it). wmu is
// held by the committer while it plans and publishes a batch and by Drop,
// so one process never races itself for the stream. rmu serialises
// restarts of the follower.
type coll struct {
	s     *Store
	name  string
	names names

	// ctx ends when the collection is released or the store closes: its
	// goroutines then end.
	ctx    context.Context
	cancel context.CancelFunc
	// users counts the calls using the collection (see Store.coll),
	// lastUse is when the last one ended (Store.now): see idle.go.
	users   atomic.Int32
	lastUse atomic.Int64

	// pmu guards pins, the versions of the states that reads under way
	// (a committer's probes, a scan) were made at: the state sheds no
	// index entry newer than the oldest (see coll.pin).
	pmu  sync.Mutex
	pins map[uint64]int
	// smu guards reading, the snapshot read from the stream under way,
	// which others asking at the same state join (see snapshot).
	smu     sync.Mutex
	reading *sharedRead

	mu     sync.RWMutex
	fol    *follower
	st     *state // the last complete state; nil until first loaded
	broken bool   // the follower saw something it cannot follow
	// lost: the follower's consumer is gone (its server or the stream's
	// leader was lost) while the state is intact; the re-sync task
	// follows on from the state's last batch (see restart).
	lost bool
	// absent: the collection has no stream; its state is the empty one
	// of its first epoch and its follower has no consumer, until it is
	// first written (materialize) or its stream is announced (resync).
	absent bool
	// tipReader: a goroutine reads the stream's new messages for the
	// lost follower (see tip.go).
	tipReader bool
	closed    bool
	// backlog holds, in the shared layout, the messages the feed brought
	// while the follower was not live on it; overflow: more came than
	// it keeps (see coll.fed).
	backlog  []feedMsg
	overflow bool
	// changed is closed and replaced whenever st changes.
	changed chan struct{}
	// ready is closed once st is first set (or opening failed: initErr).
	ready     chan struct{}
	readyOnce sync.Once
	initErr   error

	// awaited maps the ids of the batches the committer has published and
	// not finished with to the stream sequence the follower read each
	// one's last message at (0: not read), so that the committer can tell
	// whether a batch whose acknowledgement it missed was stored. Only the
	// committer adds and removes ids; it does so before publishing and
	// once the group is answered, so no id is forgotten while it matters
	// (however many batches others commit, however often the state is
	// reloaded).
	awaited map[string]uint64

	// dupWindow is the stream's duplicate window (time.Duration), as last
	// read: how long the server remembers a message id.
	dupWindow atomic.Int64
	// direct: the stream answers direct gets, as last read.
	direct atomic.Bool
	// fair is the committer's turn taking with other processes.
	fair fairness

	// term is done when the stream's leader changes (it is then
	// replaced): the committer stops waiting for an acknowledgement the
	// old leader will not send, or for the new leader to be there.
	term atomic.Pointer[term]

	wmu sync.Mutex
	rmu sync.Mutex

	qmu   sync.Mutex
	queue []*request
	// committer commits the queue (commitQueued), resyncer re-syncs the
	// follower (resyncNow): tasks run when asked, so an idle collection
	// has no goroutine.
	committer *task
	resyncer  *task
}

// term is a context that ends when what it was made under (a stream's
// leader, a connection to a server) is no longer.
type term struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newTerm() *term {
	ctx, cancel := context.WithCancel(context.Background())
	return &term{ctx: ctx, cancel: cancel}
}

// next ends the term held by p and puts a new one in its place.
func nextTerm(p *atomic.Pointer[term]) { p.Swap(newTerm()).cancel() }

// leaderElected ends the current leader term: the stream announced a new
// leader.
func (c *coll) leaderElected() { nextTerm(&c.term) }

// attemptCtx returns a context for one attempt at a JetStream request
// about the collection: it ends after the store's AttemptTimeout, or
// sooner when the stream or the cluster elects a leader or the connection
// is lost, for a request made before may then never be answered while one
// made now will be.
func (c *coll) attemptCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.s.attempt)
	stops := []func() bool{
		context.AfterFunc(c.term.Load().ctx, cancel),
		context.AfterFunc(c.s.meta.Load().ctx, cancel),
		context.AfterFunc(c.s.link.Load().ctx, cancel),
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

func newColl(s *Store, name string) *coll {
	c := &coll{
		s:       s,
		name:    name,
		names:   newNames(s.prefix, name, s.shared),
		changed: make(chan struct{}),
		awaited: make(map[string]uint64),
		ready:   make(chan struct{}),
	}
	c.committer = newTask(&s.wg, c.commitQueued)
	c.resyncer = newTask(&s.wg, func() {
		if c.ctx.Err() == nil {
			c.resyncNow()
		}
	})
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.term.Store(newTerm())
	if s.shared {
		c.dupWindow.Store(int64(s.sharedDup))
		c.direct.Store(true)
	}
	return c
}

// streamInfo describes the collection's current stream.
type streamInfo struct {
	epoch   string
	lastSeq uint64
	msgs    uint64
}

// errNoStream: the collection has no stream (it was never written).
var errNoStream = errors.New("no stream")

// info returns the collection's stream, creating it with a fresh epoch
// (not old) when there is none.
func (c *coll) info(ctx context.Context, old string) (streamInfo, error) {
	return c.stream(ctx, func() string { return newEpoch(old) })
}

// find returns the collection's stream, or errNoStream when there is none:
// it creates nothing.
func (c *coll) find(ctx context.Context) (streamInfo, error) {
	return c.stream(ctx, nil)
}

// stream returns the collection's stream. When there is none, it creates
// one in the epoch that epoch returns or, if epoch is nil, returns
// errNoStream.
func (c *coll) stream(ctx context.Context, epoch func() string) (streamInfo, error) {
	if c.s.shared {
		return c.sharedInfo(ctx, epoch != nil)
	}
	js := c.s.js
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return streamInfo{}, fmt.Errorf("stream %s: %w", c.names.stream, ctx.Err())
			case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
			}
		}
		st, err := js.Stream(ctx, c.names.stream)
		if err == nil {
			return c.describe(st.CachedInfo())
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return streamInfo{}, fmt.Errorf("stream %s: %w", c.names.stream, err)
		}
		if epoch == nil {
			return streamInfo{}, fmt.Errorf("stream %s: %w", c.names.stream, errNoStream)
		}
		st, err = js.CreateStream(ctx, c.s.streamConfig(c, epoch()))
		if err == nil {
			// The processes holding the collection as never written
			// follow it from now on (the stream advisories tell them
			// too, where they may subscribe to them).
			if err := c.s.nc.Publish(c.names.createdSubject(), nil); err != nil {
				c.s.log.Debug("natskv: announce a new stream", "collection", c.name, "err", err)
			}
			return c.describe(st.CachedInfo())
		}
		var apiErr *jetstream.APIError
		switch {
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			// Another process created it first: adopt its epoch.
		case errors.As(err, &apiErr) && apiErr.Code >= 500:
			// The server may still be removing a stream of that name
			// deleted a moment ago: try again.
		default:
			return streamInfo{}, fmt.Errorf("create stream %s: %w", c.names.stream, err)
		}
	}
}

// materialize creates the stream of a collection read so far as never
// written (c.absent), in the epoch its empty state has, announces it to the
// other processes and follows it. A stream made meanwhile by another
// process (in another epoch, if it was dropped) is followed instead.
func (c *coll) materialize(ctx context.Context) error {
	c.mu.RLock()
	absent, epoch := c.absent, c.st.Epoch
	c.mu.RUnlock()
	if !absent {
		return nil
	}
	ictx, cancel := c.attemptCtx(ctx)
	defer cancel()
	si, err := c.stream(ictx, func() string { return epoch })
	if err != nil {
		return err
	}
	return c.restart(ictx, si, false)
}

// absentLocked makes the collection's state the empty one of its first
// epoch, without a stream or a consumer, unless a follower was started
// meanwhile. c.mu and c.rmu must be held.
func (c *coll) absentLocked() {
	if c.fol != nil || c.closed {
		return
	}
	epoch := firstEpoch(c.s.prefix, c.name)
	c.nextFollowerLocked(epoch)
	c.absent = true
	c.installLocked(newState(epoch))
}

// replace starts a new history of the collection: it updates the stream
// to a fresh epoch's subjects and metadata, so that batches planned in an
// older epoch find no stream, then purges the messages stored before the
// update. (Deleting and re-creating the stream is no alternative: a stream
// re-created at once under the same name can come back with the deleted
// one's messages.)
func (c *coll) replace(ctx context.Context, old string) error {
	if c.s.shared {
		return c.replaceShared(ctx, old)
	}
	stream, err := c.s.js.Stream(ctx, c.names.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Lost already: the next one made has a fresh epoch.
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.names.stream, err)
	}
	cfg := stream.CachedInfo().Config
	epoch := newEpoch(old)
	cfg.Subjects = []string{c.names.subjects(epoch)}
	cfg.Metadata = maps.Clone(cfg.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = make(map[string]string)
	}
	cfg.Metadata[metaEpoch] = epoch
	info, err := c.s.js.UpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("update stream %s: %w", c.names.stream, err)
	}
	last := info.CachedInfo().State.LastSeq
	if err := stream.Purge(ctx, jetstream.WithPurgeSequence(last+1)); err != nil {
		return fmt.Errorf("purge stream %s: %w", c.names.stream, err)
	}
	// The start of the new history, which every follower reads: those of
	// the old epoch know from it that the stream was replaced, and those
	// that began replaying the new epoch before the purge read it as the
	// end of an (empty) stream. Unless someone wrote in the new epoch
	// already.
	m := nats.NewMsg(startSubject(c.names.prefix(epoch)))
	m.Header.Set(hdrEnd, "1")
	m.Header.Set(hdrExpectedLast, strconv.FormatUint(last, 10))
	if _, err := c.s.js.PublishMsg(ctx, m); err != nil {
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeWrongLastSeq {
			return fmt.Errorf("publish the start of stream %s: %w", c.names.stream, err)
		}
	}
	return nil
}

// describe reads the epoch and last sequence of a stream, and notes its
// duplicate window.
func (c *coll) describe(info *jetstream.StreamInfo) (streamInfo, error) {
	e := info.Config.Metadata[metaEpoch]
	if !validEpoch(e) || info.Config.Metadata[metaFormat] != formatVersion {
		return streamInfo{}, fmt.Errorf("stream %s is not a viewsync collection stream (metadata %v)", c.names.stream, info.Config.Metadata)
	}
	c.dupWindow.Store(int64(info.Config.Duplicates))
	c.direct.Store(info.Config.AllowDirect)
	return streamInfo{epoch: e, lastSeq: info.State.LastSeq, msgs: info.State.Msgs}, nil
}

// open finds the stream and starts following it; the state is installed
// when the follower has caught up. Without a stream, the collection is
// empty at version 0 in its first epoch, and nothing is created until it
// is written.
func (c *coll) open() {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.timeout)
	defer cancel()
	si, err := c.find(ctx)
	switch {
	case errors.Is(err, errNoStream):
		c.rmu.Lock()
		c.mu.Lock()
		c.absentLocked()
		c.mu.Unlock()
		c.rmu.Unlock()
		return
	case err == nil:
		err = c.restart(ctx, si, true)
	}
	if err != nil {
		c.mu.Lock()
		if c.st == nil {
			c.initErr = err
			c.readyOnce.Do(func() { close(c.ready) })
		}
		c.mu.Unlock()
	}
}

// restart follows si's stream afresh, unless the current follower already
// follows that epoch without trouble (and force is unset). A follower
// whose consumer was lost while live (c.lost) resumes after the state's
// last batch, keeping the state, instead of replaying the stream.
func (c *coll) restart(ctx context.Context, si streamInfo, force bool) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return store.ErrClosed
	}
	old, oldLost := c.fol, c.lost
	if !force && !c.lost && !c.absent && old != nil && old.epoch == si.epoch && !c.broken && (old.ld == nil || si.msgs > 0) {
		c.mu.Unlock()
		return nil
	}
	resume := !force && c.canResumeLocked() && c.st.Epoch == si.epoch
	f := c.nextFollowerLocked(si.epoch)
	var start uint64
	switch {
	case resume:
		start = c.st.lastSeq + 1
	case si.msgs == 0 && (c.st == nil || c.st.Epoch != si.epoch || c.st.Version == 0):
		// An empty stream: the empty state is complete, and whatever the
		// consumer delivers from now on is live. (Not when this process
		// has already seen commits of that history: the stream info is
		// then older than they are, and installing an empty state would
		// take readers back; the stream is replayed instead.)
		st := newState(si.epoch)
		st.lastSeq = si.lastSeq
		c.installLocked(st)
	default:
		keep := uint64(math.MaxUint64)
		if c.st != nil && c.st.Epoch == si.epoch {
			keep = c.st.Version // the commits a reload reports
		}
		f.ld, f.target = newLoader(c.s.logCache, keep, c.s.recordCache, c.s.recordIndex), si.lastSeq
	}
	var oldCC jetstream.ConsumeContext
	oldConsumer := ""
	if old != nil {
		oldCC = old.cc
		if !oldLost {
			// A lost consumer is gone, or on a server that is: asking
			// the cluster to delete it would only add to a failover.
			oldConsumer = old.consumer
		}
	}
	c.mu.Unlock()
	if oldCC != nil {
		oldCC.Stop()
	}
	if oldConsumer != "" {
		// Gone now rather than at its inactivity threshold.
		c.s.wg.Go(func() { c.deleteConsumer(oldConsumer) })
	}
	return c.follow(ctx, f, start)
}

// resume follows the stream on from the state's last batch with a new
// consumer, keeping the state, when the follower's consumer was lost while
// it was live. It reports false when that cannot be done (the follower
// is replaying, broke, or was replaced): the caller then re-syncs.
func (c *coll) resume(ctx context.Context) (bool, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.mu.Lock()
	if c.closed || !c.canResumeLocked() {
		c.mu.Unlock()
		return false, nil
	}
	old := c.fol
	f := c.nextFollowerLocked(c.st.Epoch)
	start := c.st.lastSeq + 1
	c.mu.Unlock()
	if old.cc != nil {
		old.cc.Stop()
	}
	return true, c.follow(ctx, f, start)
}

// canResumeLocked reports whether the follower lost its consumer while
// live, with a state it can follow on from. c.mu must be held.
func (c *coll) canResumeLocked() bool {
	f := c.fol
	return c.lost && !c.broken && f != nil && f.ld == nil && c.st != nil && c.st.Epoch == f.epoch
}

// nextFollowerLocked makes a follower of epoch the collection's. c.mu must
// be held.
func (c *coll) nextFollowerLocked(epoch string) *follower {
	f := &follower{epoch: epoch, prefix: c.names.prefix(epoch)}
	if c.fol != nil {
		f.gen = c.fol.gen + 1
	}
	c.fol = f
	c.broken, c.lost, c.absent = false, false, false
	return f
}

// follow starts f on a consumer of the stream delivering from stream
// sequence start (0: from the first message). When that fails, the
// follower is marked lost (live) or broken (replaying), and the re-sync
// goroutine tries again.
func (c *coll) follow(ctx context.Context, f *follower, start uint64) error {
	if c.s.feed != nil {
		// The shared layout: the feed brings the new messages, and the
		// history is read by direct gets.
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case c.closed:
			return fmt.Errorf("follow %s: %w", c.name, store.ErrClosed)
		case c.fol != f:
		case f.ld == nil:
			c.feedLiveLocked(f)
		default:
			c.s.wg.Go(func() { c.replay(f) })
		}
		return nil
	}
	name := "vs-" + nuid.Next()
	c.mu.Lock()
	f.consumer = name
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("follow stream %s: %w", c.names.stream, store.ErrClosed)
	}
	cfg := jetstream.ConsumerConfig{
		Name:              name,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: c.s.timeout,
		Replicas:          1,
		MemoryStorage:     true,
	}
	if start > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	if c.s.shared {
		cfg.FilterSubject = c.names.filter()
	}
	cons, err := c.s.js.CreateOrUpdateConsumer(ctx, c.names.stream, cfg)
	if err == nil {
		var cc jetstream.ConsumeContext
		cc, err = cons.Consume(func(m jetstream.Msg) { c.handle(f, m) },
			jetstream.PullHeartbeat(c.s.beat),
			jetstream.PullExpiry(max(30*time.Second, 4*c.s.beat)),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { c.consumerError(f, err) }))
		if err == nil {
			c.mu.Lock()
			f.cc = cc
			stale, closed := c.fol != f || c.closed, c.closed
			c.mu.Unlock()
			if stale {
				cc.Stop()
			}
			if stale || closed {
				// Replaced, released (or closing) meanwhile: whoever did
				// may have missed the consumer.
				c.deleteConsumer(name)
			}
			return nil
		}
	}
	c.mu.Lock()
	if c.fol == f {
		c.loseLocked()
	}
	c.mu.Unlock()
	return fmt.Errorf("follow stream %s: %w", c.names.stream, err)
}

// consumerError takes an error of f's consumer. The pull consumer goes on
// asking for messages by itself; an error that says its consumer may be
// gone (no heartbeat, deleted, its server shut down, nobody answering)
// makes the follower follow on with a new one.
func (c *coll) consumerError(f *follower, err error) {
	if isClosedErr(err) {
		return // the store is closing
	}
	c.s.log.Debug("natskv: consumer error", "collection", c.name, "err", err)
	c.mu.Lock()
	if c.fol == f {
		c.loseLocked()
	}
	c.mu.Unlock()
}

// loseLocked notes that the follower's consumer is gone: a live one
// resumes from the state, one replaying starts again. c.mu must be held.
func (c *coll) loseLocked() {
	if c.fol.ld != nil {
		c.breakLocked(errors.New("consumer lost while replaying"))
		return
	}
	c.lost = true
	c.readTipLocked(c.fol)
	c.resync()
}

// installLocked makes st the collection's state. A state after the first
// is reported to the watchers: as the commits they missed when it
// continues the same history and the log still holds them, else as a
// replaced history. c.mu must be held.
func (c *coll) installLocked(st *state) {
	prev := c.st
	c.st = st
	switch {
	case prev == nil:
		c.readyOnce.Do(func() { close(c.ready) })
	case !c.s.watch.active():
	case prev.Epoch == st.Epoch && st.Version >= prev.Version && st.LogWhole(prev.Version):
		// A reload of the same history: the watchers get the commits
		// they missed, if any, from the log, whose loader kept them
		// whole, with the values they replaced, which their log entries
		// carry. (For an entry written without them, those are the
		// values of the previous state, a complete one of the same
		// history, as the missed commits before changed them.)
		after := make(map[string]json.RawMessage) // nil: deleted
		base := getter(prev)
		value := func(id string) json.RawMessage {
			if v, ok := after[id]; ok {
				return slices.Clone(v)
			}
			return base(id)
		}
		for _, e := range st.Log()[prev.Version-st.LogFloor():] {
			cm := e.Commit.Clone()
			var pv []json.RawMessage
			if e.Prev != nil {
				pv = cloneValues(e.Prev)
			} else {
				pv = prevValues(cm.Ops, value)
			}
			ev := store.Event{Collection: c.name, Epoch: st.Epoch, Commit: &cm, Version: cm.Version, Prev: pv}
			for _, op := range cm.Ops {
				after[op.ID] = opValue(op)
			}
			c.s.watch.publish(ev)
		}
	default:
		c.s.watch.publish(store.Event{Collection: c.name, Epoch: st.Epoch, Version: st.Version})
	}
	st.Shed(c.s.logCache)
	st.ShedValues(c.s.recordCache)
	st.ShedRecords(c.s.recordIndex, c.pinFloor())
	c.notifyLocked()
}

// batchSeen records that the batch id ended at seq, if the committer
// awaits it. c.mu must be held.
func (c *coll) batchSeen(id string, seq uint64) {
	if _, ok := c.awaited[id]; ok {
		c.awaited[id] = seq
	}
}

// notifyLocked wakes whoever waits for the state to change.
func (c *coll) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// breakLocked stops following: the follower met something it cannot
// apply; the re-sync task reloads the state from the stream.
func (c *coll) breakLocked(err error) {
	if !c.broken {
		c.s.log.Warn("natskv: reloading collection", "collection", c.name, "reason", err)
	}
	c.broken = true
	c.notifyLocked()
	c.resync()
}

// resync asks the re-sync task to compare the follower with the
// stream.
func (c *coll) resync() { c.resyncer.signal() }

// resyncNow compares the follower with the stream: when the stream is
// gone, replaced (another epoch) or the follower broke, it follows the
// stream afresh. When that fails it asks again a little later, unless the
// store closes.
func (c *coll) resyncNow() {
	ctx, cancel := c.attemptCtx(c.ctx)
	defer cancel()
	// A live follower whose consumer was lost follows on from its state
	// at once: asking for the stream's info first would wait for the
	// stream's new leader.
	resumed, err := c.resume(ctx)
	if !resumed {
		c.mu.RLock()
		old := ""
		if c.fol != nil {
			old = c.fol.epoch
		}
		absent := c.absent || c.fol == nil
		c.mu.RUnlock()
		var si streamInfo
		if absent {
			// Never written as far as this process knows (or not open
			// yet): a stream made meanwhile is followed, but none is
			// made here.
			si, err = c.find(ctx)
			if errors.Is(err, errNoStream) {
				return
			}
		} else {
			si, err = c.info(ctx, old)
		}
		c.s.log.Debug("natskv: re-sync", "collection", c.name, "following", old, "stream", si.epoch, "last", si.lastSeq, "err", err)
		if err == nil {
			err = c.restart(ctx, si, false)
		}
	}
	if err != nil && c.ctx.Err() == nil {
		// The follower (lost or broken) is tried again in a moment.
		c.s.log.Debug("natskv: re-sync failed", "collection", c.name, "err", err)
		select {
		case <-c.ctx.Done():
		case <-time.After(jitter(resyncDelay)):
			c.resync()
		}
	}
}

// resyncDelay is how long the re-sync task waits before trying again
// after a failure (give or take a jitter).
const resyncDelay = 100 * time.Millisecond

// jitter returns d give or take a half, at random, so that processes that
// lost the same server do not all ask again at the same moment.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

// current returns the collection's state for a read, waiting for the
// first one. The caller must hold c.mu for reading while using it.
func (c *coll) waitReady(ctx context.Context) error {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return store.ErrClosed
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.initErr != nil {
		return c.initErr
	}
	if c.closed {
		return store.ErrClosed
	}
	return nil
}

// waitFor waits, with c.mu unlocked, until cond (called with c.mu held for
// reading) holds, ctx is done or the store closes.
func (c *coll) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.mu.RLock()
		ok := cond()
		ch := c.changed
		closed := c.closed
		c.mu.RUnlock()
		if ok {
			return nil
		}
		if closed {
			return store.ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return store.ErrClosed
		}
	}
}

// stop stops following: the store is closing, or the collection was
// released. It returns the name of the follower's consumer, if any.
func (c *coll) stop() (consumer string) {
	c.mu.Lock()
	c.closed = true
	f := c.fol
	c.notifyLocked()
	c.mu.Unlock()
	// The committer runs once more: on a store that closes it fails what
	// is queued.
	c.committer.signal()
	c.committer.end()
	c.resyncer.end()
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if f == nil {
		return ""
	}
	if f.cc != nil {
		f.cc.Stop()
	}
	return f.consumer
}
