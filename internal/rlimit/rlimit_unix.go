//go:build unix

package rlimit

import "syscall"

// RaiseOpenFiles raises this process's soft limit of open files to its
// hard limit, so that it can hold as many connections as allowed; a server
// it spawns inherits the raised limit. It returns the limits now in force.
func RaiseOpenFiles() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(rl.Cur), uint64(rl.Max), err
		}
		rl = want
	}
	return uint64(rl.Cur), uint64(rl.Max), nil
}
