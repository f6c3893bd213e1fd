package viewsync

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// TestTimeRing: whatever the versions put (increasing, with random gaps),
// the ring holds the time of every version it was given among the last
// ones that fit, none it was not given, and the newest always.
func TestTimeRing(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var r timeRing
		put := map[uint64]int64{}
		var last uint64
		for range 3000 {
			last += 1 + uint64(rng.IntN(3))*uint64(rng.IntN(2)) // mostly consecutive, some gaps
			at := rng.Int64()
			r.put(last, at)
			put[last] = at
			if got, ok := r.get(last); !ok || got != at {
				t.Fatalf("seed %d: get(%d) = %d, %v just after put", seed, last, got, ok)
			}
		}
		if len(r.slots) != commitTimesKept {
			t.Fatalf("seed %d: %d slots after 3000 commits, want %d", seed, len(r.slots), commitTimesKept)
		}
		for v := uint64(0); v <= last+10; v++ {
			at, ok := r.get(v)
			want, given := put[v]
			switch {
			case ok && (!given || at != want):
				t.Fatalf("seed %d: get(%d) = %d, but it was %v/%d", seed, v, at, given, want)
			case !ok && given && v+commitTimesKept > last:
				t.Fatalf("seed %d: get(%d) lost, though within the last %d versions (head %d)", seed, v, commitTimesKept, last)
			}
		}
	}
}

// TestTimeRingGrows: consecutive commits are all kept while the ring
// grows, and it grows only as far as the commits need.
func TestTimeRingGrows(t *testing.T) {
	for _, n := range []uint64{1, 3, 4, 5, 17, 1000, 1024, 1025, 5000} {
		var r timeRing
		for v := uint64(1); v <= n; v++ {
			r.put(v, int64(v))
		}
		for v := uint64(1); v <= n; v++ {
			_, ok := r.get(v)
			if want := v+commitTimesKept > n; ok != want {
				t.Fatalf("%d commits: get(%d) = %v, want %v", n, v, ok, want)
			}
		}
		if want := min(commitTimesKept, max(minCommitTimes, 2*int(n))); len(r.slots) > want {
			t.Errorf("%d commits: %d slots, want at most %d", n, len(r.slots), want)
		}
	}
}

// TestVisibilityMemoryPerCollection: the commit times of a collection
// written once cost a few hundred bytes, not a full ring.
func TestVisibilityMemoryPerCollection(t *testing.T) {
	const n = 10_000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%05d", i)
	}
	v := newVisibility()
	now := time.Now()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, name := range names {
		v.committed(name, "e", 1, now, 2*n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc)) / n
	t.Logf("%.0f bytes per collection written once", per)
	if per > 512 {
		t.Errorf("%.0f bytes per collection written once, want at most 512", per)
	}
	runtime.KeepAlive(v)
}
