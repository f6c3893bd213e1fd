package fanout

// signal tells of a topic's or a view's changes: its channel is closed and
// replaced at each change, and the functions registered with AfterChange
// are called, once. Its owner's topic lock guards it.
type signal struct {
	ch    chan struct{}
	funcs []*afterChange
}

// afterChange is one function waiting for a signal.
type afterChange struct{ f func() }

func newSignal() signal { return signal{ch: make(chan struct{})} }

// fire closes the channel, replacing it, and calls the waiting functions.
// The topic lock is held: the functions must not block or call back into
// the broker.
func (s *signal) fire() {
	close(s.ch)
	s.ch = make(chan struct{})
	funcs := s.funcs
	for _, w := range funcs {
		w.f()
	}
	clear(funcs)
	s.funcs = funcs[:0]
}

// remove takes w out of the waiting functions, reporting whether it was
// there.
func (s *signal) remove(w *afterChange) bool {
	for i, x := range s.funcs {
		if x == w {
			last := len(s.funcs) - 1
			s.funcs[i] = s.funcs[last]
			s.funcs[last] = nil
			s.funcs = s.funcs[:last]
			return true
		}
	}
	return false
}
