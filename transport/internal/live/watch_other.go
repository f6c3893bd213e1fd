//go:build !linux

package live

import "syscall"

// Watcher does not watch sockets on this platform: Watch reports false,
// and callers read with a goroutine of their own, or notice a hang-up at
// their next write.
type Watcher struct{}

// Watch reports false: sockets are not watched on this platform.
func (*Watcher) Watch(syscall.RawConn, func()) bool { return false }

// Unwatch does nothing.
func (*Watcher) Unwatch(syscall.RawConn) {}
