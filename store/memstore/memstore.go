package memstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/internal/colstate"
)

// Options configure a Store. The zero value (or a nil *Options) means the
// defaults.
type Options struct {
	// Config holds the retention settings and the clock; zero fields mean
	// their defaults (see store.Config.WithDefaults).
	Config store.Config
}

// Store is an in-memory store.Store. It is safe for concurrent use.
//
// Locking: Store.mu guards the collection map and the closed flag; each
// collection has its own mu guarding its state. The two are never held
// together: a method looks the collection up under Store.mu, releases it,
// then locks the collection.
type Store struct {
	cfg store.Config
	// epoch is the epoch of every collection that has never been dropped.
	// It never changes.
	epoch string

	mu     sync.Mutex
	closed bool
	// colls holds every collection written or dropped since New. Reads of
	// other collections do not add to it, so reading arbitrary names
	// costs no memory.
	colls map[string]*collection
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Positions = (*Store)(nil)
	_ store.Keys      = (*Store)(nil)
)

// New returns an empty store with a fresh random epoch. opts may be nil.
func New(opts *Options) *Store {
	var cfg store.Config
	if opts != nil {
		cfg = opts.Config
	}
	return &Store{
		cfg:   cfg.WithDefaults(),
		epoch: newEpoch(""),
		colls: make(map[string]*collection),
	}
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, collection string) (protocol.Head, error) {
	c, err := s.lookup(ctx, collection, false)
	if err != nil {
		return protocol.Head{}, fmt.Errorf("memstore: head of %s: %w", collection, err)
	}
	if c == nil {
		return protocol.Head{Epoch: s.epoch}, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.Head(), nil
}

// Apply implements store.Store. It also checks the ops with
// protocol.NormalizeOp, so that a malformed op fails (wrapping one of the
// protocol's errors) instead of corrupting the collection.
func (s *Store) Apply(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64) (store.Applied, error) {
	return s.ApplyAt(ctx, collection, ops, ifs, nil)
}

// ApplyAt implements store.Positions.
func (s *Store) ApplyAt(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, pos []byte) (store.Applied, error) {
	return s.apply(ctx, collection, ops, ifs, pos, nil)
}

// ApplyKeyed implements store.Keys. Keys are bounded by Config.MaxKeys per
// collection.
func (s *Store) ApplyKeyed(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, k store.NewKey) (store.Applied, error) {
	if err := k.Check(); err != nil {
		return store.Applied{}, fmt.Errorf("memstore: apply to %s: %w", collection, err)
	}
	return s.apply(ctx, collection, ops, ifs, nil, &k)
}

// Key implements store.Keys.
func (s *Store) Key(ctx context.Context, collection, id string) (store.Key, error) {
	c, err := s.lookup(ctx, collection, false)
	if err != nil {
		return store.Key{}, fmt.Errorf("memstore: key of %s: %w", collection, err)
	}
	if c != nil {
		c.mu.RLock()
		k, ok := c.keys.Get(id, s.cfg.Now(), s.cfg.KeyTTL)
		c.mu.RUnlock()
		if ok {
			k.Answer = slices.Clone(k.Answer)
			return k, nil
		}
	}
	return store.Key{}, fmt.Errorf("memstore: key %s of %s: %w", id, collection, store.ErrNotFound)
}

// apply is ApplyAt, recording k with the commit when not nil.
func (s *Store) apply(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, pos []byte, k *store.NewKey) (store.Applied, error) {
	if _, err := s.lookup(ctx, collection, false); err != nil {
		return store.Applied{}, fmt.Errorf("memstore: apply to %s: %w", collection, err)
	}
	if len(ops) == 0 {
		return store.Applied{}, fmt.Errorf("memstore: apply to %s: %w", collection, store.ErrEmptyCommit)
	}
	own := make([]protocol.Op, len(ops))
	for i, op := range ops {
		n, err := protocol.NormalizeOp(op, 0, 0)
		if err != nil {
			return store.Applied{}, fmt.Errorf("memstore: apply to %s: op %d: %w", collection, i, err)
		}
		n.Value = slices.Clone(n.Value)
		own[i] = n
	}
	c, err := s.lookup(ctx, collection, true)
	if err != nil {
		return store.Applied{}, fmt.Errorf("memstore: apply to %s: %w", collection, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k != nil {
		if have, ok := c.keys.Get(k.ID, s.cfg.Now(), s.cfg.KeyTTL); ok {
			have.Answer = slices.Clone(have.Answer)
			return store.Applied{}, fmt.Errorf("memstore: apply to %s: %w", collection, &store.KeyExistsError{Key: have})
		}
	}
	cm, prev, err := c.apply(own, ifs, s.cfg)
	if err != nil {
		return store.Applied{}, fmt.Errorf("memstore: apply to %s: %w", collection, err)
	}
	if pos != nil {
		c.pos = slices.Clone(pos)
	}
	a := store.Applied{Epoch: c.Epoch, Commit: cm.Clone(), Prev: prev}
	if k != nil {
		c.keys.Add(store.Key{ID: k.ID, Fingerprint: k.Fingerprint, Answer: slices.Clone(k.Answer(a)), At: cm.At}, 0)
		c.keys.Sweep(cm.At, s.cfg.KeyTTL, s.cfg.MaxKeys, 8)
	}
	return a, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, collection, id string) (protocol.Record, error) {
	c, err := s.lookup(ctx, collection, false)
	if err != nil {
		return protocol.Record{}, fmt.Errorf("memstore: get %s/%s: %w", collection, id, err)
	}
	if c != nil {
		c.mu.RLock()
		r, ok := c.Get(id)
		c.mu.RUnlock()
		if ok {
			return r, nil
		}
	}
	return protocol.Record{}, fmt.Errorf("memstore: get %s/%s: %w", collection, id, store.ErrNotFound)
}

// Snapshot implements store.Store.
func (s *Store) Snapshot(ctx context.Context, collection string) (protocol.Snapshot, error) {
	c, err := s.lookup(ctx, collection, false)
	if err != nil {
		return protocol.Snapshot{}, fmt.Errorf("memstore: snapshot of %s: %w", collection, err)
	}
	if c == nil {
		return protocol.Snapshot{Epoch: s.epoch, Records: []protocol.Record{}}, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.Snapshot(), nil
}

// Changes implements store.Store.
func (s *Store) Changes(ctx context.Context, collection string, after uint64, page store.Page) (protocol.Changes, error) {
	c, err := s.lookup(ctx, collection, false)
	if err != nil {
		return protocol.Changes{}, fmt.Errorf("memstore: changes of %s after %d: %w", collection, after, err)
	}
	if c == nil {
		return protocol.Changes{Epoch: s.epoch, Commits: []protocol.Commit{}}, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	ch, err := c.Changes(after, page)
	if err != nil {
		return protocol.Changes{}, fmt.Errorf("memstore: changes of %s after %d: %w", collection, after, err)
	}
	return ch, nil
}

// CatchUp implements store.Store.
func (s *Store) CatchUp(ctx context.Context, collection string, after uint64) (protocol.CatchUp, error) {
	c, err := s.lookup(ctx, collection, false)
	if err != nil {
		return protocol.CatchUp{}, fmt.Errorf("memstore: catch-up of %s after %d: %w", collection, after, err)
	}
	if c == nil {
		return protocol.CatchUp{Epoch: s.epoch, Compacted: true, Records: []protocol.Record{}, Deleted: []string{}}, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	cu, err := c.CatchUp(after)
	if err != nil {
		return protocol.CatchUp{}, fmt.Errorf("memstore: catch-up of %s after %d: %w", collection, after, err)
	}
	return cu, nil
}

// Drop implements store.Store.
func (s *Store) Drop(ctx context.Context, collection string) (protocol.Head, error) {
	return s.DropAt(ctx, collection, nil)
}

// DropAt implements store.Positions.
func (s *Store) DropAt(ctx context.Context, collection string, pos []byte) (protocol.Head, error) {
	c, err := s.lookup(ctx, collection, true)
	if err != nil {
		return protocol.Head{}, fmt.Errorf("memstore: drop %s: %w", collection, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.State = colstate.New(newEpoch(c.Epoch))
	c.pos = slices.Clone(pos)
	c.keys.Clear()
	return c.Head(), nil
}

// Position implements store.Positions.
func (s *Store) Position(ctx context.Context, collection string) ([]byte, error) {
	c, err := s.lookup(ctx, collection, false)
	if err != nil {
		return nil, fmt.Errorf("memstore: position of %s: %w", collection, err)
	}
	if c == nil {
		return nil, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.pos), nil
}

// Close implements store.Store: it forgets every collection. Calls after
// it, including another Close, return store.ErrClosed; calls already under
// way when it is called may still complete.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: close: %w", store.ErrClosed)
	}
	s.closed = true
	s.colls = nil
	return nil
}

// lookup checks ctx, the collection name and that the store is open, then
// returns the collection's state. A collection never written nor dropped
// has none: lookup returns nil, unless create is set, in which case it
// makes one at version 0 in the store's epoch.
func (s *Store) lookup(ctx context.Context, name string, create bool) (*collection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := protocol.ValidateCollection(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	c := s.colls[name]
	if c == nil && create {
		c = newCollection(s.epoch)
		s.colls[name] = c
	}
	return c, nil
}

// newEpoch returns a fresh random epoch (22 characters of unpadded
// URL-safe base64, which protocol.ValidateEpoch accepts), different from
// old.
func newEpoch(old string) string {
	for {
		var b [16]byte
		rand.Read(b[:]) // never fails; it crashes the program instead
		if e := base64.RawURLEncoding.EncodeToString(b[:]); e != old {
			return e
		}
	}
}
