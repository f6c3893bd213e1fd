// Package pgtest runs throw-away PostgreSQL clusters (internal/pgcluster)
// for tests: initdb in a temporary folder, wal_level = logical (or as
// asked), no fsync, a free loopback port, sockets in the folder, the
// server run as the postgres user when the tests run as root. A test
// asking for a cluster on a machine without PostgreSQL fails, saying so
// (scripts/test.sh installs it).
//
//	func TestMain(m *testing.M) { code := m.Run(); pgtest.StopAll(); os.Exit(code) }
//
//	c, url := pgtest.NewDB(t) // a database of its own on the shared cluster
package pgtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync/internal/pgcluster"
)

// Password is the superuser's (postgres) password in every cluster.
const Password = pgcluster.Password

// Cluster is a running cluster.
type Cluster = pgcluster.Cluster

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
	dbSeq      atomic.Int64
)

// Shared returns the process's shared cluster (wal_level = logical),
// starting it on first use.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start("wal_level=logical") })
	if sharedErr != nil {
		t.Fatalf("PostgreSQL test cluster: %v", sharedErr)
	}
	return shared
}

// StopAll stops every cluster Start started and not stopped; TestMain
// calls it after the tests.
func StopAll() { pgcluster.StopAll() }

// testSettings make a cluster fast and unsafe: tests never need its data
// after a crash of the machine.
var testSettings = []string{"fsync=off", "full_page_writes=off", "shared_buffers=32MB", "max_connections=100"}

// Start makes and starts a cluster with settings (name=value lines of
// postgresql.conf) after the tests' own (no fsync). Stop it with Stop,
// or StopAll.
func Start(settings ...string) (*Cluster, error) {
	return pgcluster.Start(append(slices.Clone(testSettings), settings...)...)
}

// NewDB makes a database of its own for a test on the shared cluster and
// returns the cluster, the database's name and its superuser URL. The
// test's inactive replication slots are dropped when it ends.
func NewDB(t testing.TB) (c *Cluster, name, url string) {
	t.Helper()
	c = Shared(t)
	name = fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	admin := Connect(t, c.URL("postgres", Password, "postgres"))
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL("postgres", Password, "postgres"))
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active", name)
	})
	return c, name, c.URL("postgres", Password, name)
}

// Connect opens a connection the test closes when it ends.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs SQL statements, failing the test on the first error.
func Exec(t testing.TB, conn *pgx.Conn, sql ...string) {
	t.Helper()
	for _, s := range sql {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
