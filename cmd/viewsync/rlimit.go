package main

import "github.com/viewsync/viewsync/internal/rlimit"

// raiseOpenFiles raises this process's soft limit of open files to its
// hard limit and returns the limits now in force (internal/rlimit, which
// the bench tool shares).
func raiseOpenFiles() (soft, hard uint64, err error) { return rlimit.RaiseOpenFiles() }
