package boltstore

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/viewsync/viewsync/store"
)

// Sentinel errors of Open and of the store's operations; callers test them
// with errors.Is.
var (
	// ErrDamaged: the file breaks bbolt's or the store's invariants: it
	// was truncated, overwritten in part, or written by something else.
	// Restore it from a backup, or move it aside to start empty.
	ErrDamaged = errors.New("the data file is damaged")
	// ErrLocked: another process has the file open (Open waited
	// Options.LockTimeout for it).
	ErrLocked = errors.New("the data file is locked by another process")
)

// guard runs fn, turning a panic in it, or a memory fault on the mapped
// file, into an error wrapping ErrDamaged: bbolt panics (or faults on a
// page past the end of a truncated file) where a page breaks its
// invariants. bbolt's View and Update roll their transaction back on the
// way out, so the store stays usable for what is not damaged.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	return fn()
}

// unwritableErrnos are the failures of a write that come from the device
// or the system, not from the request: no space, a quota, the file size
// limit, a read-only or failing file system.
var unwritableErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EROFS, syscall.EIO}

// unwritable returns err wrapped as a store.ErrUnavailable that says the
// store cannot write and why, when err is one of unwritableErrnos, or nil.
// bbolt formats some of its errors with %s, so the errno is also looked
// for by its text.
func unwritable(err error) error {
	for _, e := range unwritableErrnos {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return &writeError{errno: e, err: err}
		}
	}
	return nil
}

// writeError is a write that failed for want of space or a working file
// system. Its text names only the cause: the file's path stays in the
// store's log, not in what clients are told.
type writeError struct {
	errno syscall.Errno
	err   error
}

// Error implements error.
func (e *writeError) Error() string { return "the store cannot write: " + e.errno.Error() }

// Unwrap returns the error bbolt returned.
func (e *writeError) Unwrap() error { return e.err }

// Is makes errors.Is(err, store.ErrUnavailable) and errors.Is(err, errno)
// true.
func (e *writeError) Is(target error) bool {
	return target == store.ErrUnavailable || target == e.errno
}
