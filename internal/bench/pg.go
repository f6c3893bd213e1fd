package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/pgcluster"
)

const pgUsage = `Usage: viewsync bench pg --spawn [flags]

PostgreSQL as a source: rows changed in PostgreSQL reach subscribers
through a spawned 'viewsync serve --pg-url … --pg-table …' (so --spawn is
required). PostgreSQL is the server at --pg-url or, without it, a
throw-away cluster the tool starts (initdb on a free loopback port, the
default settings with wal_level = logical; PostgreSQL's programs must be
installed) and removes at the end. The tool makes its own tables
(TABLE_sync, TABLE_live: id bigint primary key, n bigint, payload jsonb),
publications and replication slots (named like the tables), and drops them
at the end. In three parts, each with a fresh viewsync:
  1. initial sync (--rows > 0): a table of --rows rows loaded by viewsync;
     reports the time until viewsync streams (rows/s), and viewsync's peak
     resident and anonymous memory meanwhile (from /proc) with its data
     directory's size: viewsync streams the table in batches, never holding
     it whole;
  2. paced runs (--rates): a table of --ids rows; --subscribers subscribers
     (--transport) connect, then UPDATEs change --batch rows per
     transaction at each rate (row changes per second) for --duration;
     reports the rows each subscriber received per second, deliveries/s,
     the latency from the UPDATE being sent to the event's receipt (p50 /
     p99; it includes PostgreSQL's commit), and missing and duplicated
     commits (both must be 0);
  3. maximum throughput (--max-duration > 0): --writers connections each
     commit transactions of --max-batch rows as fast as they can, while
     --max-subscribers subscribers follow; reports the row changes per
     second committed in PostgreSQL, applied by viewsync and received by
     each subscriber, and the latency.
Each transaction is one commit; its rows carry their send time in the
payload. A progress line goes to stderr every second, the report to
stdout. Exits 1 when a commit went missing or twice, a write failed or a
subscriber could not connect.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_PG_URL):
`

// pgConfig holds the flags of 'viewsync bench pg'.
type pgConfig struct {
	benchCommon
	pgURL          string
	table          string
	rows           int
	ids            int
	subscribers    int
	rates          string
	rateList       []float64
	batch          int
	duration       time.Duration
	maxDuration    time.Duration
	maxBatch       int
	writers        int
	maxSubscribers int
	maxInflight    int
	valueSize      cliflag.Size
	drain          time.Duration
	loaders        int
}

// pgTableName is what --table accepts: a name that needs no quoting in
// SQL and, with a suffix, makes a valid slot and publication name.
var pgTableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

func (c *pgConfig) register(fs *flag.FlagSet) {
	c.registerSubscribers(fs)
	fs.StringVar(&c.pgURL, "pg-url", "", "PostgreSQL to use (postgres://user:password@host:5432/db; the role needs REPLICATION and CREATE, the server wal_level = logical); empty: start a throw-away cluster")
	fs.StringVar(&c.table, "table", "viewsync_bench", "prefix of the tables (and slots and publications) the tool makes and drops: TABLE_sync, TABLE_live")
	fs.IntVar(&c.rows, "rows", 1_000_000, "rows of the initial sync's table (0: no initial sync)")
	fs.IntVar(&c.ids, "ids", 1000, "rows of the table the paced and maximum runs update (and each subscriber's first reset holds)")
	fs.IntVar(&c.subscribers, "subscribers", 1000, "subscribers of the paced runs, each on a connection of its own")
	fs.StringVar(&c.rates, "rates", "1,100,1000", "row changes per second of the paced runs, comma-separated (empty: none)")
	fs.IntVar(&c.batch, "batch", 1, "rows per transaction in the paced runs")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long each paced run writes")
	fs.DurationVar(&c.maxDuration, "max-duration", 10*time.Second, "how long the maximum-throughput run writes (0: no such run)")
	fs.IntVar(&c.maxBatch, "max-batch", 100, "rows per transaction in the maximum-throughput run")
	fs.IntVar(&c.writers, "writers", 4, "connections writing at once in the maximum-throughput run, each on rows of its own")
	fs.IntVar(&c.maxSubscribers, "max-subscribers", 10, "subscribers of the maximum-throughput run")
	fs.IntVar(&c.maxInflight, "max-inflight", 16, "most transactions of a paced run awaiting PostgreSQL at once; each is sent at its scheduled time (open loop) unless this many are pending")
	registerValueSize(fs, &c.valueSize)
	fs.DurationVar(&c.drain, "drain", 60*time.Second, "time viewsync and the subscribers have, once the writers stop, to receive the last commit")
	fs.IntVar(&c.loaders, "loaders", 0, "processes holding the subscribers' connections: 1 is this one; 0 chooses by the open-files limit")
}

