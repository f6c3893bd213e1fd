package natskv

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/internal/colstate"
)

// follower tails one epoch's stream with a consumer of its own and keeps
// the collection's state. It starts in replay mode, where the stream's
// record, tombstone, horizon and log messages are gathered by a loader;
// once it has read a batch's last message with nothing pending it installs
// the state and goes live, applying each commit from its log entry. A
// follower that resumes a lost one's state starts live.
type follower struct {
	gen    uint64
	epoch  string
	prefix string
	cc     jetstream.ConsumeContext
	// consumer names its consumer, once follow has chosen it (c.mu).
	consumer string
	// ld is the loader while replaying, nil once live.
	ld *loader
	// target is the stream sequence of the collection's last message
	// when the replay began: the replay ends at the first batch's end at
	// or past it, or at one with nothing pending. (The consumer's pending
	// count, in a filtered consumer, may still count messages purged
	// since it was made.)
	target uint64
	// asm assembles the chunks of the log entry being read.
	asm chunks
	// dseq is the consumer sequence of the last message taken: each
	// message must follow it, else messages were missed.
	dseq uint64
	// onFeed: the follower is live on the store's feed (the shared
	// layout; see feed.go).
	onFeed bool
}

// chunks assembles a commit's log entry from its messages c.V.0 … c.V.n-1.
type chunks struct {
	version uint64
	n, next int
	seq     uint64 // of chunk 0
	buf     []byte
}

// add adds one chunk. It returns the commit's JSON when complete, ok false
// while incomplete, and an error when the chunk does not continue the
// entry under way (a gap, after a purge of what was not yet read).
func (a *chunks) add(v uint64, k, n int, seq uint64, data []byte) (js []byte, complete bool, err error) {
	if k == 0 {
		*a = chunks{version: v, n: n, seq: seq, buf: append([]byte(nil), data...), next: 1}
	} else {
		if a.buf == nil || a.version != v || a.next != k || a.n != n {
			*a = chunks{}
			return nil, false, fmt.Errorf("log entry %d: chunk %d of %d without its predecessors: %w", v, k, n, errPartialEntry)
		}
		a.buf = append(a.buf, data...)
		a.next++
	}
	if a.next < a.n {
		return nil, false, nil
	}
	js = a.buf
	*a = chunks{version: v, seq: a.seq}
	return js, true, nil
}

// errPartialEntry: a log entry's chunk came without those before it.
var errPartialEntry = errors.New("part of a log entry")

// assemble adds m, a chunk of a log entry, to asm, and returns the commit
// once the entry is complete (ok false before), with the values its ops
// replaced when the entry has them (see protocol.AppendLogEntry). A chunk
// that does not continue the entry under way fails with errPartialEntry
// (wrapped).
func assemble(asm *chunks, m message) (cm protocol.Commit, prev []json.RawMessage, ok bool, err error) {
	v, k, n, err := logChunk(m)
	if err != nil {
		return cm, nil, false, err
	}
	js, complete, err := asm.add(v, k, n, m.seq, m.data)
	if err != nil || !complete {
		return cm, nil, false, err
	}
	if cm, prev, err = decodeCommit(js); err != nil {
		return cm, nil, false, err
	}
	if cm.Version != v {
		return cm, nil, false, fmt.Errorf("log entry %d holds commit %d", v, cm.Version)
	}
	return cm, prev, true, nil
}

// loader gathers what the stream holds while a follower replays it.
type loader struct {
	// recs are the records read, of which the loader keeps in memory
	// as much as the state it makes will: the values of the newest
	// valueCache bytes of them (Options.RecordCache) and the newest index
	// records (Options.RecordIndex); tombs the tombstones read.
	recs              colstate.Records
	valueCache, index int
	tombs             map[string]colstate.Tomb
	// log holds the log entries read, the ops of only the newest cache
	// bytes of them (Options.LogCache), so that a load holds no more of
	// them than the state it makes; but all those of commits after
	// version keep, which a reload of the same history reports to the
	// watchers (see coll.installLocked).
	log     colstate.Log
	cache   int
	keep    uint64
	horizon uint64
	keys    []seqKey
}

// seqKey is an idempotency key and the stream sequence of its message.
type seqKey struct {
	key store.Key
	seq uint64
}

// keyMessage decodes a key message.
func keyMessage(m message) (store.Key, error) {
	ns, err := strconv.ParseInt(m.hdr(hdrKeyAt), 10, 64)
	if err != nil {
		return store.Key{}, fmt.Errorf("idempotency key %q: time header: %w", m.rest, err)
	}
	return store.Key{ID: m.rest, Fingerprint: m.hdr(hdrKeyFP), Answer: slices.Clone(m.data), At: time.Unix(0, ns).UTC()}, nil
}

// newLoader returns a loader whose log holds the ops of cache bytes of
// commits and those after keep, and whose records hold valueCache bytes of
// values and index records' versions.
func newLoader(cache int, keep uint64, valueCache, index int) *loader {
	return &loader{
		tombs: make(map[string]colstate.Tomb),
		cache: cache, keep: keep, valueCache: valueCache, index: index,
	}
}

