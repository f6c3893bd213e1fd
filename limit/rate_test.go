package limit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func allow(t *testing.T, r *Rate, key string) {
	t.Helper()
	if ok, after := r.Allow(key); !ok || after != 0 {
		t.Fatalf("Allow(%q) = %v, %v; want true, 0", key, ok, after)
	}
}

func refuse(t *testing.T, r *Rate, key string, wantAfter time.Duration) {
	t.Helper()
	if ok, after := r.Allow(key); ok || after != wantAfter {
		t.Fatalf("Allow(%q) = %v, %v; want false, %v", key, ok, after, wantAfter)
	}
}

func TestRateBurstThenRefuse(t *testing.T) {
	c := newClock()
	r := NewRate(RateOptions{PerSecond: 2, Burst: 3, Now: c.Now})
	for range 3 {
		allow(t, r, "a")
	}
	refuse(t, r, "a", 500*time.Millisecond)
	// A refusal spends nothing: the wait stays the same.
	refuse(t, r, "a", 500*time.Millisecond)
	refuse(t, r, "a", 500*time.Millisecond)
	c.Advance(499 * time.Millisecond)
	refuse(t, r, "a", time.Millisecond)
	c.Advance(time.Millisecond)
	allow(t, r, "a")
	refuse(t, r, "a", 500*time.Millisecond)
	// Refill: a long pause fills the bucket to the burst, not beyond.
	c.Advance(time.Hour)
	for range 3 {
		allow(t, r, "a")
	}
	refuse(t, r, "a", 500*time.Millisecond)
	// Partial refill: 1.25s at 2/s is 2.5 events.
	c.Advance(1250 * time.Millisecond)
	allow(t, r, "a")
	allow(t, r, "a")
	refuse(t, r, "a", 250*time.Millisecond)
}

func TestRateSustained(t *testing.T) {
	c := newClock()
	r := NewRate(RateOptions{PerSecond: 10, Burst: 1, Now: c.Now})
	// Stepping 100ms at 10/s: every event passes, and never two in a step.
	for i := range 100 {
		allow(t, r, "k")
		if ok, _ := r.Allow("k"); ok {
			t.Fatalf("step %d: two events in 100ms at 10/s with burst 1", i)
		}
		c.Advance(100 * time.Millisecond)
	}
}

func TestRateDefaultBurst(t *testing.T) {
	for _, tt := range []struct {
		perSecond float64
		burst     int
	}{
		{0.5, 1},
		{1, 1},
		{2, 2},
		{2.5, 3},
		{10, 10},
		{10.01, 11},
	} {
		c := newClock()
		r := NewRate(RateOptions{PerSecond: tt.perSecond, Now: c.Now})
		n := 0
		for {
			ok, _ := r.Allow("k")
			if !ok {
				break
			}
			n++
			if n > 1000 {
				t.Fatal("no limit")
			}
		}
		if n != tt.burst {
			t.Errorf("PerSecond %v: burst of %d, want %d", tt.perSecond, n, tt.burst)
		}
	}
}

func TestRateKeysIndependent(t *testing.T) {
	c := newClock()
	r := NewRate(RateOptions{PerSecond: 1, Burst: 2, Now: c.Now})
	allow(t, r, "a")
	allow(t, r, "a")
	refuse(t, r, "a", time.Second)
	allow(t, r, "b")
	allow(t, r, "b")
	refuse(t, r, "b", time.Second)
	allow(t, r, "")
	refuse(t, r, "a", time.Second)
	if n := r.keyCount(); n != 3 {
		t.Errorf("keyCount() = %d, want 3", n)
	}
}

func TestRateNil(t *testing.T) {
	var r *Rate
	for range 1000 {
		if ok, after := r.Allow("k"); !ok || after != 0 {
			t.Fatalf("nil Rate: Allow = %v, %v", ok, after)
		}
	}
	if r.keyCount() != 0 {
		t.Errorf("nil Rate: keyCount() = %d", r.keyCount())
	}
}

func TestRateDefaults(t *testing.T) {
	r := NewRate(RateOptions{PerSecond: 0.001})
	if r.maxKeys != DefaultMaxKeys {
		t.Errorf("maxKeys %d, want %d", r.maxKeys, DefaultMaxKeys)
	}
	// The real clock: one event passes, the next waits up to 1000s (the
	// test may be paused, but not for that long).
	allow(t, r, "k")
	if ok, after := r.Allow("k"); ok || after <= 0 || after > 1000*time.Second {
		t.Errorf("Allow = %v, %v; want false and a wait of at most 1000s", ok, after)
	}
}

