package colstate

import "github.com/viewsync/viewsync/protocol"

// Log is a run of consecutive commits, oldest first, as a State keeps
// them and a store reading its log back gathers them. A store that keeps
// the commits elsewhere too (LogEntry.Seq) may shed the ops of the oldest
// from memory (Shed). The zero Log is empty.
type Log struct {
	entries []LogEntry
	// shed is how many of the oldest entries have no ops in memory;
	// bodies is the Size of the others.
	shed, bodies int
}

// Append adds e, the commit after the last, setting its Size; the log
// then owns e.Commit.
func (l *Log) Append(e LogEntry) {
	e.Size = protocol.CommitSize(e.Commit)
	l.entries = append(l.entries, e)
	l.bodies += e.Size
}

// Reset empties the log.
func (l *Log) Reset() {
	clear(l.entries)
	*l = Log{entries: l.entries[:0]}
}

// Entries returns the entries, oldest first. They must not be modified.
func (l *Log) Entries() []LogEntry { return l.entries }

// Len returns the number of entries.
func (l *Log) Len() int { return len(l.entries) }

// Drop drops the n oldest entries.
func (l *Log) Drop(n int) {
	for _, e := range l.entries[min(l.shed, n):n] {
		l.bodies -= e.Size
	}
	l.shed = max(0, l.shed-n)
	clear(l.entries[:n])
	l.entries = l.entries[n:]
}

// Shed drops from memory the ops of the oldest entries, those beyond the
// newest keep bytes of them (by LogEntry.Size), and only those of commits
// up to version upTo: their Commit.Ops become nil.
func (l *Log) Shed(keep int, upTo uint64) {
	for l.bodies > keep && l.shed < len(l.entries) && l.entries[l.shed].Commit.Version <= upTo {
		e := &l.entries[l.shed]
		l.bodies -= e.Size
		e.Commit.Ops, e.Prev = nil, nil
		l.shed++
	}
}

// Bytes returns the Size of the entries whose ops are in memory.
func (l *Log) Bytes() int { return l.bodies }

// Whole reports whether the entries from i on all hold their ops.
func (l *Log) Whole(i int) bool { return i >= l.shed }