// message is what the follower needs of a stream message.
type message struct {
	kind    byte // 'r', 'c' or 'g'
	rest    string
	seq     uint64
	dseq    uint64 // consumer sequence
	pending uint64
	hdr     func(string) string
	data    []byte
	end     bool
}

// parseMessage splits a stream message of the follower's epoch; ok is
// false for a message of another epoch or of an unknown kind.
func (f *follower) parseMessage(m jetstream.Msg) (message, bool, error) {
	md, err := m.Metadata()
	if err != nil {
		return message{}, false, err
	}
	msg, ok := f.parse(m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream)
	msg.dseq, msg.pending = md.Sequence.Consumer, md.NumPending
	return msg, ok, nil
}

// parse splits the stream message seq on subj; ok is false for a message
// of another epoch or of an unknown kind.
func (f *follower) parse(subj string, h nats.Header, data []byte, seq uint64) (message, bool) {
	msg := message{seq: seq}
	if !strings.HasPrefix(subj, f.prefix) || len(subj) < len(f.prefix)+1 {
		return msg, false
	}
	rest := subj[len(f.prefix):]
	msg.kind, msg.hdr, msg.data, msg.end = rest[0], h.Get, data, h.Get(hdrEnd) != ""
	switch {
	case (msg.kind == 'g' || msg.kind == 'e') && len(rest) == 1:
	case (msg.kind == 'r' || msg.kind == 'c' || msg.kind == 'k') && len(rest) > 2 && rest[1] == '.':
		msg.rest = rest[2:]
	default:
		return message{seq: seq}, false
	}
	return msg, true
}

// logChunk parses a log message's subject remainder V.K and its header.
func logChunk(m message) (v uint64, k, n int, err error) {
	vs, ks, ok := strings.Cut(m.rest, ".")
	if !ok {
		return 0, 0, 0, fmt.Errorf("log subject %q", m.rest)
	}
	if v, err = strconv.ParseUint(vs, 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("log subject %q: %w", m.rest, err)
	}
	if k, err = strconv.Atoi(ks); err != nil {
		return 0, 0, 0, fmt.Errorf("log subject %q: %w", m.rest, err)
	}
	if n, err = strconv.Atoi(m.hdr(hdrChunks)); err != nil || n < 1 || k >= n {
		return 0, 0, 0, fmt.Errorf("log entry %d chunk %d: bad chunk count %q", v, k, m.hdr(hdrChunks))
	}
	return v, k, n, nil
}

// decodeCommit parses a log entry, however deep its values nest: one
// written before the value rules bounded their depth may be deeper than
// encoding/json reads.
func decodeCommit(b []byte) (protocol.Commit, []json.RawMessage, error) {
	c, prev, err := protocol.DecodeLogEntry(b)
	if err != nil {
		return c, nil, fmt.Errorf("log entry: %w", err)
	}
	c.At = c.At.UTC()
	if c.Ops == nil {
		c.Ops = []protocol.Op{}
	}
	return c, prev, nil
}

// add takes one message in replay mode.
func (l *loader) add(f *follower, m message) error {
	switch m.kind {
	case 'r':
		id, v, err := parseRecord(m.rest, m.hdr(hdrVersion))
		if err != nil {
			return err
		}
		if del := m.hdr(hdrDeleted); del != "" {
			ns, err := strconv.ParseInt(del, 10, 64)
			if err != nil {
				return fmt.Errorf("tombstone %q: time header: %w", id, err)
			}
			l.recs.Delete(id)
			l.tombs[id] = colstate.Tomb{Version: v, ID: id, At: time.Unix(0, ns).UTC(), Seq: m.seq + 1}
			return nil
		}
		delete(l.tombs, id)
		l.recs.Put(id, v, slices.Clone(m.data))
		l.recs.ShedValues(l.valueCache)
		l.recs.ShedRecords(l.index, math.MaxUint64)
	case 'g':
		h, err := strconv.ParseUint(string(m.data), 10, 64)
		if err != nil {
			return fmt.Errorf("horizon: %w", err)
		}
		l.horizon = max(l.horizon, h)
	case 'k':
		k, err := keyMessage(m)
		if err != nil {
			return err
		}
		l.keys = append(l.keys, seqKey{k, m.seq})
	case 'c':
		c, prev, complete, err := assemble(&f.asm, m)
		if errors.Is(err, errPartialEntry) {
			// A log entry whose start was purged before it was read:
			// older than anything kept, so it is skipped.
			return nil
		}
		if err != nil || !complete {
			return err
		}
		if es := l.log.Entries(); len(es) > 0 && es[len(es)-1].Commit.Version+1 != c.Version {
			// The entries before were purged while being read: the log
			// starts here.
			l.log.Reset()
		}
		e := colstate.LogEntry{Commit: c, Seq: f.asm.seq}
		if c.Version > l.keep {
			// The values a reload reports the commit replaced.
			e.Prev = prev
		}
		l.log.Append(e)
		l.log.Shed(l.cache, l.keep)
	}
	return nil
}

