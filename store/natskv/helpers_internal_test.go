package natskv

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// openPair starts a JetStream server in-process for the test and opens two
// stores on it with opts, as two processes sharing it would; both close
// when the test ends, before the server.
func openPair(t *testing.T, opts Options) (s, other *Store) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	if opts.Layout == "" {
		opts.Layout = testLayout
	}
	for _, p := range []**Store{&s, &other} {
		opts.URL = srv.ClientURL()
		st, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		*p = st
	}
	return s, other
}
