package natskv

import (
	"context"
	"fmt"
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

// maxLogRead is the most messages one direct get of shed log entries
// asks for.
const maxLogRead = 1024

// shedSpan is the part of a Changes answer whose ops the state shed: its
// first n commits (the state sheds its oldest), whose log entries start
// at stream sequence seq; single: each fits one message.
type shedSpan struct {
	n      int
	seq    uint64
	single bool
}

// Changes implements store.Store. The ops of commits the state shed
// (Options.LogCache) it reads from the stream.
func (s *Store) Changes(ctx context.Context, collection string, after uint64, page store.Page) (protocol.Changes, error) {
	what := func() string { return fmt.Sprintf("changes of %s after %d", collection, after) }
	return withColl(ctx, s, collection, what, func(c *coll) (protocol.Changes, error) {
		var shed shedSpan
		ch, err := locked(c, func(st *state) (protocol.Changes, error) {
			ch, err := st.Changes(after, page)
			if err == nil {
				shed = st.shedSpan(ch.Commits, s.chunkSize())
			}
			return ch, err
		})
		if err != nil || shed.n == 0 {
			return ch, err
		}
		if err := c.readShed(ctx, ch, shed); err != nil {
			return protocol.Changes{}, err
		}
		s.logReads.Add(uint64(shed.n))
		return ch, nil
	})
}

// LogReads returns how many commits Changes has read from the stream
// since Open, their ops being no longer in memory (Options.LogCache).
func (s *Store) LogReads() uint64 { return s.logReads.Load() }

// shedSpan returns the span of commits, an answer read from st, whose
// ops st shed; chunk is the most bytes of a log entry's message.
func (st *state) shedSpan(commits []protocol.Commit, chunk int) shedSpan {
	sp := shedSpan{single: true}
	for _, cm := range commits {
		if cm.Ops != nil {
			break
		}
		e, _ := st.Entry(cm.Version)
		if sp.n == 0 {
			sp.seq = e.Seq
		}
		sp.single = sp.single && e.Size <= chunk/2
		sp.n++
	}
	return sp
}

// readShed reads from the stream the commits of span sp of ch, read from
// the state in ch.Epoch, and puts them in place. When each fits one
// message it asks for their log entries by subject (multi_last, which the
// server answers from its subject index), else for the epoch's log
// entries next by subject from the first one's sequence (the server then
// counts the log's messages left, at a cost that grows with the retained
// log), in batches either way. A commit the stream no longer holds (trimmed, or
// its history dropped, since the state was read) fails it with
// store.ErrCompacted.
func (c *coll) readShed(ctx context.Context, ch protocol.Changes, sp shedSpan) error {
	prefix := c.names.prefix(ch.Epoch)
	first, last := ch.Commits[0].Version, ch.Commits[sp.n-1].Version
	next, from := first, sp.seq
	single := sp.single
	var asm chunks
	for next <= last {
		var bad error
		switched := false
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
			var cm protocol.Commit
			var complete bool
			switch cm, complete, bad = logCommit(&asm, prefix, m); {
			case bad == nil && !complete && single:
				// An entry of several messages after all (its size
				// guessed from its ops; its prev values are more): the
				// rest is read next by subject from this entry on.
				single, switched, from = false, true, m.seq
				return false
			case bad != nil || !complete:
			case cm.Version > next:
				bad = fmt.Errorf("%w: the stream no longer holds commit %d", store.ErrCompacted, next)
			case cm.Version < next:
				bad = fmt.Errorf("log entry of commit %d where %d was expected", cm.Version, next)
			default:
				ch.Commits[next-first] = cm
				next++
			}
			return bad == nil && next <= last
		})
		cancel()
		switch {
		case bad != nil:
			return fmt.Errorf("read the log from the stream: %w", bad)
		case err != nil:
			return fmt.Errorf("read the log from the stream: %w", err)
		case n == 0 && next <= last && !switched:
			return fmt.Errorf("%w: the stream no longer holds commit %d", store.ErrCompacted, next)
		}
	}
	return nil
}

// logCommit adds m, a message of a log entry under prefix, to asm (see
// assemble), and returns the commit once its entry is complete.
func logCommit(asm *chunks, prefix string, m feedMsg) (cm protocol.Commit, complete bool, err error) {
	rest, ok := strings.CutPrefix(m.subj, prefix+"c.")
	if !ok {
		return cm, false, fmt.Errorf("message %d on %q is not a log entry of %s", m.seq, m.subj, prefix)
	}
	cm, _, complete, err = assemble(asm, message{kind: 'c', rest: rest, seq: m.seq, hdr: m.hdr.Get, data: m.data})
	return cm, complete, err
}
