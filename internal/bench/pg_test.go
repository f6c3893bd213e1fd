package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync/internal/pgcluster"
)

// TestBenchPG runs 'viewsync bench pg' at a tiny scale against a cluster
// of the test's: the initial sync of 3000 rows, two paced runs and a short
// maximum run, each commit reaching every subscriber once; then the
// tables, slots and publications it made are gone. Without --pg-url it
// starts a throw-away cluster of its own.
func TestBenchPG(t *testing.T) {
	useBuiltBinary(t)
	cl, err := pgcluster.Start("wal_level=logical", "fsync=off")
	if err != nil {
		t.Fatalf("PostgreSQL cluster: %v", err)
	}
	t.Cleanup(cl.Stop)
	url := cl.URL("postgres", pgcluster.Password, "postgres")

	r, stderr := runJSON[pgReport](t, "pg", "--spawn", "--pg-url", url, "--rows", "3000", "--ids", "40",
		"--subscribers", "8", "--rates", "20,200", "--duration", "1s", "--batch", "2",
		"--max-duration", "1s", "--max-subscribers", "3", "--max-batch", "10", "--writers", "2", "--collection", "pgb")
	if s := r.Sync; s == nil || s.Rows != 3000 || s.LoadedRows != 3000 || s.Seconds <= 0 || s.PeakAnonBytes == 0 || s.PeakRSSBytes == 0 || s.DataBytes == 0 {
		t.Errorf("initial sync: %+v", r.Sync)
	}
	if len(r.Paced) != 2 || r.Max == nil || len(r.Problems) != 0 {
		t.Fatalf("report: %d paced runs, maximum %v, problems %q\n%s", len(r.Paced), r.Max, r.Problems, stderr)
	}
	for i, want := range []int64{10, 100} { // rate × 1s / 2 rows per transaction
		p := r.Paced[i]
		if p.Transactions != want || p.Rows != 2*want || p.WriteErrors != 0 || p.Established != 8 {
			t.Errorf("paced run %d: %d transactions, %d rows, %d errors, %d subscribers; want %d, %d, 0, 8", i, p.Transactions, p.Rows, p.WriteErrors, p.Established, want, 2*want)
		}
		if p.Deliveries != 8*want || p.ExpectedDeliveries != 8*want || p.Missing != 0 || p.Duplicated != 0 || p.Latency.Samples != int(8*want) {
			t.Errorf("paced run %d: deliveries %d of %d, missing %d, duplicated %d, %d latencies", i, p.Deliveries, p.ExpectedDeliveries, p.Missing, p.Duplicated, p.Latency.Samples)
		}
		if l := p.Latency; !(l.P50ms > 0 && l.P50ms <= l.P99ms && l.P99ms <= l.MaxMs) || p.ReceivedRowsPerSec <= 0 || p.Server == nil {
			t.Errorf("paced run %d: %+v", i, p)
		}
	}
	// At the maximum rate a subscriber that falls behind may be sent a
	// compacted catch-up, which stands for several commits: then fewer
	// deliveries, never more, and none missing.
	if m := r.Max; m.Transactions == 0 || m.Rows != 10*m.Transactions || m.Deliveries > 3*m.Transactions || (m.CatchUps == 0 && m.Deliveries != 3*m.Transactions) || m.Missing != 0 || m.Duplicated != 0 || m.AppliedRowsPerSec <= 0 {
		t.Errorf("maximum run: %+v", m)
	}
	if !strings.Contains(stderr, "initial sync") || !strings.Contains(stderr, "paced run: 200 row changes/s") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}

	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM pg_publication)
		+ (SELECT count(*) FROM pg_tables WHERE tablename LIKE 'viewsync_bench%')`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d slots, publications or tables left behind (%v)", left, err)
	}

	// A cluster of the tool's own.
	r, stderr = runJSON[pgReport](t, "pg", "--spawn", "--rows", "100", "--rates", "", "--max-duration", "0")
	if r.PostgreSQL != "throw-away cluster" || r.Sync == nil || r.Sync.LoadedRows != 100 || !strings.Contains(stderr, "starting a throw-away PostgreSQL cluster") {
		t.Errorf("without --pg-url: %+v\n%s", r, stderr)
	}
}

func TestBenchPGFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"pg", "--url", "http://x"}, "use --spawn"},
		{[]string{"pg", "--spawn", "--rates", "1,x"}, "--rates"},
		{[]string{"pg", "--spawn", "--rates", "-5"}, "--rates"},
		{[]string{"pg", "--spawn", "--table", "Bench"}, "--table"},
		{[]string{"pg", "--spawn", "--ids", "100", "--writers", "4", "--max-batch", "50"}, "--ids must be at least"},
		{[]string{"pg", "--spawn", "--batch", "0"}, "--batch"},
		{[]string{"pg", "--spawn", "--subscribers", "0"}, "--subscribers"},
	} {
		code, stdout, stderr := runBench(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("bench %s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	if code, _, stderr := runBench(t, "pg", "--help"); code != 0 || !strings.Contains(stderr, "Usage: viewsync bench pg") || !strings.Contains(stderr, "--max-batch") {
		t.Errorf("bench pg --help: exit %d, stderr %q", code, stderr)
	}
}
