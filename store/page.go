package store

// DefaultPageBytes is the byte bound of a page of history that the hub,
// its subscriptions and the HTTP API use unless told otherwise.
const DefaultPageBytes = 4 << 20

// Page bounds one read of a change log (Store.Changes). The zero value
// means no bound.
type Page struct {
	// Commits is the most commits the page holds; <= 0: no bound.
	Commits int
	// Bytes bounds the sum of the page's commits' protocol.CommitSize;
	// <= 0: no bound. The first commit after the cursor comes whatever its
	// size, so that a reader always makes progress: a page holds at most
	// max(Bytes, one commit) bytes.
	Bytes int
}

// Takes reports whether a page that holds n commits, of total size
// total, takes one more commit of the given size. Every Store applies the
// page's bounds through it.
func (p Page) Takes(n, total, size int) bool {
	if p.Commits > 0 && n >= p.Commits {
		return false
	}
	return n == 0 || p.Bytes <= 0 || total+size <= p.Bytes
}
