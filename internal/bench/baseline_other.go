//go:build !unix

package bench

import "syscall"

// tryWritev writes nothing here: every frame goes through the backlog's
// blocking writes.
func tryWritev(raw syscall.RawConn, bufs [][]byte) (int, error) { return 0, nil }
