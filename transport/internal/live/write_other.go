//go:build !unix

package live

import (
	"errors"
	"syscall"
)

// Supported tells whether this platform has the live path's non-blocking
// writes; without them every stream has its goroutine.
const Supported = false

func TryWritev(syscall.RawConn, [][]byte) (int, error) {
	return 0, errors.New("live: non-blocking writes are not supported here")
}
