package boltstore

import (
	"crypto/rand"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/store"
)

// update runs fn in a write transaction, guarded (see guard).
func (s *Store) update(fn func(*bolt.Tx) error) error {
	return guard(func() error { return s.db.Update(fn) })
}

// viewTx runs fn in a read transaction, guarded (see guard).
func (s *Store) viewTx(fn func(*bolt.Tx) error) error {
	return guard(func() error { return s.db.View(fn) })
}

// health is what Writable reports: whether the last write failed for want
// of space or a working file system, and the probes that find when it
// might no longer.
type health struct {
	// failed holds the *writeError of the last write while it failed
	// for such a cause; nil once a write or a probe succeeds.
	failed atomic.Pointer[writeError]
	// probing is held by the one Writable call that probes.
	probing sync.Mutex
	// probed is when the last probe ran; guarded by probing.
	probed time.Time
}

// Probes of Writable: at most one per probeInterval, each writing
// probeBytes to a file beside the store's, then removing it.
const (
	probeInterval = time.Second
	probeBytes    = 1 << 20
)

// wrote records the outcome of a write transaction.
func (s *Store) wrote(err error) {
	if err == nil {
		s.health.failed.Store(nil)
		return
	}
	var we *writeError
	if errors.As(unwritable(err), &we) {
		s.health.failed.Store(we)
	}
}

// Writable returns nil while the store can write. After a write failed
// for want of space, a quota, the file size limit, or a read-only or
// failing file system, it returns that failure (matching
// store.ErrUnavailable) until a write succeeds again, or until a probe
// does: meanwhile, at most once a second, Writable writes a megabyte to a
// file beside the store's (PATH.probe) and removes it, so that a server
// that reports itself unready, and so gets no writes, becomes ready again
// once space is freed.
func (s *Store) Writable() error {
	h := &s.health
	if h.failed.Load() == nil {
		return nil
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	if h.probing.TryLock() {
		if time.Since(h.probed) >= probeInterval {
			h.probed = time.Now()
			if err := probe(s.db.Path() + ".probe"); err == nil {
				h.failed.Store(nil)
			} else {
				s.log.Debug("boltstore: the store still cannot write", "err", err)
			}
		}
		h.probing.Unlock()
	}
	if we := h.failed.Load(); we != nil {
		return we
	}
	return nil
}

// probe writes probeBytes of random data (which no file system stores
// in less) to a new file at path, syncs it and removes it.
func probe(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	b := make([]byte, probeBytes)
	rand.Read(b)
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
