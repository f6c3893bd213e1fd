//go:build !unix

package rlimit

import "errors"

// RaiseOpenFiles is not supported here: the limits stay as they are.
func RaiseOpenFiles() (soft, hard uint64, err error) {
	return 0, 0, errors.New("open-files limits are not supported on this system")
}
