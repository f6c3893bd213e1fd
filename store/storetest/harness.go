// Package storetest is the conformance suite every store.Store
// implementation must pass: ordering, gap-freedom, atomicity of multi-op
// commits, preconditions, retention, catch-up and reset, reopen after close,
// and the epoch rules.
//
// An implementation's test calls Run with a function that makes a fresh
// Harness for each subtest.
package storetest

import (
	"github.com/viewsync/viewsync/store"
)

// Harness opens the store under test.
type Harness struct {
	// Open opens the store with cfg at a location fixed for this harness:
	// after the previous store is closed, calling Open again reopens the
	// same data (for a persistent store) or starts a new, empty history
	// (for an ephemeral one).
	Open func(cfg store.Config) (store.Store, error)
	// Persistent tells whether data survives Close and Open.
	Persistent bool
	// Shared tells whether Open may also be called while a store it
	// opened is still open, giving another handle on the same data, as
	// another process sharing the store would have (package natskv). The
	// suite then makes commits through one handle and watches them
	// through the other.
	Shared bool
}
