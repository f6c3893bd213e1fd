// Package boltstore is viewsync's embedded, durable default store.Store:
// every collection, its change log and its deletion tombstones live in one
// bbolt file, written by group commit (one fsync for the commits that
// arrive together).
//
//	st, err := boltstore.Open("data/viewsync.db", nil)
//	if errors.Is(err, boltstore.ErrLocked) { … } // another process has the file
//	defer st.Close()
//
// One process opens a file at a time. Group commit, the on-disk layout,
// retention and caveats: docs/architecture.md.
package boltstore