func (c *pgConfig) check(*flag.FlagSet) error {
	var err error
	c.rateList, err = parseRates(c.rates)
	return checkFlags(
		check{c.url != "", "bench pg spawns the server it measures, with --pg-table: use --spawn, not --url"},
		check{err != nil, fmt.Sprint("--rates: ", err)},
		check{!pgTableName.MatchString(c.table), "--table must be 1–41 of a-z, 0-9 and _, not starting with a digit"},
		check{c.rows < 0, "--rows must not be negative"},
		check{c.ids <= 0, "--ids must be positive"},
		check{c.subscribers <= 0 || c.maxSubscribers <= 0, "--subscribers and --max-subscribers must be positive"},
		check{c.batch <= 0 || c.maxBatch <= 0, "--batch and --max-batch must be positive"},
		check{c.batch > c.ids, "--batch must not exceed --ids"},
		check{c.duration <= 0 || c.drain <= 0, "--duration and --drain must be positive"},
		check{c.maxDuration < 0, "--max-duration must not be negative"},
		check{c.writers <= 0 || c.maxInflight <= 0, "--writers and --max-inflight must be positive"},
		check{c.maxDuration > 0 && c.ids/c.writers < c.maxBatch, "--ids must be at least --writers times --max-batch: each writer changes rows of its own"},
		check{c.loaders < 0, "--loaders must not be negative"},
		valueSizeCheck(c.valueSize))
}

