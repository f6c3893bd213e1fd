package e2e

import (
	"testing"

	"github.com/viewsync/viewsync/internal/leakcheck"
)

// TestMain fails the run if a test leaves a goroutine behind: the
// in-process server, its hub and store, and every client a test starts
// must be stopped by it.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}
