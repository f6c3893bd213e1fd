package natskv

import (
	"sync"
	"testing"
)

// TestTask: a task runs once per signal while idle, once more for any
// number of signals during a run, never twice at once, and not at all
// once ended.
func TestTask(t *testing.T) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	runs, running, overlaps := 0, false, 0
	entered := make(chan struct{})
	release := make(chan struct{})
	tk := newTask(&wg, func() {
		mu.Lock()
		if running {
			overlaps++
		}
		running = true
		runs++
		mu.Unlock()
		entered <- struct{}{}
		<-release
		mu.Lock()
		running = false
		mu.Unlock()
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return runs
	}

	tk.signal()
	<-entered
	// Signals during the run: one more run, after this one.
	for range 5 {
		tk.signal()
	}
	release <- struct{}{}
	<-entered
	release <- struct{}{}
	wg.Wait()
	if n := count(); n != 2 {
		t.Fatalf("%d runs for a signal and 5 during its run, want 2", n)
	}

	// Idle: a signal starts a run again.
	tk.signal()
	<-entered
	tk.end()
	tk.signal() // during the run, after end: nothing more
	release <- struct{}{}
	wg.Wait()
	tk.signal()
	wg.Wait()
	if n := count(); n != 3 {
		t.Fatalf("%d runs, want 3: none after end", n)
	}
	if overlaps != 0 {
		t.Fatalf("%d runs overlapped another", overlaps)
	}
}
