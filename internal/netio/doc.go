// Package netio writes to sockets without waiting: TryWritev hands a batch
// of buffers to a socket in one writev and returns what it took, or 0 when
// its buffer is full, never blocking. The push transports' live path and
// the bench tool's raw baseline both write through it. Supported says
// whether the platform has it.
package netio
