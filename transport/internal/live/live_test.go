package live

import (
	"sync"
	"testing"
	"time"
)

// fakeStream is a Stream whose topic changes when the test says so; it
// records when it is swept, and each sweep takes cost.
type fakeStream struct {
	member Member
	cost   time.Duration

	mu      sync.Mutex
	changed chan struct{}
	sweeps  []time.Time
	swept   chan struct{}
}

func newFakeStream() *fakeStream {
	return &fakeStream{changed: make(chan struct{}), swept: make(chan struct{}, 100)}
}

func (s *fakeStream) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// change closes the change channel, as a topic does on a commit.
func (s *fakeStream) change() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *fakeStream) Sweep() func() {
	s.mu.Lock()
	s.sweeps = append(s.sweeps, time.Now())
	s.mu.Unlock()
	time.Sleep(s.cost)
	s.swept <- struct{}{}
	return nil
}

// waitSwept waits for the next sweep; a sweep that does not come within a
// generous bound fails the test (a pump holding changes back without
// cause would otherwise hang it).
func (s *fakeStream) waitSwept(t *testing.T) {
	t.Helper()
	select {
	case <-s.swept:
	case <-time.After(30 * time.Second):
		t.Fatal("no sweep")
	}
}

func (s *fakeStream) Tick(time.Time) func() { return nil }
func (s *fakeStream) Member() *Member       { return &s.member }

// TestInterval: with Pumps.Interval, the sweeps of a shard start at least
// SpacingFactor times a sweep's duration apart, up to the interval,
// however fast its topic changes; quick sweeps, or no interval, hold
// nothing back.
func TestInterval(t *testing.T) {
	cases := []struct {
		name     string
		interval time.Duration
		cost     time.Duration
		// minGap is the least time between two sweeps' starts.
		minGap time.Duration
	}{
		{"no interval", 0, 2 * time.Millisecond, 2 * time.Millisecond},
		{"spaced by the sweeps' cost", time.Hour, 3 * time.Millisecond, SpacingFactor * 3 * time.Millisecond},
		{"spaced up to the interval", 40 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond},
		{"quick sweeps held by nothing", time.Hour, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := &Pumps{Tick: time.Hour, Interval: tc.interval}
			s := newFakeStream()
			s.cost = tc.cost
			if !ps.Add("c", s) {
				t.Fatal("Add refused")
			}
			s.waitSwept(t) // the sweep of a stream added
			const changes = 5
			for range changes {
				s.change()
				s.waitSwept(t)
			}
			if !ps.Remove(s) {
				t.Fatal("Remove: the stream was not in its pump")
			}
			s.mu.Lock()
			sweeps := s.sweeps
			s.mu.Unlock()
			if len(sweeps) != changes+1 {
				t.Fatalf("%d sweeps, want %d", len(sweeps), changes+1)
			}
			for i := 1; i < len(sweeps); i++ {
				if gap := sweeps[i].Sub(sweeps[i-1]); gap < tc.minGap {
					t.Fatalf("sweeps %d and %d %v apart, want at least %v", i-1, i, gap, tc.minGap)
				}
			}
		})
	}
}

// TestIntervalCoalesces: changes that come during the interval are swept
// together, once.
func TestIntervalCoalesces(t *testing.T) {
	ps := &Pumps{Tick: time.Hour, Interval: 200 * time.Millisecond}
	s := newFakeStream()
	s.cost = 20 * time.Millisecond // spacing: the whole interval
	ps.Add("c", s)
	s.waitSwept(t)
	for range 10 {
		s.change()
	}
	s.waitSwept(t)
	// The changes came within microseconds, during the interval the first
	// one started: one sweep takes them all (a change that came after that
	// sweep began would get a sweep of its own). Wait past one more
	// interval to count any sweep that follows.
	time.Sleep(2 * ps.Interval)
	ps.Remove(s)
	s.mu.Lock()
	n := len(s.sweeps) - 1
	s.mu.Unlock()
	if n >= 10 {
		t.Fatalf("%d sweeps for 10 changes during one interval: nothing was coalesced", n)
	}
	t.Logf("10 changes, %d sweeps", n)
}