// parseRates parses --rates.
func parseRates(s string) ([]float64, error) {
	var rates []float64
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		r, err := strconv.ParseFloat(part, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) {
			return nil, fmt.Errorf("%q is not a positive rate", part)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

// pgReport is the result of a pg run.
type pgReport struct {
	reportHead
	// PostgreSQL says which server: "throw-away cluster" or the URL
	// without its password; ServerVersion is its version.
	PostgreSQL    string         `json:"postgresql"`
	ServerVersion string         `json:"server_version"`
	Sync          *pgSyncReport  `json:"sync,omitempty"`
	Paced         []*pgRunReport `json:"paced,omitempty"`
	Max           *pgRunReport   `json:"max,omitempty"`
	Problems      []string       `json:"problems,omitempty"`
}

// pgSyncReport is the initial sync's figures.
type pgSyncReport struct {
	Rows int `json:"rows"`
	// LoadedRows is what viewsync reports it read
	// (viewsync_source_snapshot_rows_total).
	LoadedRows int64   `json:"loaded_rows"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_second"`
	// TableBytes is the table's size in PostgreSQL, indexes included.
	TableBytes int64 `json:"table_bytes"`
	// PeakRSSBytes is viewsync's peak resident memory (VmHWM), file pages
	// of its store included; PeakAnonBytes its peak anonymous memory
	// (RssAnon, sampled every 20 ms): the heap, what holding the table
	// would grow.
	PeakRSSBytes  uint64  `json:"peak_rss_bytes"`
	PeakAnonBytes uint64  `json:"peak_anon_bytes"`
	DataBytes     int64   `json:"data_bytes"`
	CPUSeconds    float64 `json:"cpu_seconds"`
}

// pgRunReport is a paced or maximum-throughput run's figures.
type pgRunReport struct {
	// Rate is the row changes per second asked; 0 in the maximum run.
	Rate        float64 `json:"rate,omitempty"`
	RowsPerTx   int     `json:"rows_per_tx"`
	Writers     int     `json:"writers,omitempty"`
	Seconds     float64 `json:"duration_seconds"`
	Subscribers int     `json:"subscribers"`
	Established int     `json:"established"`
	// Transactions and Rows are what PostgreSQL committed; RowsPerSec
	// their rate over the writing.
	Transactions int64   `json:"transactions"`
	Rows         int64   `json:"rows"`
	WriteErrors  int64   `json:"write_errors"`
	RowsPerSec   float64 `json:"rows_per_second"`
	// AppliedRowsPerSec is Rows over the time from the first write to
	// viewsync's version including the last; ReceivedRowsPerSec the rows
	// each subscriber received, over the time from the first write to the
	// last subscriber's receipt of the last.
	AppliedRowsPerSec  float64        `json:"applied_rows_per_second"`
	ReceivedRowsPerSec float64        `json:"received_rows_per_second"`
	Deliveries         int64          `json:"deliveries"`
	ExpectedDeliveries int64          `json:"expected_deliveries"`
	DeliveriesPerSec   float64        `json:"deliveries_per_second"`
	Latency            latencySummary `json:"latency"`
	Missing            int64          `json:"missing"`
	Duplicated         int64          `json:"duplicated"`
	CatchUps           int64          `json:"catch_ups"`
	ExtraResets        int64          `json:"extra_resets"`
	Reconnects         int64          `json:"reconnects"`
	LastError          string         `json:"last_error,omitempty"`
	// Server is viewsync's CPU and memory over the run, CPU per row
	// changed.
	Server *opsServer `json:"server,omitempty"`
}

// pgEnv is the PostgreSQL the run uses.
type pgEnv struct {
	url     string
	cluster *pgcluster.Cluster
	admin   *pgx.Conn
}

func (c *pgConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	env, err := c.openPG(ctx, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	rep := &pgReport{reportHead: reportHead{Scenario: "pg", Transport: c.transport, Spawned: true}, PostgreSQL: "throw-away cluster"}
	if env.cluster == nil {
		rep.PostgreSQL = redactPassword(env.url)
	}
	if err := env.admin.QueryRow(ctx, "SHOW server_version").Scan(&rep.ServerVersion); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	fmt.Fprintf(stderr, "bench: PostgreSQL %s (%s)\n", rep.ServerVersion, rep.PostgreSQL)

	if c.rows > 0 {
		if rep.Sync, err = c.syncRun(ctx, env, stderr); err != nil {
			return err
		}
		if rep.Sync.LoadedRows != int64(c.rows) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("initial sync: viewsync read %d rows of %d", rep.Sync.LoadedRows, c.rows))
		}
	}
	if len(c.rateList) > 0 || c.maxDuration > 0 {
		if err := c.liveRuns(ctx, env, rep, stderr); err != nil {
			return err
		}
	}
	for _, r := range append(rep.Paced, rep.Max) {
		if r == nil {
			continue
		}
		what := fmt.Sprintf("%.0f rows/s", r.Rate)
		if r.Rate == 0 {
			what = "maximum"
		}
		if r.Missing > 0 || r.Duplicated > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d commits missing, %d duplicated", what, r.Missing, r.Duplicated))
		}
		if r.WriteErrors > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d transactions failed", what, r.WriteErrors))
		}
		if r.Established < r.Subscribers {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d of %d subscribers connected", what, r.Established, r.Subscribers))
		}
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return errors.New(strings.Join(rep.Problems, "; "))
	}
	return nil
}

