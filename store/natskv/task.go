package natskv

import "sync"

// task runs a function in a goroutine of its own whenever signalled, one
// run at a time, and once more when signalled during a run, like a
// goroutine serving a channel (see serve) but with no goroutine while
// nothing is asked: an open collection's committer and re-sync are tasks,
// so that thousands of idle collections hold no stacks.
type task struct {
	fn func()
	wg *sync.WaitGroup // counts the runs

	mu      sync.Mutex
	running bool
	again   bool // signalled during the run
	ended   bool // no run starts any more
}

// newTask returns a task running fn, its runs counted in wg.
func newTask(wg *sync.WaitGroup, fn func()) *task { return &task{fn: fn, wg: wg} }

// signal asks for a run: one starts unless one is under way, which then
// runs once more, or the task ended.
func (t *task) signal() {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.ended:
	case t.running:
		t.again = true
	default:
		t.running = true
		t.wg.Go(t.run)
	}
}

// run calls fn until no signal came during the last call.
func (t *task) run() {
	for {
		t.fn()
		t.mu.Lock()
		again := t.again && !t.ended
		t.again, t.running = false, again
		t.mu.Unlock()
		if !again {
			return
		}
	}
}

// end makes later signals start nothing; a run under way finishes.
func (t *task) end() {
	t.mu.Lock()
	t.ended = true
	t.mu.Unlock()
}