func TestRateMaxKeys(t *testing.T) {
	c := newClock()
	const maxKeys = 10
	r := NewRate(RateOptions{PerSecond: 1, Burst: 2, MaxKeys: maxKeys, Now: c.Now})
	for i := range 5000 {
		r.Allow(fmt.Sprint("k", i))
		if n := r.keyCount(); n > maxKeys {
			t.Fatalf("after %d keys, keyCount() = %d > MaxKeys %d", i+1, n, maxKeys)
		}
		if i%7 == 0 {
			c.Advance(300 * time.Millisecond) // some keys refill to idle
		}
	}
	if r.keyCount() == 0 {
		t.Error("no key remembered")
	}
	// MaxKeys 1: each new key replaces the last.
	r = NewRate(RateOptions{PerSecond: 1, Burst: 1, MaxKeys: 1, Now: c.Now})
	for i := range 100 {
		allow(t, r, fmt.Sprint("k", i))
		if n := r.keyCount(); n != 1 {
			t.Fatalf("MaxKeys 1: keyCount() = %d", n)
		}
	}
}

func TestRateForgetsIdleKeysFirst(t *testing.T) {
	c := newClock()
	r := NewRate(RateOptions{PerSecond: 1, Burst: 2, MaxKeys: 4, Now: c.Now})
	allow(t, r, "idle1")
	allow(t, r, "idle2")
	c.Advance(10 * time.Second) // idle1 and idle2 are full again: idle
	for _, k := range []string{"busy1", "busy2"} {
		allow(t, r, k)
		allow(t, r, k)
		refuse(t, r, k, time.Second)
	}
	if r.keyCount() != 4 {
		t.Fatalf("keyCount() = %d, want 4", r.keyCount())
	}
	// A fifth key: the idle ones go, the busy ones stay remembered (still
	// refused: a forgotten key would start with a full bucket).
	allow(t, r, "new")
	if n := r.keyCount(); n != 3 {
		t.Errorf("keyCount() = %d, want 3 (busy1, busy2, new)", n)
	}
	refuse(t, r, "busy1", time.Second)
	refuse(t, r, "busy2", time.Second)
	r.mu.Lock()
	_, idle1 := r.keys["idle1"]
	_, idle2 := r.keys["idle2"]
	r.mu.Unlock()
	if idle1 || idle2 {
		t.Errorf("idle keys remembered (idle1 %v, idle2 %v)", idle1, idle2)
	}
}

func TestRateForgetsWhenNoneIdle(t *testing.T) {
	c := newClock()
	const maxKeys = 8
	r := NewRate(RateOptions{PerSecond: 1, Burst: 1, MaxKeys: maxKeys, Now: c.Now})
	for i := range maxKeys {
		allow(t, r, fmt.Sprint("busy", i)) // each bucket now empty
	}
	allow(t, r, "new")
	if n := r.keyCount(); n > maxKeys {
		t.Errorf("keyCount() = %d, want at most %d", n, maxKeys)
	}
	// "new" is remembered and its bucket spent.
	refuse(t, r, "new", time.Second)
}

func TestRateConcurrent(t *testing.T) {
	// A fixed clock: no refill, so exactly Burst events per key pass, however
	// the goroutines interleave.
	c := newClock()
	const keys, burst, workers, tries = 8, 5, 16, 200
	r := NewRate(RateOptions{PerSecond: 1, Burst: burst, Now: c.Now})
	var passed [keys]atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range tries {
				k := (w + i) % keys
				if ok, after := r.Allow(fmt.Sprint("k", k)); ok {
					passed[k].Add(1)
				} else if after <= 0 {
					t.Errorf("refused with retryAfter %v", after)
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		if n := passed[k].Load(); n != burst {
			t.Errorf("key %d: %d events passed, want %d", k, n, burst)
		}
	}

	// Many keys, a moving clock and a small MaxKeys: the bound holds.
	r = NewRate(RateOptions{PerSecond: 100, Burst: 2, MaxKeys: 32, Now: c.Now})
	for w := range workers {
		wg.Go(func() {
			for i := range 500 {
				r.Allow(fmt.Sprint(w, "-", i%97))
				if i%50 == 0 {
					c.Advance(7 * time.Millisecond)
				}
				if n := r.keyCount(); n > 32 {
					t.Errorf("keyCount() = %d > 32", n)
					return
				}
			}
		})
	}
	wg.Wait()
}
