package live

import (
	"sync"
	"testing"
	"time"
)

// fakeTopic is what the streams of one pump follow: a version that the
// test moves, and the callbacks waiting for its next change.
type fakeTopic struct {
	mu      sync.Mutex
	version int
	waiters []*func()
}

// AfterChange registers f for the next change, like
// fanout.Subscription.AfterChange.
func (t *fakeTopic) AfterChange(f func()) func() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := &f
	t.waiters = append(t.waiters, w)
	return func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		for i, x := range t.waiters {
			if x == w {
				t.waiters = append(t.waiters[:i], t.waiters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// change moves the version and calls the waiting callbacks, as a topic
// does on a commit (with its lock held).
func (t *fakeTopic) change() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.version++
	for _, f := range t.waiters {
		(*f)()
	}
	t.waiters = nil
}

// waiting returns how many change callbacks are registered.
func (t *fakeTopic) waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.waiters)
}

func (t *fakeTopic) current() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.version
}

// fakeStream is a Stream of a fakeTopic; it records when it is swept and
// the version it saw, and each sweep takes cost.
type fakeStream struct {
	member Member
	topic  *fakeTopic
	cost   time.Duration

	mu     sync.Mutex
	sweeps []time.Time
	seen   int
	ticks  int
	swept  chan struct{}
}

// newFakeStream returns a stream of a topic of its own.
func newFakeStream() *fakeStream { return newTopicStream(&fakeTopic{}) }

func newTopicStream(t *fakeTopic) *fakeStream {
	return &fakeStream{topic: t, swept: make(chan struct{}, 100)}
}

func (s *fakeStream) AfterChange(f func()) func() bool { return s.topic.AfterChange(f) }

func (s *fakeStream) change() { s.topic.change() }

func (s *fakeStream) Sweep() func() {
	v := s.topic.current()
	s.mu.Lock()
	s.sweeps = append(s.sweeps, time.Now())
	s.seen = v
	s.mu.Unlock()
	time.Sleep(s.cost)
	select {
	case s.swept <- struct{}{}:
	default:
	}
	return nil
}

func (s *fakeStream) lastSeen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
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

func (s *fakeStream) Tick(time.Time) func() {
	s.mu.Lock()
	s.ticks++
	s.mu.Unlock()
	return nil
}
func (s *fakeStream) Member() *Member { return &s.member }

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