// openPG connects to --pg-url, or starts a throw-away cluster.
func (c *pgConfig) openPG(ctx context.Context, stderr io.Writer) (*pgEnv, error) {
	env := &pgEnv{url: c.pgURL}
	if env.url == "" {
		fmt.Fprintln(stderr, "bench: no --pg-url: starting a throw-away PostgreSQL cluster")
		cl, err := pgcluster.Start("wal_level=logical")
		if err != nil {
			return nil, fmt.Errorf("start a PostgreSQL cluster (or give --pg-url): %w", err)
		}
		env.cluster = cl
		env.url = cl.URL("postgres", pgcluster.Password, "postgres")
		fmt.Fprintf(stderr, "bench: PostgreSQL cluster on 127.0.0.1:%d\n", cl.Port)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, env.url)
	if err != nil {
		env.close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	env.admin = conn
	return env, nil
}

// close drops the connection and stops a throw-away cluster.
func (e *pgEnv) close() {
	if e.admin != nil {
		e.admin.Close(context.Background())
	}
	if e.cluster != nil {
		e.cluster.Stop()
	}
}

// redactPassword returns a connection URL without its password.
func redactPassword(u string) string {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// makeTable (re)creates table with rows rows of values of size bytes.
func (e *pgEnv) makeTable(ctx context.Context, table string, rows, size int) error {
	pad := max(size-len(`{"pad":"","sent_ns":0}`), 0)
	for _, sql := range []string{
		"DROP TABLE IF EXISTS " + table,
		"CREATE TABLE " + table + " (id bigint PRIMARY KEY, n bigint NOT NULL, payload jsonb NOT NULL)",
		fmt.Sprintf("INSERT INTO %s SELECT g, 0, jsonb_build_object('sent_ns', 0, 'pad', repeat('x', %d)) FROM generate_series(0, %d) g", table, pad, rows-1),
		"VACUUM ANALYZE " + table,
	} {
		if _, err := e.admin.Exec(ctx, sql); err != nil {
			return fmt.Errorf("PostgreSQL: %s: %w", firstWords(sql), err)
		}
	}
	return nil
}

// dropFeed drops a table and the slot and publication named after it,
// once the viewsync that used them has stopped.
func (e *pgEnv) dropFeed(ctx context.Context, name string) error {
	var errs []error
	// The stopped server's walsender may take a moment to let go of
	// the slot.
	for try := 0; try < 50; try++ {
		_, err := e.admin.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", name)
		if err == nil {
			break
		}
		if try == 49 || ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("drop replication slot %s: %w", name, err))
			break
		}
		sleepFor(ctx, 100*time.Millisecond)
	}
	for _, sql := range []string{"DROP PUBLICATION IF EXISTS " + name, "DROP TABLE IF EXISTS " + name} {
		if _, err := e.admin.Exec(ctx, sql); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sql, err))
		}
	}
	return errors.Join(errs...)
}

// firstWords returns the start of a SQL statement, for errors.
func firstWords(sql string) string {
	if len(sql) > 40 {
		return sql[:40] + "…"
	}
	return sql
}

// serverArgs returns the flags of a viewsync following table into coll.
func (c *pgConfig) serverArgs(url, table, coll string) []string {
	return []string{"--pg-url", url, "--pg-table", "public." + table + "=" + coll, "--pg-slot", table, "--pg-publication", table}
}

// waitReady polls the server's /readyz until it answers 200, calling
// tick between polls.
func waitReady(ctx context.Context, t *benchTarget, timeout time.Duration, tick func()) error {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		resp, b, err := fetch(ctx, client, http.MethodGet, t.base+"/readyz", nil, nil)
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("viewsync not ready within %v: %s %v", timeout, strings.TrimSpace(string(b)), err)
		}
		select {
		case <-t.server.exited:
			return fmt.Errorf("viewsync exited; the end of its log:\n%s", t.server.stderr)
		default:
		}
		if tick != nil {
			tick()
		}
		sleepFor(ctx, 20*time.Millisecond)
	}
}

// metricValue returns the value of the first series of a metric in a
// Prometheus text exposition; -1 when it has none.
func metricValue(text, name string) float64 {
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			return v
		}
	}
	return -1
}

