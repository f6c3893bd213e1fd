package pgsource_test

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync/internal/pgtest"
)

// The tests share one throw-away PostgreSQL cluster (package pgtest),
// started by the first test that needs it and stopped by TestMain; each
// test has a database of its own.

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopAll()
	os.Exit(code)
}

// password is the superuser's password in the test clusters.
const password = pgtest.Password

// newDB makes a database of its own for a test.
func newDB(t testing.TB) (*pgtest.Cluster, string) {
	t.Helper()
	c, _, url := pgtest.NewDB(t)
	return c, url
}

// connect opens a connection the test closes when it ends.
func connect(t testing.TB, url string) *pgx.Conn { return pgtest.Connect(t, url) }

// exec1 runs SQL statements, failing the test on error.
func exec1(t testing.TB, conn *pgx.Conn, sql ...string) { t.Helper(); pgtest.Exec(t, conn, sql...) }
