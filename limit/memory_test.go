package limit

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemoryReserveTakesWhatIsFree(t *testing.T) {
	m := NewMemory(100)
	ctx := t.Context()
	a, err := m.Reserve(ctx, 70, 10)
	if err != nil || a.Bytes() != 70 {
		t.Fatalf("first Reserve(70, 10) = %d, %v; want 70", a.Bytes(), err)
	}
	b, err := m.Reserve(ctx, 70, 10)
	if err != nil || b.Bytes() != 30 {
		t.Fatalf("second Reserve(70, 10) = %d, %v; want the 30 left", b.Bytes(), err)
	}
	if m.Used() != 100 {
		t.Fatalf("Used = %d, want 100", m.Used())
	}
	b.Set(5) // the read was small: give the rest back
	if m.Used() != 75 {
		t.Fatalf("Used after Set(5) = %d, want 75", m.Used())
	}
	a.Release()
	a.Release() // a second release does nothing
	b.Release()
	if m.Used() != 0 {
		t.Fatalf("Used after releases = %d, want 0", m.Used())
	}
}

func TestMemoryWaitsFirstComeFirstServed(t *testing.T) {
	m := NewMemory(100)
	ctx := t.Context()
	full, _ := m.Reserve(ctx, 100, 100)
	order := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := m.Reserve(ctx, 100, 50)
			if err != nil {
				t.Errorf("Reserve %d: %v", i, err)
				return
			}
			order <- i
			h.Release()
		}()
		waitFor(t, func() bool { return waiters(m) == i+1 })
	}
	// A newcomer that would fit queues behind the waiters.
	full.Set(40)
	late := make(chan *Hold, 1)
	go func() {
		h, _ := m.Reserve(ctx, 10, 10)
		late <- h
	}()
	full.Release()
	wg.Wait()
	close(order)
	want := 0
	for i := range order {
		if i != want {
			t.Fatalf("waiter %d served before %d", i, want)
		}
		want++
	}
	(<-late).Release()
	if m.Used() != 0 {
		t.Fatalf("Used = %d at the end, want 0", m.Used())
	}
}

func TestMemoryOverdraftHoldsOthersBack(t *testing.T) {
	m := NewMemory(100)
	ctx := t.Context()
	h, _ := m.Reserve(ctx, 10, 10)
	h.Set(250) // a snapshot turned out larger than its reservation
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := m.Reserve(short, 10, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve while overdrawn = %v, want it to wait until its context ends", err)
	}
	h.Set(95)
	g, err := m.Reserve(ctx, 10, 1)
	if err != nil || g.Bytes() != 5 {
		t.Fatalf("Reserve after paying back = %d, %v; want the 5 free", g.Bytes(), err)
	}
	g.Release()
	h.Release()
	if m.Used() != 0 {
		t.Fatalf("Used = %d, want 0", m.Used())
	}
}

func TestMemoryLeastAboveBudget(t *testing.T) {
	m := NewMemory(100)
	h, err := m.Reserve(t.Context(), 1000, 500)
	if err != nil || h.Bytes() != 100 {
		t.Fatalf("Reserve(1000, 500) on 100 = %d, %v; want the whole budget", h.Bytes(), err)
	}
	h.Release()
}

func TestMemoryNil(t *testing.T) {
	var m *Memory
	h, err := m.Reserve(t.Context(), 64, 1)
	if err != nil || h.Bytes() != 64 {
		t.Fatalf("nil Memory Reserve = %d, %v; want 64", h.Bytes(), err)
	}
	h.Set(1 << 40)
	h.Release()
	var nh *Hold
	nh.Set(1)
	nh.Release()
	if m.Used() != 0 || m.Max() != 0 || NewMemory(0) != nil {
		t.Fatal("a nil Memory bounds nothing and holds nothing")
	}
}

// TestMemoryRandomised runs many concurrent readers that reserve, resize,
// give up and release, and checks the invariants: what is held never
// exceeds the budget plus the overdrafts in progress, every reservation is within
// [least, want], and everything comes back.
func TestMemoryRandomised(t *testing.T) {
	const budget = 1000
	m := NewMemory(budget)
	var held, overdraft atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 300 {
				want := 1 + rng.Int64N(600)
				least := 1 + rng.Int64N(want)
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(2000))*time.Microsecond)
				h, err := m.Reserve(ctx, want, least)
				cancel()
				if err != nil {
					continue
				}
				n := h.Bytes()
				if n < least || n > want {
					t.Errorf("reserved %d, want within [%d, %d]", n, least, want)
				}
				if now := held.Add(n); now > budget+overdraft.Load() {
					t.Errorf("%d bytes held, budget %d", now, budget)
				}
				var extra int64
				if rng.IntN(4) == 0 {
					// A read larger than its reservation charges the rest.
					extra = rng.Int64N(300)
					overdraft.Add(extra)
					held.Add(extra)
					h.Set(n + extra)
				} else {
					// A smaller one gives the rest back.
					held.Add(-(n - n/2))
					h.Set(n / 2)
					n /= 2
				}
				if rng.IntN(3) == 0 {
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				}
				held.Add(-(n + extra))
				overdraft.Add(-extra)
				h.Release()
			}
		}()
	}
	wg.Wait()
	if u := m.Used(); u != 0 {
		t.Fatalf("Used = %d after every hold was released, want 0", u)
	}
	if n := waiters(m); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

func waiters(m *Memory) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waiters.Len()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