// syncRun measures the initial sync of a table of --rows rows.
func (c *pgConfig) syncRun(ctx context.Context, env *pgEnv, stderr io.Writer) (*pgSyncReport, error) {
	table := c.table + "_sync"
	if err := env.dropFeed(ctx, table); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "bench: filling %s with %d rows\n", table, c.rows)
	start := time.Now()
	if err := env.makeTable(ctx, table, c.rows, int(c.valueSize)); err != nil {
		return nil, err
	}
	rep := &pgSyncReport{Rows: c.rows}
	if err := env.admin.QueryRow(ctx, "SELECT pg_total_relation_size($1::regclass)", table).Scan(&rep.TableBytes); err != nil {
		return nil, fmt.Errorf("PostgreSQL: table size: %w", err)
	}
	fmt.Fprintf(stderr, "bench: %s filled in %.1fs (%s); starting viewsync on it\n", table, time.Since(start).Seconds(), mib(uint64(rep.TableBytes)))

	common := c.benchCommon
	common.serverArgs = c.serverArgs(env.url, table, c.collection+"-sync")
	start = time.Now()
	t, err := openTarget(ctx, &common, 0, stderr)
	if err != nil {
		return nil, err
	}
	defer func() {
		t.close()
		env.dropFeed(context.WithoutCancel(ctx), table)
	}()
	pid := strconv.Itoa(t.server.pid())
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	lastPrint := time.Now()
	sample := func() {
		if a, err := readAnon(t.server.pid()); err == nil {
			rep.PeakAnonBytes = max(rep.PeakAnonBytes, a)
		}
		if time.Since(lastPrint) < time.Second {
			return
		}
		lastPrint = time.Now()
		st, _ := readProc(pid)
		loaded := c.loadedRows(ctx, client, t.base)
		fmt.Fprintf(stderr, "bench: initial sync %4.0fs  rows %d/%d (%.0f/s)  RSS %s  anonymous peak %s  CPU %.1fs\n",
			time.Since(start).Seconds(), loaded, c.rows, float64(max(loaded, 0))/time.Since(start).Seconds(), mib(st.rss), mib(rep.PeakAnonBytes), st.cpu.Seconds())
	}
	if err := waitReady(ctx, t, c.setupTimeout+time.Duration(c.rows/1000)*time.Second, sample); err != nil {
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	elapsed := time.Since(start)
	sample()
	st, err := readProc(pid)
	if err != nil {
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	rep.Seconds = round3(elapsed.Seconds())
	rep.RowsPerSec = rate(int64(c.rows), elapsed)
	rep.PeakRSSBytes, rep.CPUSeconds = st.hwm, round3(st.cpu.Seconds())
	rep.DataBytes = dirSize(t.server.dir)
	rep.LoadedRows = c.loadedRows(ctx, client, t.base)
	fmt.Fprintf(stderr, "bench: initial sync of %d rows in %.1fs (%.0f rows/s); peak RSS %s, peak anonymous %s\n",
		c.rows, rep.Seconds, rep.RowsPerSec, mib(rep.PeakRSSBytes), mib(rep.PeakAnonBytes))
	return rep, nil
}

// loadedRows returns the rows viewsync says it loaded, -1 if unknown.
func (c *pgConfig) loadedRows(ctx context.Context, client *http.Client, base string) int64 {
	resp, b, err := fetch(ctx, client, http.MethodGet, base+"/metrics", nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	return int64(metricValue(string(b), "viewsync_source_snapshot_rows_total"))
}

// liveRuns runs the paced runs and the maximum-throughput run against one
// viewsync following a table of --ids rows.
func (c *pgConfig) liveRuns(ctx context.Context, env *pgEnv, rep *pgReport, stderr io.Writer) error {
	table := c.table + "_live"
	if err := env.dropFeed(ctx, table); err != nil {
		return err
	}
	if err := env.makeTable(ctx, table, c.ids, int(c.valueSize)); err != nil {
		return err
	}
	common := c.benchCommon
	common.serverArgs = c.serverArgs(env.url, table, c.collection)
	t, err := openTarget(ctx, &common, max(c.subscribers, c.maxSubscribers), stderr)
	if err != nil {
		return err
	}
	defer func() {
		t.close()
		env.dropFeed(context.WithoutCancel(ctx), table)
	}()
	if err := waitReady(ctx, t, c.setupTimeout, nil); err != nil {
		return err
	}
	w := &pgWriters{url: env.url, table: table, ids: c.ids, valueSize: int(c.valueSize)}
	defer w.close()
	for _, r := range c.rateList {
		fmt.Fprintf(stderr, "bench: paced run: %g row changes/s, %d per transaction, %d subscribers, %v\n", r, c.batch, c.subscribers, c.duration)
		run, err := c.liveRun(ctx, t, &common, w, r, stderr)
		if err != nil {
			return err
		}
		rep.Paced = append(rep.Paced, run)
	}
	if c.maxDuration > 0 {
		fmt.Fprintf(stderr, "bench: maximum run: %d writers, %d rows per transaction, %d subscribers, %v\n", c.writers, c.maxBatch, c.maxSubscribers, c.maxDuration)
		run, err := c.liveRun(ctx, t, &common, w, 0, stderr)
		if err != nil {
			return err
		}
		rep.Max = run
	}
	return nil
}

// liveRun measures one paced run at rate row changes/s, or with rate 0
// the maximum-throughput run.
func (c *pgConfig) liveRun(ctx context.Context, t *benchTarget, common *benchCommon, w *pgWriters, rate float64, stderr io.Writer) (*pgRunReport, error) {
	subs, batch, d := c.subscribers, c.batch, c.duration
	if rate == 0 {
		subs, batch, d = c.maxSubscribers, c.maxBatch, c.maxDuration
	}
	rep := &pgRunReport{Rate: rate, RowsPerTx: batch, Seconds: d.Seconds(), Subscribers: subs}
	client := t.keepAliveClient(2)
	defer client.CloseIdleConnections()
	head, err := getHead(ctx, client, t.base, c.collection)
	if err != nil {
		return nil, err
	}
	m := measurement{run: 1, runs: 1, loaders: chooseLoaders(c.loaders, subs)}
	load, established, _, err := startLoad(ctx, t, common, benchRunsFlags{runs: 1, loaders: c.loaders}, m, subs, true, time.Now(), stderr)
	if err != nil {
		return nil, err
	}
	defer load.stop()
	rep.Established = established

	win := t.beginWindow()
	start := time.Now()
	var res pgWriteResult
	if rate == 0 {
		rep.Writers = c.writers
		res = w.flat(ctx, c.writers, batch, d, &load.sent)
	} else {
		res = w.paced(ctx, rate, batch, d, c.maxInflight, &load.sent)
	}
	rep.Transactions, rep.Rows, rep.WriteErrors = res.txs, res.txs*int64(batch), res.errs
	if res.lastErr != nil {
		rep.LastError = res.lastErr.Error()
	}
	rep.RowsPerSec = rate64(rep.Rows, res.elapsed)

	// viewsync has applied every transaction once its version is the
	// head's plus one per transaction; the subscribers then drain to it.
	last := head.Version + uint64(res.txs)
	applied, err := waitVersion(ctx, client, t.base, c.collection, last, c.drain)
	if err != nil {
		return nil, err
	}
	rep.AppliedRowsPerSec = rate64(rep.Rows, applied.Sub(start))
	if err := drainGroups(ctx, load.groups, last, nil, c.drain); err != nil {
		return nil, err
	}
	received := time.Now()
	rep.Server = win.end(rep.Rows)
	gr, _, err := load.finish(m, start, received)
	if err != nil {
		return nil, err
	}
	rep.Deliveries, rep.Missing, rep.Duplicated, rep.CatchUps, rep.ExtraResets, rep.Reconnects =
		gr.Deliveries, gr.Missing, gr.Duplicated, gr.CatchUps, gr.ExtraResets, gr.Reconnects
	rep.ExpectedDeliveries = res.txs * int64(gr.Established)
	rep.DeliveriesPerSec = rate64(gr.Deliveries, received.Sub(start))
	if gr.Established > 0 {
		rep.ReceivedRowsPerSec = rate64(gr.Deliveries*int64(batch)/int64(gr.Established), received.Sub(start))
	}
	rep.Latency = gr.latencyOf()
	if gr.LastError != "" && rep.LastError == "" {
		rep.LastError = gr.LastError
	}
	fmt.Fprintf(stderr, "bench: %d rows in %d transactions (%.0f rows/s); applied %.0f rows/s; each subscriber received %.0f rows/s; latency %s\n",
		rep.Rows, rep.Transactions, rep.RowsPerSec, rep.AppliedRowsPerSec, rep.ReceivedRowsPerSec, latencyRow(rep.Latency))
	return rep, nil
}

// rate64 is rate for counts that may be negative: never below 0.
func rate64(n int64, d time.Duration) float64 { return rate(max(n, 0), d) }

// waitVersion waits until the collection's version is at least v, or for
// at most d, and returns when it got there.
func waitVersion(ctx context.Context, client *http.Client, base, coll string, v uint64, d time.Duration) (time.Time, error) {
	deadline := time.Now().Add(d)
	for {
		hd, err := getHead(ctx, client, base, coll)
		if err != nil {
			return time.Time{}, err
		}
		if hd.Version >= v {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("viewsync at version %d of %s, %v after the writers stopped; want %d", hd.Version, coll, d, v)
		}
		sleepFor(ctx, 5*time.Millisecond)
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
	}
}

// pgWriters change rows of a table: UPDATEs of a payload carrying the
// send time, each one transaction.
type pgWriters struct {
	url, table string
	ids        int
	valueSize  int

	mu    sync.Mutex
	conns []*pgx.Conn
}

// pgWriteResult is what writers did.
type pgWriteResult struct {
	txs, errs int64
	lastErr   error
	elapsed   time.Duration
}

// conn returns a connection of the pool, opening one if none is idle.
func (w *pgWriters) conn(ctx context.Context) (*pgx.Conn, error) {
	w.mu.Lock()
	if n := len(w.conns); n > 0 {
		c := w.conns[n-1]
		w.conns = w.conns[:n-1]
		w.mu.Unlock()
		return c, nil
	}
	w.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, w.url)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return c, nil
}

// put returns a connection to the pool; a broken one is closed.
func (w *pgWriters) put(c *pgx.Conn) {
	if c.IsClosed() {
		return
	}
	w.mu.Lock()
	w.conns = append(w.conns, c)
	w.mu.Unlock()
}

func (w *pgWriters) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.conns {
		c.Close(context.Background())
	}
	w.conns = nil
}

