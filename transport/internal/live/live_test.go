package live

import (
	"sync"
	"testing"
	"time"
)

// fakeStream is a Stream whose topic changes when the test says so; it
// records when it is swept.
type fakeStream struct {
	member Member

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
	s.swept <- struct{}{}
	return nil
}

func (s *fakeStream) Tick(time.Time) func() { return nil }
func (s *fakeStream) Member() *Member       { return &s.member }

// TestInterval: with Pumps.Interval, sweeps of a shard start at least the
// interval apart however fast its topic changes; without, each change is
// swept.
func TestInterval(t *testing.T) {
	for _, interval := range []time.Duration{0, 40 * time.Millisecond} {
		ps := &Pumps{Tick: time.Hour, Interval: interval}
		s := newFakeStream()
		if !ps.Add("c", s) {
			t.Fatal("Add refused")
		}
		<-s.swept // the sweep of a stream added
		const changes = 5
		for range changes {
			s.change()
			<-s.swept
		}
		if !ps.Remove(s) {
			t.Fatal("Remove: the stream was not in its pump")
		}
		s.mu.Lock()
		sweeps := s.sweeps
		s.mu.Unlock()
		if len(sweeps) != changes+1 {
			t.Fatalf("interval %v: %d sweeps, want %d", interval, len(sweeps), changes+1)
		}
		for i := 1; i < len(sweeps); i++ {
			if gap := sweeps[i].Sub(sweeps[i-1]); gap < interval {
				t.Fatalf("interval %v: sweeps %d and %d %v apart", interval, i-1, i, gap)
			}
		}
	}
}

// TestIntervalCoalesces: changes that come during the interval are swept
// together, once.
func TestIntervalCoalesces(t *testing.T) {
	ps := &Pumps{Tick: time.Hour, Interval: 200 * time.Millisecond}
	s := newFakeStream()
	ps.Add("c", s)
	<-s.swept
	for range 10 {
		s.change()
	}
	<-s.swept
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
