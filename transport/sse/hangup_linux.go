package sse

import (
	"sync"

	"golang.org/x/sys/unix"
)

// hangupWatcher notices live streams whose client closed the connection,
// without a goroutine per stream: one epoll instance watches their sockets
// for a peer hang-up (a client sends nothing after its request, so any
// readiness means it closed or misbehaves), and one goroutine, running only
// while there is something to watch, ends them.
type hangupWatcher struct {
	mu      sync.Mutex
	epfd    int
	conns   map[uint64]*liveConn
	ids     map[*liveConn]uint64
	next    uint64
	running bool
}

// pollInterval bounds how long the watcher's goroutine blocks in one wait,
// so that it notices when nothing is left to watch and ends.
const pollInterval = 200

// watch starts watching c's socket; it reports false when it cannot (the
// stream then notices a hang-up at its next write).
func (w *hangupWatcher) watch(c *liveConn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.epfd == 0 {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return false
		}
		w.epfd, w.conns, w.ids = fd, map[uint64]*liveConn{}, map[*liveConn]uint64{}
	}
	w.next++
	id := w.next
	var fd int
	var ok bool
	c.raw.Control(func(f uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLIN | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLONESHOT}
		ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
		fd = int(f)
		ok = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev) == nil
	})
	if !ok {
		return false
	}
	w.conns[id], w.ids[c] = c, id
	if !w.running {
		w.running = true
		go w.run()
	}
	return true
}

// unwatch stops watching c, before its socket is closed.
func (w *hangupWatcher) unwatch(c *liveConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.ids[c]
	if !ok {
		return
	}
	delete(w.ids, c)
	delete(w.conns, id)
	c.raw.Control(func(f uintptr) {
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(f), nil)
	})
}

func (w *hangupWatcher) run() {
	events := make([]unix.EpollEvent, 128)
	for {
		w.mu.Lock()
		if len(w.conns) == 0 {
			// Nothing to watch: release the epoll instance; the next
			// watch makes another.
			w.running = false
			unix.Close(w.epfd)
			w.epfd = 0
			w.mu.Unlock()
			return
		}
		epfd := w.epfd
		w.mu.Unlock()
		n, err := unix.EpollWait(epfd, events, pollInterval)
		if err != nil && err != unix.EINTR {
			// Cannot wait: the streams notice hang-ups at their next
			// write instead.
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			w.mu.Lock()
			c := w.conns[id]
			if c != nil {
				delete(w.conns, id)
				delete(w.ids, c)
			}
			w.mu.Unlock()
			if c != nil {
				go c.hangUp()
			}
		}
	}
}
