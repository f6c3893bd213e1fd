package limit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is how many keys a Rate or Conns remembers by default.
const DefaultMaxKeys = 100_000

// Rate allows each key Limit events per second on average, in bursts of up
// to Burst. It is safe for concurrent use. A nil *Rate allows everything.
type Rate struct {
	limit   rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

// RateOptions configures a Rate.
type RateOptions struct {
	// PerSecond is the sustained rate allowed per key; it must be positive.
	PerSecond float64
	// Burst is how many events a key may spend at once. Default: the rate
	// rounded up, at least 1.
	Burst int
	// MaxKeys bounds the keys remembered. Default DefaultMaxKeys. Past it,
	// keys whose bucket is full (idle ones) are forgotten first.
	MaxKeys int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// NewRate returns a Rate configured by o.
func NewRate(o RateOptions) *Rate {
	if o.Burst <= 0 {
		o.Burst = max(1, int(o.PerSecond+0.999))
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Rate{limit: rate.Limit(o.PerSecond), burst: o.Burst, maxKeys: o.MaxKeys, now: o.Now, keys: map[string]*rate.Limiter{}}
}

// Allow spends one event of key's budget. When the budget is spent it
// reports false and how long until one event is allowed again; nothing is
// spent then.
func (r *Rate) Allow(key string) (ok bool, retryAfter time.Duration) {
	if r == nil {
		return true, 0
	}
	r.mu.Lock()
	// The clock is read under the lock, so the buckets see time in order.
	now := r.now()
	l := r.keys[key]
	if l == nil {
		if len(r.keys) >= r.maxKeys {
			r.forget(now)
		}
		l = rate.NewLimiter(r.limit, r.burst)
		r.keys[key] = l
	}
	res := l.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay > 0 {
		res.CancelAt(now)
	}
	r.mu.Unlock()
	return delay == 0, delay
}

// forget drops idle keys (full buckets), and if none is idle, about a
// quarter of all keys. r.mu is held.
func (r *Rate) forget(now time.Time) {
	before := len(r.keys)
	for k, l := range r.keys {
		if l.TokensAt(now) >= float64(r.burst) {
			delete(r.keys, k)
		}
	}
	if len(r.keys) < before {
		return
	}
	drop := max(1, before/4)
	for k := range r.keys {
		if drop == 0 {
			break
		}
		delete(r.keys, k)
		drop--
	}
}

// keyCount returns how many keys are remembered.
func (r *Rate) keyCount() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}
