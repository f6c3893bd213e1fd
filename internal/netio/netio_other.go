//go:build !unix

package netio

import (
	"errors"
	"syscall"
)

// Supported tells whether this platform has TryWritev; without it, callers
// write with blocking writes (a push stream has its goroutine).
const Supported = false

// TryWritev fails here: see Supported.
func TryWritev(syscall.RawConn, [][]byte) (int, error) {
	return 0, errors.New("netio: non-blocking writes are not supported here")
}
