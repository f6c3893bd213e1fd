package pgsource_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/pgsource"
	"github.com/viewsync/viewsync/store"
)

// writeLoop inserts and updates rows of table items until stop is
// closed, each statement its own transaction, reconnecting after errors
// (a restarted server). It returns how many statements surely
// committed.
func writeLoop(t *testing.T, url string, first int, stop <-chan struct{}) (wait func() int64) {
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for i := first; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if conn == nil {
				c, err := pgx.Connect(context.Background(), url)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				conn = c
			}
			sql := fmt.Sprintf("INSERT INTO items VALUES (%d, 'v%d') ON CONFLICT (id) DO UPDATE SET v = excluded.v", i%300, i)
			if _, err := conn.Exec(context.Background(), sql); err != nil {
				conn.Close(context.Background())
				conn = nil
				continue
			}
			n.Add(1)
			time.Sleep(time.Millisecond)
		}
	})
	return func() int64 { wg.Wait(); return n.Load() }
}

// checkLog fails unless the collection's log, from version 1 in one
// epoch, is contiguous and holds want commits.
func checkLog(t *testing.T, hub *viewsync.Hub, coll string, want int) {
	t.Helper()
	c, _ := hub.Collection(coll)
	hd, err := c.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var all []viewsync.Commit
	for after := uint64(0); after < hd.Version; {
		ch, err := c.Changes(context.Background(), viewsync.Cursor{Epoch: hd.Epoch, Version: after}, store.Page{Commits: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if ch.Kind != viewsync.KindCommits || len(ch.Commits.Commits) == 0 {
			t.Fatalf("changes after %d: kind %v, not commits in one epoch", after, ch.Kind)
		}
		all = append(all, ch.Commits.Commits...)
		after = all[len(all)-1].Version
	}
	checkContiguous(t, coll, all, 1)
	if want >= 0 && len(all) != want {
		t.Fatalf("%s: %d commits, want %d (one per transaction, none twice)", coll, len(all), want)
	}
}

// TestRestartSource: the source and its hub stop mid-stream, the first
// time without confirming its position (a crash between durable commits
// and their confirmation), and start again on the same bbolt file while
// PostgreSQL goes on being written: nothing is lost or doubled, the
// versions run on in the same epoch, and the replayed transactions are
// skipped.
func TestRestartSource(t *testing.T) {
	_, url := newDB(t)
	db := connect(t, url)
	exec1(t, db, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	path := t.TempDir() + "/viewsync.db"

	// An empty table: the load is one drop, then every transaction is one
	// commit.
	n := openNode(t, path)
	src := startSourceOpts(t, n, &pgsource.Options{URL: url, Slot: "vs_restart", Publication: "vs_restart", StatusInterval: time.Hour}, "items")
	waitReady(t, src)
	stop := make(chan struct{})
	done := writeLoop(t, url, 0, stop)
	until(t, "some transactions", func() error {
		if st := src.Stats(); st.Transactions < 50 {
			return fmt.Errorf("%d transactions", st.Transactions)
		}
		return nil
	})
	pgsource.StopWithoutConfirm(src)
	src.Close()
	n.close()
	time.Sleep(100 * time.Millisecond) // written while viewsync is down

	n = openNode(t, path)
	src = startSource(t, n, url, "vs_restart", "items")
	until(t, "some more transactions", func() error {
		if st := src.Stats(); st.Transactions < 30 {
			return fmt.Errorf("%d transactions", st.Transactions)
		}
		return nil
	})
	skipped := src.Stats().Skipped
	if skipped == 0 {
		t.Errorf("Stats().Skipped = 0 after a restart without confirmation: the replayed transactions were not seen as replayed")
	}
	// A clean stop and start: the position was confirmed, nothing replays.
	src.Close()
	n.close()
	n = openNode(t, path)
	src = startSource(t, n, url, "vs_restart", "items")
	close(stop)
	written := done()
	waitEqual(t, n.hub, db, "items", "items")
	checkLog(t, n.hub, "items", int(written))
	if st := src.Stats(); st.Skipped != 0 {
		t.Errorf("Stats().Skipped = %d after a clean restart, want 0", st.Skipped)
	}
	t.Logf("%d transactions over three sessions; %d replayed and skipped after the crash", written, skipped)
}

// TestRestartPostgres: PostgreSQL stopped and started again under load;
// the source reports it (Ready, Stats), reconnects with backoff and goes
// on: nothing lost or doubled.
func TestRestartPostgres(t *testing.T) {
	c, url := newDB(t)
	db := connect(t, url)
	exec1(t, db, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	n := newNode(t)
	src := startSource(t, n, url, "vs_pgrestart", "items")
	stop := make(chan struct{})
	done := writeLoop(t, url, 0, stop)
	until(t, "some transactions", func() error {
		if st := src.Stats(); st.Transactions < 50 {
			return fmt.Errorf("%d transactions", st.Transactions)
		}
		return nil
	})
	if err := c.Ctl("stop", "-m", "fast"); err != nil {
		t.Fatal(err)
	}
	until(t, "the source to report the lost server", func() error {
		if err := src.Ready(); err == nil || !strings.Contains(err.Error(), "reconnecting") {
			return fmt.Errorf("Ready() = %v", err)
		}
		if st := src.Stats(); st.Connected || st.Reconnects == 0 {
			return fmt.Errorf("Stats() = %+v", st)
		}
		return nil
	})
	if err := c.Ctl("start"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, src)
	before := src.Stats().Transactions
	until(t, "transactions after the restart", func() error {
		if st := src.Stats(); st.Transactions < before+30 {
			return fmt.Errorf("%d transactions", st.Transactions)
		}
		return nil
	})
	close(stop)
	done()
	db = connect(t, url) // the first connection died with the server
	waitEqual(t, n.hub, db, "items", "items")
	// A statement whose connection died during its commit may have
	// committed unseen by the writer: the log is checked for gaps and
	// doubles, its length against the table's state only.
	checkLog(t, n.hub, "items", -1)
}
