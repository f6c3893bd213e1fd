package fanout

// FrameSize returns a frame's share of a topic's byte bound, so tests can
// size a buffer in frames.
func FrameSize(f *Frame) int { return f.size() }

// BufferRange returns the versions the collection's buffer holds, first
// through last (first == last+1 when it holds none), and false when the
// collection has no topic or its topic has not read its head yet.
func (b *Broker) BufferRange(collection string) (first, last uint64, ok bool) {
	b.mu.Lock()
	t := b.topics[collection]
	b.mu.Unlock()
	if t == nil {
		return 0, 0, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !t.ready {
		return 0, 0, false
	}
	return t.first, t.last, true
}

// BufferBytes returns what the collection's topic counts against its byte
// bound, and what its frames and its views' frames do take.
func (b *Broker) BufferBytes(collection string) (counted, held int) {
	b.mu.Lock()
	t := b.topics[collection]
	b.mu.Unlock()
	if t == nil {
		return 0, 0
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, f := range t.frames {
		held += f.size()
	}
	for _, v := range t.views {
		for _, f := range v.frames {
			held += f.size()
		}
	}
	return t.bytes, held
}
