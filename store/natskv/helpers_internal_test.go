package natskv

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// openAt opens collection name on s, until the test ends, once its state
// is at version v and, in the shared layout, live on the feed.
func openAt(t *testing.T, s *Store, name string, v uint64) *coll {
	t.Helper()
	c, err := s.coll(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.unuse)
	waitUntil(t, fmt.Sprintf("%s at version %d", name, v), func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.st != nil && c.st.Version == v && (!s.shared || c.onFeedLocked())
	})
	return c
}

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

// unfollowed runs missed while the shared layout's feed hands collection
// name, open as c on s, nothing: the messages stored meanwhile are lost
// to c, as if its follower had missed them. It returns once the feed has
// passed them, with c followed again.
func unfollowed(t *testing.T, s *Store, c *coll, name string, missed func()) {
	t.Helper()
	s.mu.Lock()
	delete(s.colls, name)
	s.mu.Unlock()
	missed()
	last := lastSeq(t, s)
	waitUntil(t, "the feed passed what was missed", func() bool {
		s.feed.mu.Lock()
		defer s.feed.mu.Unlock()
		return s.feed.last >= last
	})
	s.mu.Lock()
	s.colls[name] = c
	s.mu.Unlock()
}
