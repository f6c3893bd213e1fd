package cluster

import (
	"testing"

	"github.com/viewsync/viewsync/internal/leakcheck"
)

// TestMain fails the run if a test leaves a goroutine behind: the NATS
// servers, the viewsync nodes (store, hub, transports, listener) and every
// client a test starts must be stopped by it.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}
