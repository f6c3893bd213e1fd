package natskv

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// An open collection keeps its retained log in memory by version, time,
// size and stream sequence, and the ops of only the newest commits, up to
// Options.LogCache bytes (colstate.State.Shed): the log of a busy
// collection would otherwise hold up to 1.25 × RetainCommits commits
// whole. Changes reads the ops it shed from the stream, where each
// commit's log entry stays until it is trimmed, with direct gets (which
// any replica answers) of the log entries' subjects (see readShed). Live
// readers never ask: the hub hands them each commit as it comes.

// maxInt stands for "no bound" in Options.LogCache.
const maxInt = math.MaxInt

// maxLogRead is the most messages one direct get of shed log entries
// asks for.
const maxLogRead = 1024

// logRef is a commit of a Changes answer whose ops the state shed: the
// answer's commit i, whose log entry starts at stream sequence seq and
// weighs size (colstate.LogEntry.Size).
type logRef struct {
	i, size int
	seq     uint64
}

// Changes implements store.Store. The ops of commits the state shed
// (Options.LogCache) it reads from the stream.
func (s *Store) Changes(ctx context.Context, collection string, after uint64, page store.Page) (protocol.Changes, error) {
	c, err := s.coll(ctx, collection)
	if err == nil {
		defer c.unuse()
		var ch protocol.Changes
		var shed []logRef
		c.mu.RLock()
		if c.closed {
			err = store.ErrClosed
		} else if ch, err = c.st.Changes(after, page); err == nil {
			shed = c.st.shedRefs(ch.Commits)
		}
		c.mu.RUnlock()
		if err == nil && len(shed) > 0 {
			if err = c.readShed(ctx, ch, shed); err == nil {
				s.logReads.Add(uint64(len(shed)))
			}
		}
		if err == nil {
			return ch, nil
		}
	}
	return protocol.Changes{}, fmt.Errorf("natskv: changes of %s after %d: %w", collection, after, err)
}

// LogReads returns how many commits Changes has read from the stream
// since Open, their ops being no longer in memory (Options.LogCache).
func (s *Store) LogReads() uint64 { return s.logReads.Load() }

// shedRefs lists the commits of commits (read from st) whose ops st
// shed.
func (st *state) shedRefs(commits []protocol.Commit) []logRef {
	var refs []logRef
	for i, cm := range commits {
		if cm.Ops == nil {
			e, _ := st.Entry(cm.Version)
			refs = append(refs, logRef{i: i, seq: e.Seq, size: e.Size})
		}
	}
	return refs
}

// readShed reads from the stream the commits refs of ch, read from the
// state in ch.Epoch, and puts them in place. They are consecutive
// commits, the oldest of ch. When each fits one message it asks for
// their log entries by subject (multi_last, which the server answers
// from its subject index), else for the epoch's log entries next by
// subject from the first one's sequence (the server then counts the
// log's messages left, at a cost that grows with the retained log), in
// batches either way. A commit the stream no longer holds (trimmed, or
// its history dropped, since the state was read) fails it with
// store.ErrCompacted.
func (c *coll) readShed(ctx context.Context, ch protocol.Changes, refs []logRef) error {
	prefix := c.names.prefix(ch.Epoch)
	first, last := ch.Commits[refs[0].i].Version, ch.Commits[refs[len(refs)-1].i].Version
	next, from := first, refs[0].seq
	single := true
	for _, r := range refs {
		single = single && r.size <= c.s.chunkSize()/2
	}
	var asm chunks
	for next <= last {
		var bad error
		req := directRequest{Seq: from, Batch: min(int(last-next+1), maxLogRead), NextFor: prefix + "c.>"}
		if single {
			subjects := make([]string, min(last-next+1, maxMultiLast))
			for j := range subjects {
				subjects[j] = logSubject(prefix, next+uint64(j), 0)
			}
			req = directRequest{Seq: from, MultiLast: subjects}
		}
		rctx, cancel := c.attemptCtx(ctx)
		n, err := c.s.directGet(rctx, c.names.stream, req, func(m feedMsg) bool {
			from = m.seq + 1
			bad = takeChunk(&asm, prefix, m, func(cm protocol.Commit) error {
				switch {
				case cm.Version > next:
					return fmt.Errorf("%w: the stream no longer holds commit %d", store.ErrCompacted, next)
				case cm.Version < next:
					return fmt.Errorf("log entry of commit %d where %d was expected", cm.Version, next)
				}
				ch.Commits[refs[next-first].i] = cm
				next++
				return nil
			})
			return bad == nil && next <= last
		})
		cancel()
		switch {
		case bad != nil:
			return fmt.Errorf("read the log from the stream: %w", bad)
		case err != nil:
			return fmt.Errorf("read the log from the stream: %w", err)
		case n == 0 && next <= last:
			return fmt.Errorf("%w: the stream no longer holds commit %d", store.ErrCompacted, next)
		}
	}
	return nil
}

// takeChunk adds m, a message of a log entry under prefix, to asm, and
// passes each entry it completes to done.
func takeChunk(asm *chunks, prefix string, m feedMsg, done func(protocol.Commit) error) error {
	rest, ok := strings.CutPrefix(m.subj, prefix+"c.")
	if !ok {
		return fmt.Errorf("message %d on %q is not a log entry of %s", m.seq, m.subj, prefix)
	}
	cm, complete, err := assemble(asm, message{kind: 'c', rest: rest, seq: m.seq, hdr: m.hdr.Get, data: m.data})
	if err != nil || !complete {
		return err
	}
	return done(cm)
}
