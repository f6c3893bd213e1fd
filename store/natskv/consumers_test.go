package natskv_test

import (
	"fmt"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestConsumersPastServerDefault: collections open on two stores hold more
// consumers than the server's default bound of consumers per stream
// (1,000; lowered to 8 here), which in the shared layout all belong to
// one stream: every collection is written on one store and read on the
// other.
func TestConsumersPastServerDefault(t *testing.T) {
	ctx := t.Context()
	opts := serverOptions(t.TempDir())
	opts.JetStreamLimits.DefaultMaxConsumers = 8
	srv := startServer(t, opts)
	a := openStore(t, srv.ClientURL(), natskv.Options{IdleAfter: -1})
	b := openStore(t, srv.ClientURL(), natskv.Options{IdleAfter: -1})
	const n = 12
	for i := range n {
		if _, err := a.Apply(ctx, fmt.Sprint("c-", i), []protocol.Op{{Op: protocol.OpPut, ID: "r", Value: []byte("1")}}, nil); err != nil {
			t.Fatalf("Apply c-%d: %v", i, err)
		}
	}
	for i := range n {
		if h, err := b.Head(ctx, fmt.Sprint("c-", i)); err != nil || h.Version != 1 {
			t.Fatalf("Head(c-%d) on the other store = %+v, %v; want version 1", i, h, err)
		}
	}
}
