package live

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// eventually polls cond until it holds; one that does not within a
// generous bound fails the test (it would otherwise hang).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleCollectionsCostNoGoroutine: streams of many collections, once
// swept, wait for their topics' changes without a goroutine of any kind;
// a change is still swept.
func TestIdleCollectionsCostNoGoroutine(t *testing.T) {
	const n = 2000
	base := runtime.NumGoroutine()
	ps := &Pumps{Tick: time.Hour}
	streams := make([]*fakeStream, n)
	for i := range streams {
		streams[i] = newFakeStream()
		if !ps.Add(fmt.Sprint("c", i), streams[i]) {
			t.Fatal("Add refused")
		}
	}
	for _, s := range streams {
		s.waitSwept(t)
	}
	eventually(t, "the workers end", func() bool { return runtime.NumGoroutine() <= base })
	for i, s := range streams {
		if w := s.topic.waiting(); w != 1 {
			t.Fatalf("stream %d: %d change callbacks registered, want 1", i, w)
		}
	}
	streams[n/2].change()
	streams[n/2].waitSwept(t)
	if got := streams[n/2].lastSeen(); got != 1 {
		t.Fatalf("swept at version %d, want 1", got)
	}
	for _, s := range streams {
		ps.Remove(s)
	}
}

// TestEmptyShardLetsGo: once its last stream leaves, a shard cancels its
// wait and its pump is forgotten.
func TestEmptyShardLetsGo(t *testing.T) {
	ps := &Pumps{Tick: time.Hour, Interval: time.Hour}
	s := newFakeStream()
	ps.Add("c", s)
	s.waitSwept(t)
	s.change() // arms the spacing's timer
	if !ps.Remove(s) {
		t.Fatal("Remove: the stream was not in its pump")
	}
	eventually(t, "the change callback is cancelled", func() bool { return s.topic.waiting() == 0 })
	ps.mu.Lock()
	pumps, shards := len(ps.pumps), ps.shards
	ps.mu.Unlock()
	if pumps != 0 || shards != 0 {
		t.Fatalf("%d pumps and %d shards left, want none", pumps, shards)
	}
	if ps.Add("c", s) {
		t.Fatal("a removed stream came back")
	}
}

// TestTicksReachEveryShard: one timer ticks the streams of every pump,
// large ones (several shards) included.
func TestTicksReachEveryShard(t *testing.T) {
	ps := &Pumps{Tick: 5 * time.Millisecond}
	big := &fakeTopic{}
	var streams []*fakeStream
	for i := range ShardSize + 10 {
		s := newTopicStream(big)
		streams = append(streams, s)
		ps.Add("big", s)
		if i < 3 {
			s := newFakeStream()
			streams = append(streams, s)
			ps.Add(fmt.Sprint("small", i), s)
		}
	}
	for i, s := range streams {
		eventually(t, fmt.Sprintf("stream %d ticks twice", i), func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.ticks >= 2
		})
	}
	for _, s := range streams {
		ps.Remove(s)
	}
	eventually(t, "the ticker stops", func() bool {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		return ps.ticking == nil
	})
}

// TestNoChangeMissed: topics change at random while streams come and go,
// over few workers and with spacing; after each burst of changes, every
// stream in a pump is swept at its topic's last version (no change was
// lost between a sweep and the wait for the next one).
func TestNoChangeMissed(t *testing.T) {
	for _, interval := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprint("interval=", interval), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(interval)))
			ps := &Pumps{Tick: time.Hour, Interval: interval, Workers: 2}
			topics := make([]*fakeTopic, 8)
			for i := range topics {
				topics[i] = &fakeTopic{}
			}
			type member struct {
				key string
				s   *fakeStream
			}
			var members []member
			add := func(i int) {
				s := newTopicStream(topics[i])
				if i > 0 {
					s.cost = 50 * time.Microsecond // sweeps long enough to change during
				}
				key := fmt.Sprint("c", i)
				ps.Add(key, s)
				members = append(members, member{key, s})
			}
			for i := range topics {
				n := 1 + rng.IntN(4)
				if i == 0 {
					n = ShardSize + 5 // two shards
				}
				for range n {
					add(i)
				}
			}
			for round := range 100 {
				var wg sync.WaitGroup
				for w := range 3 {
					wg.Go(func() {
						r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
						for range 1 + r.IntN(10) {
							topics[r.IntN(len(topics))].change()
							time.Sleep(time.Duration(r.IntN(100)) * time.Microsecond)
						}
					})
				}
				if round%4 == 0 {
					i := rng.IntN(len(members))
					ps.Remove(members[i].s)
					members = append(members[:i], members[i+1:]...)
					add(rng.IntN(len(topics)))
				}
				wg.Wait()
				for _, m := range members {
					eventually(t, fmt.Sprintf("round %d: a stream of %s sees its topic's last version", round, m.key), func() bool {
						return m.s.lastSeen() == m.s.topic.current()
					})
				}
			}
			for _, m := range members {
				ps.Remove(m.s)
			}
		})
	}
}
