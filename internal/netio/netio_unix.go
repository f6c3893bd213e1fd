//go:build unix

package netio

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Supported tells whether this platform has TryWritev.
const Supported = true

// maxIovecs bounds one writev (IOV_MAX is 1024); the caller writes the
// rest of a longer batch later.
const maxIovecs = 512

// TryWritev writes bufs to the socket without waiting: it returns how
// many bytes the socket took (0 when its buffer is full) or the error that
// ended the connection.
func TryWritev(raw syscall.RawConn, bufs [][]byte) (int, error) {
	if len(bufs) > maxIovecs {
		bufs = bufs[:maxIovecs]
	}
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			if werr != unix.EINTR {
				return true // done, whatever happened: never wait
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