// update changes n rows from first (modulo span, from base) in one
// transaction.
func (w *pgWriters) update(ctx context.Context, c *pgx.Conn, base, span, first, n int) error {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(base + (first+i)%span)
	}
	payload := padValue(fmt.Appendf(nil, `{"sent_ns":%d,"pad":"`, time.Now().UnixNano()), w.valueSize)
	tag, err := c.Exec(ctx, "UPDATE "+w.table+" SET n = n + 1, payload = $2::jsonb WHERE id = ANY($1)", ids, payload)
	if err == nil && tag.RowsAffected() != int64(n) {
		err = fmt.Errorf("UPDATE changed %d rows, not %d", tag.RowsAffected(), n)
	}
	return err
}

// paced commits rate row changes a second, batch per transaction, for d,
// in open loop: each transaction at its time, unless inflight are
// pending.
func (w *pgWriters) paced(ctx context.Context, rate float64, batch int, d time.Duration, inflight int, sent *atomic.Int64) pgWriteResult {
	var (
		mu  sync.Mutex
		res pgWriteResult
		wg  sync.WaitGroup
	)
	sem := make(chan struct{}, inflight)
	n := max(1, int(rate*d.Seconds())/batch)
	interval := time.Duration(float64(batch) / rate * float64(time.Second))
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			sleepFor(ctx, wait)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := w.conn(ctx)
			if err == nil {
				err = w.update(ctx, c, 0, w.ids, i*batch, batch)
				w.put(c)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.errs, res.lastErr = res.errs+1, err
				return
			}
			res.txs++
			sent.Add(1)
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// flat runs writers, each committing transactions of batch rows of its
// own share of the table as fast as it can, for d.
func (w *pgWriters) flat(ctx context.Context, writers, batch int, d time.Duration, sent *atomic.Int64) pgWriteResult {
	var (
		mu  sync.Mutex
		res pgWriteResult
		wg  sync.WaitGroup
	)
	per := w.ids / writers
	start := time.Now()
	deadline := start.Add(d)
	for k := range writers {
		wg.Go(func() {
			c, err := w.conn(ctx)
			if err != nil {
				mu.Lock()
				res.errs, res.lastErr = res.errs+1, err
				mu.Unlock()
				return
			}
			defer w.put(c)
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				err := w.update(ctx, c, k*per, per, i*batch, batch)
				mu.Lock()
				if err != nil {
					res.errs, res.lastErr = res.errs+1, err
				} else {
					res.txs++
					sent.Add(1)
				}
				mu.Unlock()
				if err != nil && c.IsClosed() {
					return
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func (r *pgReport) rows() []reportRow {
	rows := []reportRow{{"scenario", fmt.Sprintf("pg over %s; PostgreSQL %s (%s)", r.Transport, r.ServerVersion, r.PostgreSQL)}}
	if s := r.Sync; s != nil {
		rows = append(rows,
			reportRow{"initial sync", fmt.Sprintf("%d rows (%s in PostgreSQL) in %.1fs: %.0f rows/s; viewsync read %d", s.Rows, mib(uint64(s.TableBytes)), s.Seconds, s.RowsPerSec, s.LoadedRows)},
			reportRow{"  viewsync memory", fmt.Sprintf("peak RSS %s, peak anonymous %s; data %s; CPU %.1fs", mib(s.PeakRSSBytes), mib(s.PeakAnonBytes), mib(uint64(s.DataBytes)), s.CPUSeconds)})
	}
	for _, p := range append(r.Paced, r.Max) {
		if p == nil {
			continue
		}
		name := fmt.Sprintf("%g rows/s", p.Rate)
		if p.Rate == 0 {
			name = fmt.Sprintf("maximum (%d writers)", p.Writers)
		}
		rows = append(rows,
			reportRow{name, fmt.Sprintf("%d subscribers (%d connected), %d rows per transaction, %.0fs", p.Subscribers, p.Established, p.RowsPerTx, p.Seconds)},
			reportRow{"  rows/s", fmt.Sprintf("%.0f committed, %.0f applied, %.0f received per subscriber; %d transactions, %d failed", p.RowsPerSec, p.AppliedRowsPerSec, p.ReceivedRowsPerSec, p.Transactions, p.WriteErrors)},
			reportRow{"  update → receipt", latencyRow(p.Latency)},
			reportRow{"  deliveries", fmt.Sprintf("%d of %d (%.0f/s); missing %d, duplicated %d, catch-ups %d, reconnects %d", p.Deliveries, p.ExpectedDeliveries, p.DeliveriesPerSec, p.Missing, p.Duplicated, p.CatchUps, p.Reconnects)})
		if s := p.Server; s != nil {
			rows = append(rows, reportRow{"  viewsync", fmt.Sprintf("CPU %.2fs (%.1f µs per row), RSS %s (peak %s)", s.CPUSeconds, s.CPUMicrosPerOp, mib(s.RSSBytes), mib(s.PeakRSSBytes))})
		}
		if p.LastError != "" {
			rows = append(rows, reportRow{"  last error", p.LastError})
		}
	}
	for _, p := range r.Problems {
		rows = append(rows, reportRow{"problem", p})
	}
	return rows
}
