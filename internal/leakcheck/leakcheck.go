// Package leakcheck fails a test binary whose tests left goroutines
// running. It is goleak's check given the time a busy machine needs:
// goroutines a test stopped may take a while to return when the machine
// is loaded, longer than goleak's own retries (under half a second).
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Patience is how long Find waits for goroutines to return before it
// reports them.
const Patience = 10 * time.Second

// Main runs m's tests and, if they pass, checks that they left no
// goroutine running (Check); it exits with the result. Call it from
// TestMain.
func Main(m *testing.M, opts ...goleak.Option) {
	os.Exit(Check(m.Run(), opts...))
}

// Check returns code, the exit code of a test run, unless it is 0 and Find
// reports goroutines left running: it then prints them and returns 1. A
// TestMain with work to do after the tests calls it last.
func Check(code int, opts ...goleak.Option) int {
	if code != 0 {
		return code
	}
	if err := Find(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "leakcheck: goroutines left after the tests: %v\n", err)
		return 1
	}
	return 0
}

// Find returns nil once no goroutine but the expected ones runs (see
// goleak.Find), or goleak's report of those still running after
// Patience.
func Find(opts ...goleak.Option) error { return find(Patience, opts...) }

// find is Find waiting up to patience.
func find(patience time.Duration, opts ...goleak.Option) error {
	deadline := time.Now().Add(patience)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
