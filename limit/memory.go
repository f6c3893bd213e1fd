package limit

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// ErrBusy is returned (wrapped) by readers that waited for a Memory budget
// longer than they may: the server is busy; the client should retry later.
var ErrBusy = errors.New("server busy")

// Memory bounds the bytes that reads of history (pages of commits,
// catch-ups, snapshots) hold at once, from the store read until the answer
// is written. A read reserves its bytes before it starts, waiting first
// come first served while others hold the budget, and keeps them until
// its answer is written. It is safe for concurrent use; a nil *Memory
// bounds nothing.
//
// Reads whose size is known only once they are done (a catch-up, a
// snapshot) charge the difference after the fact (Hold.Set): the budget
// may then be overdrawn, and no other read starts until it is paid back.
type Memory struct {
	max int64

	mu   sync.Mutex
	used int64
	// waiters holds the *memoryWaiter of blocked Reserve calls, oldest
	// first.
	waiters list.List
}

type memoryWaiter struct {
	want, least int64
	// granted receives the bytes reserved for the waiter, once.
	granted chan int64
}

// NewMemory returns a budget of max bytes, or nil (no bound) when max <= 0.
func NewMemory(max int64) *Memory {
	if max <= 0 {
		return nil
	}
	return &Memory{max: max}
}

// Max returns the budget in bytes; 0 for a nil Memory.
func (m *Memory) Max() int64 {
	if m == nil {
		return 0
	}
	return m.max
}

// Used returns the bytes held now (more than Max when overdrawn).
func (m *Memory) Used() int64 {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// Reserve waits until at least least bytes of the budget are free and no
// earlier caller is waiting, then reserves as many as are free up to
// want, and returns them as a Hold (Hold.Bytes tells how many). A least
// above the budget counts as the whole budget. It returns ctx.Err() when
// ctx ends first, having reserved nothing. On a nil Memory it reserves
// want at once.
func (m *Memory) Reserve(ctx context.Context, want, least int64) (*Hold, error) {
	if m == nil {
		return &Hold{n: want}, nil
	}
	least = max(0, min(least, m.max))
	want = max(want, least)
	m.mu.Lock()
	if m.waiters.Len() == 0 && m.max-m.used >= least {
		n := min(want, m.max-m.used)
		m.used += n
		m.mu.Unlock()
		return &Hold{m: m, n: n}, nil
	}
	w := &memoryWaiter{want: want, least: least, granted: make(chan int64, 1)}
	e := m.waiters.PushBack(w)
	m.mu.Unlock()

	select {
	case n := <-w.granted:
		return &Hold{m: m, n: n}, nil
	case <-ctx.Done():
		m.mu.Lock()
		select {
		case n := <-w.granted:
			// Granted meanwhile: give it back.
			m.used -= n
		default:
			m.waiters.Remove(e)
		}
		m.grantLocked()
		m.mu.Unlock()
		return nil, ctx.Err()
	}
}

// grantLocked serves waiters, oldest first, while the oldest fits.
func (m *Memory) grantLocked() {
	for e := m.waiters.Front(); e != nil; e = m.waiters.Front() {
		w := e.Value.(*memoryWaiter)
		free := m.max - m.used
		if free < w.least {
			return
		}
		n := min(w.want, free)
		m.used += n
		m.waiters.Remove(e)
		w.granted <- n
	}
}

// add changes the bytes used by delta and wakes waiters that now fit.
func (m *Memory) add(delta int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used += delta
	if delta < 0 {
		m.grantLocked()
	}
}

// Hold is bytes reserved from a Memory budget. Its methods are safe for
// concurrent use and do nothing on a nil Hold.
type Hold struct {
	m *Memory

	mu       sync.Mutex
	n        int64
	released bool
}

// Bytes returns the bytes held.
func (h *Hold) Bytes() int64 {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Set makes the hold n bytes: fewer gives the rest back at once; more
// charges the difference without waiting (the read has happened: its
// memory is taken), which may overdraw the budget. After Release it does
// nothing.
func (h *Hold) Set(n int64) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released || n == h.n {
		return
	}
	delta := max(n, 0) - h.n
	h.n += delta
	if h.m != nil {
		h.m.add(delta)
	}
}

// Release gives the held bytes back. Later calls do nothing.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	if h.m != nil && h.n != 0 {
		h.m.add(-h.n)
	}
	h.n = 0
}
