//go:build !linux

package live

import "syscall"

// Hangups is a no-op here: a connection whose peer went away is noticed
// at its next write.
type Hangups struct{}

// Watch reports false: hang-ups are not watched on this platform.
func (*Hangups) Watch(syscall.RawConn, func()) bool { return false }

// Unwatch does nothing.
func (*Hangups) Unwatch(syscall.RawConn) {}
