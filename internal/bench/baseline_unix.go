//go:build unix

package bench

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// maxWritev bounds the buffers of one writev (IOV_MAX is 1024); the rest
// of a longer batch goes to the backlog.
const maxWritev = 512

// tryWritev writes bufs to the socket without waiting: it returns how many
// bytes the socket took (0 when its buffer is full) or the error that ended
// the connection.
func tryWritev(raw syscall.RawConn, bufs [][]byte) (int, error) {
	bufs = bufs[:min(len(bufs), maxWritev)]
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			if werr != unix.EINTR {
				return true // whatever happened: never wait
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return max(n, 0), nil
}
