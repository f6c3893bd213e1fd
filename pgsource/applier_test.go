package pgsource_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// burst runs, as fast as PostgreSQL takes them, transactions each of
// which depends on the one before: a row inserted with a TOASTed column,
// updated without touching it (the stream sends it unchanged: the source
// takes it from the record the insert made), deleted (the source deletes
// only records it has) — and now and then a TRUNCATE with an insert.
// Received in a burst, they are queued behind one another before the first
// is applied.
func burst(t *testing.T, url string, from, n int) {
	t.Helper()
	conn := connect(t, url)
	var sql strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&sql, "BEGIN; INSERT INTO bl VALUES (%d, 0, repeat(md5('%d'), 100)); COMMIT;", i, i)
		fmt.Fprintf(&sql, "BEGIN; UPDATE bl SET small = small + 1 WHERE id = %d; COMMIT;", i)
		if i%3 == 0 {
			fmt.Fprintf(&sql, "BEGIN; DELETE FROM bl WHERE id = %d; COMMIT;", i)
		}
		if i%97 == 0 {
			fmt.Fprintf(&sql, "BEGIN; TRUNCATE bl; INSERT INTO bl VALUES (%d, 7, repeat('t', 3000)); COMMIT;", -i)
			fmt.Fprintf(&sql, "BEGIN; UPDATE bl SET small = 8 WHERE id = %d; COMMIT;", -i)
		}
	}
	// One simple-protocol round trip, each BEGIN … COMMIT a transaction.
	if _, err := conn.PgConn().Exec(context.Background(), sql.String()).ReadAll(); err != nil {
		t.Fatal(err)
	}
}

// TestBacklog: transactions that build on one another, received faster
// than they are applied (while the source runs, and waiting in the slot
// while it is stopped), end equal to the table: a queued transaction's
// records are seen by those decoded after it.
func TestBacklog(t *testing.T) {
	_, url := newDB(t)
	db := connect(t, url)
	exec1(t, db, "CREATE TABLE bl (id int PRIMARY KEY, small int, big text)", "ALTER TABLE bl ALTER COLUMN big SET STORAGE EXTERNAL")
	path := t.TempDir() + "/viewsync.db"
	n := openNode(t, path)
	src := startSource(t, n, url, "vs_backlog", "bl")
	burst(t, url, 1, 400)
	waitEqual(t, n.hub, db, "bl", "bl")
	checkLog(t, n.hub, "bl", -1)
	live := n.st.Stats()

	src.Close()
	n.close()
	burst(t, url, 1000, 400) // waits in the slot
	n = openNode(t, path)
	startSource(t, n, url, "vs_backlog", "bl")
	waitEqual(t, n.hub, db, "bl", "bl")
	checkLog(t, n.hub, "bl", -1)
	t.Logf("store transactions for commits: %d for %d while running, %d for %d after a restart", live.Batches, live.Commits, n.st.Stats().Batches, n.st.Stats().Commits)
}