// finish builds the state the loader gathered, read up to and including
// the batch ending at stream sequence lastSeq.
func (l *loader) finish(epoch string, lastSeq uint64, cfg store.Config) (*state, error) {
	retain := cfg.RetainCommits
	st := newState(epoch)
	st.lastSeq = lastSeq
	for _, k := range l.keys {
		st.keys.Add(k.key, k.seq)
	}
	st.sweepKeys(cfg.Now(), cfg.KeyTTL, cfg.MaxKeys, len(l.keys))
	if l.log.Len() == 0 {
		if l.recs.Len() > 0 || len(l.tombs) > 0 {
			return nil, fmt.Errorf("stream holds records but no log entry")
		}
		return st, nil
	}
	if err := st.Restore(l.log, &l.recs, l.tombs); err != nil {
		return nil, err
	}
	st.diskFloor = st.LogFloor()
	st.raiseHorizon(l.horizon)
	st.trimLog(retain)
	return st, nil
}

// handle takes one message of follower f: it is called by the consumer,
// one message at a time, in stream order.
func (c *coll) handle(f *follower, jm jetstream.Msg) {
	m, ok, err := f.parseMessage(jm)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fol != f || c.closed {
		return
	}
	switch {
	case err != nil:
		c.breakLocked(fmt.Errorf("message metadata: %w", err))
		return
	case m.dseq != f.dseq+1:
		// The consumer skipped messages (it was re-created by the
		// server, or a message was lost on the way): follow on with a
		// new one from the state, or replay again.
		c.s.log.Debug("natskv: consumer skipped messages", "collection", c.name, "after", f.dseq, "got", m.dseq)
		c.loseLocked()
		return
	}
	f.dseq = m.dseq
	c.takeLocked(f, m, ok, jm.Subject())
}

// takeLocked takes the next message of f's stream (ok: of f's epoch; the
// message's subject is subj), from its consumer or read directly (see
// tip.go). c.mu must be held, and f be the collection's follower.
func (c *coll) takeLocked(f *follower, m message, ok bool, subj string) {
	if !ok && c.s.shared && f.ld != nil && m.seq < f.target && !strings.HasPrefix(subj, f.prefix) {
		// The shared layout: an older epoch's message not purged yet (a
		// drop purges after it starts the new epoch). Before the
		// collection's last message when the replay began, which was of
		// the follower's epoch, it cannot be of a newer one.
		return
	}
	if !ok {
		// Another epoch's subjects: the stream was replaced under the
		// follower.
		c.breakLocked(fmt.Errorf("message %q is not of epoch %s", subj, f.epoch))
		return
	}
	if m.end {
		c.batchSeen(m.hdr(hdrBatchID), m.seq)
	}
	if f.ld != nil {
		if err := f.ld.add(f, m); err != nil {
			c.breakLocked(err)
			return
		}
		if m.end && (m.pending == 0 || m.seq >= f.target) {
			st, err := f.ld.finish(f.epoch, m.seq, c.s.cfg)
			if err != nil {
				c.breakLocked(err)
				return
			}
			f.ld = nil
			c.installLocked(st)
			if c.s.feed != nil {
				c.feedLiveLocked(f)
			}
		}
		return
	}

	st := c.st
	switch m.kind {
	case 'k':
		k, err := keyMessage(m)
		if err != nil {
			c.breakLocked(err)
			return
		}
		st.keys.Add(k, m.seq)
		st.sweepKeys(c.s.cfg.Now(), c.s.cfg.KeyTTL, c.s.cfg.MaxKeys, keySweep)
	case 'g':
		h, err := strconv.ParseUint(string(m.data), 10, 64)
		if err != nil {
			c.breakLocked(fmt.Errorf("horizon: %w", err))
			return
		}
		st.raiseHorizon(h)
	case 'c':
		cm, prev, complete, err := assemble(&f.asm, m)
		if err != nil {
			c.breakLocked(err)
			return
		}
		if complete {
			if cm.Version <= st.Version {
				// Applied already: a follower resumed mid-batch reads
				// the batch again from its first message.
				break
			}
			if cm.Version != st.Version+1 {
				c.breakLocked(fmt.Errorf("log entry %d follows version %d: commits were missed", cm.Version, st.Version))
				return
			}
			// The watchers get the commit with the values it replaced:
			// those its log entry carries, else (an entry written
			// without them) those of the state before it is applied.
			watched := c.s.watch.active()
			var ev store.Event
			if watched {
				ec := cm.Clone()
				if prev == nil {
					prev = prevValues(cm.Ops, getter(st))
				}
				ev = store.Event{Collection: c.name, Epoch: st.Epoch, Commit: &ec, Version: cm.Version, Prev: prev}
			}
			st.Apply(cm, f.asm.seq)
			st.trimLog(c.s.cfg.RetainCommits)
			st.Shed(c.s.logCache)
			st.ShedValues(c.s.recordCache)
			st.ShedRecords(c.s.recordIndex, c.pinFloor())
			if watched {
				c.s.watch.publish(ev)
			}
		}
	}
	if m.end {
		st.lastSeq = m.seq
		c.notifyLocked()
	}
}
