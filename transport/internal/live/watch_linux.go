package live

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Watcher notices sockets that have something to read, or whose peer hung
// up, without a goroutine per socket: one epoll instance watches them, and
// one goroutine, running only while there is something to watch, calls
// their callbacks. A watch fires once; watching the socket again re-arms
// it. An event stream, whose client sends nothing after its request, takes
// any readiness as a hang-up; a WebSocket reads what arrived, then watches
// again. The zero value is ready to use.
type Watcher struct {
	mu      sync.Mutex
	epfd    int
	conns   map[uint64]watched
	ids     map[syscall.RawConn]uint64
	next    uint64
	running bool
}

// watched is a watched socket and what to call when it is ready.
type watched struct {
	raw   syscall.RawConn
	ready func()
}

// pollInterval bounds how long the watcher's goroutine blocks in one wait,
// so that it notices when nothing is left to watch and ends.
const pollInterval = 200

// Watch calls ready, once, from a goroutine of its own, when raw has
// something to read or its peer hung up; a watch of a socket whose watch
// fired re-arms it. It reports false when it cannot watch (the caller then
// reads, or notices a hang-up at its next write, by other means). Call
// Unwatch before closing the socket.
func (w *Watcher) Watch(raw syscall.RawConn, ready func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.epfd == 0 {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return false
		}
		w.epfd, w.conns, w.ids = fd, map[uint64]watched{}, map[syscall.RawConn]uint64{}
	}
	w.next++
	id := w.next
	var fd int
	var ok bool
	raw.Control(func(f uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLIN | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLONESHOT}
		ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
		fd = int(f)
		err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
		if err == unix.EEXIST {
			// Registered by a watch that fired (one-shot): re-arm it.
			// Data that arrived meanwhile fires it at once.
			err = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
		}
		ok = err == nil
	})
	if !ok {
		return false
	}
	w.conns[id], w.ids[raw] = watched{raw, ready}, id
	if !w.running {
		w.running = true
		go w.run()
	}
	return true
}

// Unwatch stops watching raw, before its socket is closed.
func (w *Watcher) Unwatch(raw syscall.RawConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.ids[raw]
	if !ok {
		return
	}
	delete(w.ids, raw)
	delete(w.conns, id)
	raw.Control(func(f uintptr) {
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(f), nil)
	})
}

func (w *Watcher) run() {
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
			// Cannot wait: the watched sockets are not told (an event
			// stream notices a hang-up at its next write).
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			w.mu.Lock()
			c, ok := w.conns[id]
			if ok {
				delete(w.conns, id)
				delete(w.ids, c.raw)
			}
			w.mu.Unlock()
			if ok {
				go c.ready()
			}
		}
	}
}
