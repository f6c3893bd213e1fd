// Package keyset keeps idempotency keys in memory (store.Keys) for the
// engines that hold their state there, memstore and natskv: a map by id
// with the keys in the order they were added, so that the expired and the
// oldest are swept from the front, a bounded number at a time, with no
// timer or goroutine per key.
package keyset

import (
	"slices"
	"time"

	"github.com/viewsync/viewsync/store"
)

// Set is a set of keys. Its zero value is empty and ready. It is not safe
// for concurrent use.
type Set struct {
	m map[string]*entry
	// q holds the entries in the order they were added; those removed
	// since (replaced, swept) are marked gone and skipped.
	q []*entry
}

type entry struct {
	key  store.Key
	seq  uint64
	gone bool
}

// Get returns the key id when the set holds it and it is live at now
// (younger than ttl).
func (s *Set) Get(id string, now time.Time, ttl time.Duration) (store.Key, bool) {
	e := s.m[id]
	if e == nil || Expired(e.key, now, ttl) {
		return store.Key{}, false
	}
	return e.key, true
}

// Expired reports whether k is past ttl at now.
func Expired(k store.Key, now time.Time, ttl time.Duration) bool {
	return !now.Before(k.At.Add(ttl))
}

// Add adds k (which the set owns from now on), replacing a key of the same
// id; seq is the caller's position of it (natskv: the stream sequence of
// its message), reported by Sweep.
func (s *Set) Add(k store.Key, seq uint64) {
	if s.m == nil {
		s.m = make(map[string]*entry)
	}
	if old := s.m[k.ID]; old != nil {
		old.gone = true
	}
	e := &entry{key: k, seq: seq}
	s.m[k.ID] = e
	s.q = append(s.q, e)
}

// Len returns how many keys the set holds, expired ones not yet swept
// included.
func (s *Set) Len() int { return len(s.m) }

// Sweep removes, oldest first, the keys expired at now and those past max,
// at most budget of them, and returns the highest seq of the keys removed
// (0: none). Keys are expected in the order of their At, as commits make
// them, so that the expired ones are at the front.
func (s *Set) Sweep(now time.Time, ttl time.Duration, max, budget int) (top uint64) {
	i := 0
	for ; i < len(s.q) && budget > 0; i++ {
		e := s.q[i]
		if e.gone {
			continue
		}
		if len(s.m) <= max && !Expired(e.key, now, ttl) {
			break
		}
		delete(s.m, e.key.ID)
		e.gone = true
		top = e.seq
		budget--
	}
	for i < len(s.q) && s.q[i].gone {
		i++
	}
	if i > 0 {
		clear(s.q[:i])
		s.q = s.q[i:]
		if cap(s.q) > 64 && len(s.q) < cap(s.q)/4 {
			s.q = slices.Clip(slices.Clone(s.q))
		}
	}
	return top
}

// Clear removes every key.
func (s *Set) Clear() {
	s.m = nil
	s.q = nil
}
