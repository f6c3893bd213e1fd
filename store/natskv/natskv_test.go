package natskv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
	"github.com/viewsync/viewsync/store/storetest"
)

// TestMain runs the package's tests in each layout (stores opened
// without Options.Layout get the layout under test), and fails the run if
// a goroutine (the store's or the in-process servers') outlives its test.
func TestMain(m *testing.M) {
	if serveChild() {
		return
	}
	code := 0
	for _, layout := range testLayouts() {
		natskv.SetLayoutUnderTest(layout)
		if code = m.Run(); code != 0 {
			fmt.Fprintf(os.Stderr, "natskv: tests failed in the %s layout\n", layout)
			break
		}
	}
	os.Exit(leakcheck.Check(code))
}

// testLayouts are the layouts the tests run in: both, or the one
// VIEWSYNC_TEST_NATS_LAYOUT names.
func testLayouts() []string {
	if l := os.Getenv("VIEWSYNC_TEST_NATS_LAYOUT"); l != "" {
		return []string{l}
	}
	return []string{natskv.LayoutStream, natskv.LayoutShared}
}

// serverOptions are the options of an in-process JetStream server keeping
// its data in dir: fsync on every write (a commit is acknowledged only
// once durable) and atomic batches large enough for the hub's commits.
func serverOptions(dir string) *server.Options {
	opts := &server.Options{
		ServerName: "n0",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true,
		NoLog:      true,
		NoSigs:     true,
	}
	opts.JetStreamLimits.MaxBatchSize = testMaxBatch
	return opts
}

// testMaxBatch is the servers' max_batch_size and the stores' MaxBatch.
const testMaxBatch = 2048

// startServer starts an in-process server with opts and shuts it down when
// the test ends.
func startServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return s
}

// openStore opens a store on url and closes it when the test ends, unless
// the test closed it.
func openStore(t testing.TB, url string, opts natskv.Options) *natskv.Store {
	t.Helper()
	opts.URL = url
	if opts.Layout == "" {
		opts.Layout = natskv.LayoutUnderTest()
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = testMaxBatch
	}
	s, err := natskv.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestConformance runs the store conformance suite. Each subtest gets its
// own server; reopening, or opening while open, opens a new Store on the
// same server. Collections are released as soon as they are idle (a few
// milliseconds), so that the suite meets collections released and
// opened again between its calls. Options.LogCache keeps the ops of the
// newest commit or two in memory, so that Changes reads the others from
// the stream; Options.RecordCache keeps the values of the records written
// last, about 100 bytes of them, and Options.RecordIndex the ids and
// versions of 4 records, so that Get, Snapshot, CatchUp and the committer
// read the others from the stream.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		srv := startServer(t, serverOptions(t.TempDir()))
		return storetest.Harness{
			Persistent: true,
			Shared:     true,
			Open: func(cfg store.Config) (store.Store, error) {
				return natskv.Open(context.Background(), natskv.Options{URL: srv.ClientURL(), Layout: natskv.LayoutUnderTest(), Config: cfg, MaxBatch: testMaxBatch, IdleAfter: time.Millisecond, LogCache: 200, RecordCache: 100, RecordIndex: 4})
			},
		}
	})
}
