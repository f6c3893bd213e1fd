//go:build !unix

package sse

import (
	"errors"
	"syscall"
)

// liveSupported tells whether this platform has the live path's
// non-blocking writes; without them every stream has its goroutine.
const liveSupported = false

func tryWritev(syscall.RawConn, [][]byte) (int, error) {
	return 0, errors.New("sse: non-blocking writes are not supported here")
}
