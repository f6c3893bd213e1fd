//go:build unix

package main

// Crash test of the PostgreSQL source with the real binary and a real
// PostgreSQL cluster of its own.
//
// Writers run transactions in PostgreSQL — one to four rows upserted and
// maybe one deleted, in one table or in both — and record each with its
// outcome: committed, rolled back, or unknown (the connection broke during
// COMMIT). Every upserted row carries its transaction's token, so that a
// commit in a collection's log names the transaction it came from. SSE
// subscribers follow both collections, resuming from their cursors. The
// viewsync process is killed (SIGKILL) at random moments and started again
// on the same data; then PostgreSQL itself is stopped and started under
// load. After each restart, and in full once the writers have stopped:
//
//   - each collection's log holds versions 1..head in the epoch of its
//     first load;
//   - every logged commit is exactly one transaction's changes to that
//     table (its upserts, and its delete if it found the row), never one
//     that rolled back, never twice;
//   - a transaction touching both tables is in both logs or in neither,
//     and the two logs order their common transactions alike;
//   - every committed transaction is there (once the writers stopped);
//   - the replayed log, the snapshot and every subscriber equal the table;
//   - subscribers got one reset each, then only the next commit each time,
//     across every restart: they resumed from their cursors.
//
// While PostgreSQL is down /readyz answers 503 and the source's connected
// metric is 0; once it is back, /readyz answers 200 again.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viewsync/viewsync/internal/pgtest"
	"github.com/viewsync/viewsync/protocol"
)

// Shape of the load of the PostgreSQL crash test.
const (
	pgWriters = 4
	// pgIDs is the number of row ids per table: few, so that transactions
	// collide on rows.
	pgIDs = 24
	// pgSeedRows are in each table before viewsync first starts.
	pgSeedRows = 16
	pgKills    = 3
	// pgSubs is the number of SSE subscribers per collection.
	pgSubs = 3
)

// pgTables are the tables written, each fed into the collection pgColl
// names.
var pgTables = []string{"acct", "item"}

func pgColl(table string) string { return "pg-" + table }

// pgTx is one transaction a writer ran.
type pgTx struct {
	token string
	// parts are its changes per table.
	parts   map[string]*pgPart
	outcome outcome // acked: committed; refused: rolled back
}

// pgPart is a transaction's changes to one table: rows upserted in order,
// the i-th with n = i, then maybe one deleted.
type pgPart struct {
	puts []int
	// del is the id deleted after the upserts, -1 for none.
	del int
}

// pgRow is a row, or a record's value, as the test compares them.
type pgRow struct {
	ID int    `json:"id"`
	TX string `json:"tx"`
	N  int    `json:"n"`
}

// pgHistory is every transaction run during the test.
type pgHistory struct {
	mu  sync.Mutex
	txs map[string]*pgTx
	// epochs are the collections' epochs after the first load.
	epochs map[string]string
}

// plan makes the next transaction of a writer. Rows are changed in the
// order (table, id), the deleted one last, so that transactions never
// deadlock.
func (h *pgHistory) plan(rng *rand.Rand, token string) *pgTx {
	tx := &pgTx{token: token, parts: map[string]*pgPart{}}
	which := rng.IntN(3) // 0: the first table, 1: the second, 2: both
	for i, table := range pgTables {
		if which != 2 && which != i {
			continue
		}
		n := 1 + rng.IntN(4)
		del := rng.IntN(3) == 0
		ids := rng.Perm(pgIDs)[:n+btoi(del)]
		sort.Ints(ids)
		p := &pgPart{puts: ids[:n], del: -1}
		if del {
			p.del = ids[n]
		}
		tx.parts[table] = p
	}
	h.mu.Lock()
	h.txs[token] = tx
	h.mu.Unlock()
	return tx
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// run runs tx on conn and records its outcome; it returns an error when
// the connection is no longer usable.
func (h *pgHistory) run(conn *pgx.Conn, tx *pgTx) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	set := func(o outcome) {
		h.mu.Lock()
		tx.outcome = o
		h.mu.Unlock()
	}
	ptx, err := conn.Begin(ctx)
	if err != nil {
		set(refused)
		return err
	}
	fail := func(err error) error {
		ptx.Rollback(ctx)
		set(refused)
		return err
	}
	for _, table := range pgTables {
		p := tx.parts[table]
		if p == nil {
			continue
		}
		var rows []string
		args := []any{tx.token}
		for i, id := range p.puts {
			args = append(args, id)
			rows = append(rows, fmt.Sprintf("($%d, $1, %d)", len(args), i))
		}
		if _, err := ptx.Exec(ctx, "INSERT INTO "+table+" (id, tx, n) VALUES "+strings.Join(rows, ", ")+
			" ON CONFLICT (id) DO UPDATE SET tx = excluded.tx, n = excluded.n", args...); err != nil {
			return fail(err)
		}
		if p.del >= 0 {
			if _, err := ptx.Exec(ctx, "DELETE FROM "+table+" WHERE id = $1", p.del); err != nil {
				return fail(err)
			}
		}
	}
	switch err := ptx.Commit(ctx); {
	case err == nil:
		set(acked)
		return nil
	case errors.Is(err, pgx.ErrTxCommitRollback):
		set(refused)
		return nil
	default:
		return err // unknown: it may have committed
	}
}

// write runs pgWriters writers against url until stop is closed, their
// tokens starting with phase, their random numbers from seed and stream,
// reconnecting after failures (a restarted server); wait waits for them.
func (h *pgHistory) write(url string, seed uint64, phase string, stream uint64, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for w := range pgWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, stream*100+uint64(w)))
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if conn == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					c, err := pgx.Connect(ctx, url)
					cancel()
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					conn = c
				}
				tx := h.plan(rng, fmt.Sprintf("%s-w%d-%d", phase, w, seq))
				if err := h.run(conn, tx); err != nil && conn.IsClosed() {
					conn.Close(context.Background())
					conn = nil
				}
				// A few hundred transactions a second: a backlog for
				// viewsync to resume, not one that takes long to drain.
				time.Sleep(4 * time.Millisecond)
			}
		})
	}
	return wg.Wait
}

// counts returns how many transactions of phase committed, rolled back
// and ended unknown.
func (h *pgHistory) counts(phase string) (committed, rolledBack, unknown int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, tx := range h.txs {
		if !strings.HasPrefix(tx.token, phase+"-") {
			continue
		}
		switch tx.outcome {
		case acked:
			committed++
		case refused:
			rolledBack++
		default:
			unknown++
		}
	}
	return
}

// decodeRow decodes a record's value.
func decodeRow(v json.RawMessage) (pgRow, error) {
	var r pgRow
	d := json.NewDecoder(bytes.NewReader(v))
	d.DisallowUnknownFields()
	err := d.Decode(&r)
	return r, err
}

// verify checks each collection's log as the server at base holds it
// against the transactions run. final, once the writers have stopped and
// viewsync has caught up, also asks for every committed transaction, and
// for the replayed log, the snapshot and the table (tables) to agree.
func (h *pgHistory) verify(t *testing.T, client *http.Client, base string, final bool, tables map[string]map[string]pgRow) map[string]uint64 {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	heads := map[string]uint64{}
	order := map[string][]string{} // table → tokens in log order
	for _, table := range pgTables {
		coll := pgColl(table)
		var vi protocol.Head
		getJSON(t, client, base+"/v1/collections/"+coll+"/version", &vi)
		if vi.Epoch != h.epochs[coll] {
			t.Fatalf("%s: epoch %q, was %q after the first load", coll, vi.Epoch, h.epochs[coll])
		}
		head, log := fetchLog(t, client, base, coll, vi.Epoch)
		heads[coll] = head.Version
		state := map[string]pgRow{}
		at := map[string]uint64{}
		seeded := 0
		for _, cm := range log {
			token := ""
			var puts []pgRow
			var dels []string
			for _, op := range cm.Ops {
				if op.Op == protocol.OpDelete {
					dels = append(dels, op.ID)
					continue
				}
				r, err := decodeRow(op.Value)
				if err != nil || strconv.Itoa(r.ID) != op.ID {
					fail("%s@%d: op %s %s: not a row of the table (%v)", coll, cm.Version, op.ID, op.Value, err)
					continue
				}
				if token == "" {
					token = r.TX
				} else if r.TX != token {
					fail("%s@%d: rows of transactions %s and %s in one commit", coll, cm.Version, token, r.TX)
				}
				puts = append(puts, r)
			}
			if token == "seed" {
				// The first load: only the seeded rows, before anything else.
				if len(dels) > 0 || len(order[table]) > 0 {
					fail("%s@%d: a load commit after transactions, or with deletes", coll, cm.Version)
				}
				for _, r := range puts {
					state[strconv.Itoa(r.ID)] = r
					seeded++
				}
				continue
			}
			tx := h.txs[token]
			switch {
			case tx == nil:
				fail("%s@%d: commit %s is no transaction that was run", coll, cm.Version, opsString(cm.Ops))
				continue
			case tx.parts[table] == nil:
				fail("%s@%d: transaction %s did not touch table %s", coll, cm.Version, token, table)
				continue
			case at[token] != 0:
				fail("%s@%d: transaction %s applied twice (also at %d)", coll, cm.Version, token, at[token])
			case tx.outcome == refused:
				fail("%s@%d: transaction %s rolled back, yet it is in the log", coll, cm.Version, token)
			}
			at[token] = cm.Version
			order[table] = append(order[table], token)
			// Exactly the transaction's changes: its upserts in order,
			// then its delete if the DELETE found the row — it may not
			// have, though the log holds it: it was inserted by a
			// transaction committed after the DELETE's snapshot, before
			// this one committed. A delete in the log must find its
			// record.
			p := tx.parts[table]
			var want []protocol.Op
			for i, id := range p.puts {
				v, _ := json.Marshal(pgRow{ID: id, TX: token, N: i})
				want = append(want, protocol.Op{Op: protocol.OpPut, ID: strconv.Itoa(id), Value: v})
			}
			if _, ok := state[strconv.Itoa(p.del)]; ok && len(cm.Ops) > len(want) {
				want = append(want, protocol.Op{Op: protocol.OpDelete, ID: strconv.Itoa(p.del)})
			}
			if !sameRows(cm.Ops, want) {
				fail("%s@%d: transaction %s logged as %s, want %s", coll, cm.Version, token, opsString(cm.Ops), opsString(want))
			}
			for _, r := range puts {
				state[strconv.Itoa(r.ID)] = r
			}
			for _, id := range dels {
				delete(state, id)
			}
		}
		if seeded != pgSeedRows {
			fail("%s: the first load held %d rows, want the %d seeded", coll, seeded, pgSeedRows)
		}
		if !final {
			continue
		}
		for _, tx := range h.txs {
			if tx.parts[table] != nil && tx.outcome == acked && at[tx.token] == 0 {
				fail("%s: committed transaction %s is not in the log", coll, tx.token)
			}
		}
		if !sameTable(state, tables[table]) {
			fail("%s: the log replays to %d rows, the table has %d (or they differ)", coll, len(state), len(tables[table]))
		}
		var snap protocol.Snapshot
		getJSON(t, client, base+"/v1/collections/"+coll, &snap)
		if snap.Version != head.Version || !sameTable(recordRows(t, snap.Records), tables[table]) {
			fail("%s: snapshot at %d with %d records, the table has %d rows (or they differ)", coll, snap.Version, len(snap.Records), len(tables[table]))
		}
	}
	// Transactions touching both tables: in both logs or neither, and in
	// the same order.
	in := func(table, token string) bool { return slices.Contains(order[table], token) }
	var common [2][]string
	for k, table := range pgTables {
		other := pgTables[1-k]
		for _, token := range order[table] {
			if h.txs[token].parts[other] == nil {
				continue
			}
			if in(other, token) {
				common[k] = append(common[k], token)
			} else if final {
				fail("transaction %s is in %s's log but not in %s's", token, pgColl(table), pgColl(other))
			}
		}
	}
	if !slices.Equal(common[0], common[1]) {
		fail("the two logs order their common transactions differently")
	}
	if errs > 20 {
		t.Errorf("... and %d more", errs-20)
	}
	return heads
}

// sameRows reports whether a logged commit's ops are want, comparing
// values as rows.
func sameRows(got, want []protocol.Op) bool {
	return slices.EqualFunc(got, want, func(g, w protocol.Op) bool {
		if g.Op != w.Op || g.ID != w.ID {
			return false
		}
		if g.Op == protocol.OpDelete {
			return true
		}
		gr, err1 := decodeRow(g.Value)
		wr, err2 := decodeRow(w.Value)
		return err1 == nil && err2 == nil && gr == wr
	})
}

// sameTable reports whether two sets of rows are equal.
func sameTable(a, b map[string]pgRow) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// recordRows decodes records as rows by id.
func recordRows(t *testing.T, recs []protocol.Record) map[string]pgRow {
	t.Helper()
	m := map[string]pgRow{}
	for _, r := range recs {
		row, err := decodeRow(r.Value)
		if err != nil {
			t.Errorf("record %s: %s: %v", r.ID, r.Value, err)
		}
		m[r.ID] = row
	}
	return m
}

// readTables reads every table's rows from PostgreSQL.
func readTables(t *testing.T, url string) map[string]map[string]pgRow {
	t.Helper()
	conn := pgtest.Connect(t, url)
	defer conn.Close(context.Background())
	out := map[string]map[string]pgRow{}
	for _, table := range pgTables {
		rows, err := conn.Query(context.Background(), "SELECT id, tx, n FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]pgRow{}
		for rows.Next() {
			var r pgRow
			if err := rows.Scan(&r.ID, &r.TX, &r.N); err != nil {
				t.Fatal(err)
			}
			m[strconv.Itoa(r.ID)] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		out[table] = m
	}
	return out
}

// pgSub is an SSE subscriber of a collection, following the server
// wherever it is now listening and resuming from its cursor.
type pgSub struct {
	coll string
	// at is the version its view is at, for waiting.
	at atomic.Uint64

	mu      sync.Mutex
	epoch   string
	records map[string]json.RawMessage
	// resets counts the resets received, reconnects the streams opened
	// after the first.
	resets, reconnects int
	// violation is the first event that broke the rules.
	violation error
}

// run follows the collection until ctx ends; base returns the server's
// URL now, "" while it is down.
func (s *pgSub) run(ctx context.Context, base func() string) {
	client := &http.Client{}
	for first := true; ctx.Err() == nil; {
		b := base()
		if b == "" {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b+"/v1/collections/"+s.coll+"/events", nil)
		if err != nil {
			s.violate(err)
			return
		}
		s.mu.Lock()
		if s.records != nil {
			req.Header.Set("Last-Event-ID", s.epoch+":"+strconv.FormatUint(s.at.Load(), 10))
		}
		s.mu.Unlock()
		resp, err := client.Do(req)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !first {
			s.mu.Lock()
			s.reconnects++
			s.mu.Unlock()
		}
		first = false
		if resp.StatusCode == http.StatusOK {
			s.read(resp.Body)
		}
		resp.Body.Close()
	}
}

func (s *pgSub) violate(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.violation == nil {
		s.violation = err
	}
}

// read reads events until the stream ends.
func (s *pgSub) read(body io.Reader) {
	br := bufio.NewReaderSize(body, 64<<10)
	var event, id string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			if err := s.apply(event, id, []byte(line[len("data: "):])); err != nil {
				s.violate(err)
				return
			}
		case line == "":
			event, id = "", ""
		}
	}
}

// apply applies one event to the subscriber's view.
func (s *pgSub) apply(event, id string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch event {
	case "reset":
		var snap protocol.Snapshot
		if err := json.Unmarshal(data, &snap); err != nil {
			return fmt.Errorf("%s: reset: %v", s.coll, err)
		}
		s.resets++
		if s.records != nil {
			return fmt.Errorf("%s: a reset to %s:%d after resuming from %s:%d", s.coll, snap.Epoch, snap.Version, s.epoch, s.at.Load())
		}
		s.epoch, s.records = snap.Epoch, map[string]json.RawMessage{}
		for _, r := range snap.Records {
			s.records[r.ID] = r.Value
		}
		s.at.Store(snap.Version)
	case "commit":
		var cm protocol.Commit
		if err := json.Unmarshal(data, &cm); err != nil {
			return fmt.Errorf("%s: commit: %v", s.coll, err)
		}
		if s.records == nil || cm.Version != s.at.Load()+1 || id != s.epoch+":"+strconv.FormatUint(cm.Version, 10) {
			return fmt.Errorf("%s: commit %s (version %d) at %s:%d", s.coll, id, cm.Version, s.epoch, s.at.Load())
		}
		for _, op := range cm.Ops {
			if op.Op == protocol.OpDelete {
				delete(s.records, op.ID)
			} else {
				s.records[op.ID] = op.Value
			}
		}
		s.at.Store(cm.Version)
	case "error":
		// The server is busy or stopping: the stream ends, the subscriber
		// resumes.
	default:
		return fmt.Errorf("%s: event %q (%s) at %s:%d, want commits after the first reset", s.coll, event, data, s.epoch, s.at.Load())
	}
	return nil
}

// rows returns the subscriber's view as rows.
func (s *pgSub) rows(t *testing.T) map[string]pgRow {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]pgRow{}
	for id, v := range s.records {
		r, err := decodeRow(v)
		if err != nil {
			t.Errorf("%s: record %s: %s: %v", s.coll, id, v, err)
		}
		m[id] = r
	}
	return m
}

// waitStatus polls url until it answers want, and returns its body.
func waitStatus(t *testing.T, client *http.Client, url string, want int) string {
	t.Helper()
	guard := hangGuard(t)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return string(body)
			}
		}
		select {
		case <-guard:
			t.Fatalf("GET %s never answered %d", url, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// converge waits until viewsync shows every table as PostgreSQL has it,
// the writers stopped, and returns the tables.
func converge(t *testing.T, client *http.Client, base, url string) map[string]map[string]pgRow {
	t.Helper()
	tables := readTables(t, url)
	guard := hangGuard(t)
	for _, table := range pgTables {
		for {
			var snap protocol.Snapshot
			getJSON(t, client, base+"/v1/collections/"+pgColl(table), &snap)
			if sameTable(recordRows(t, snap.Records), tables[table]) {
				break
			}
			select {
			case <-guard:
				t.Fatalf("%s never showed the table: %d records at %d, %d rows", pgColl(table), len(snap.Records), snap.Version, len(tables[table]))
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return tables
}

// checkSubs waits until every subscriber is at its collection's head and
// checks its view against the table.
func checkSubs(t *testing.T, subs []*pgSub, heads map[string]uint64, tables map[string]map[string]pgRow) {
	t.Helper()
	guard := hangGuard(t)
	for _, s := range subs {
		for s.at.Load() < heads[s.coll] {
			select {
			case <-guard:
				t.Fatalf("%s: a subscriber stayed at %d, the head is %d", s.coll, s.at.Load(), heads[s.coll])
			case <-time.After(10 * time.Millisecond):
			}
		}
		table := strings.TrimPrefix(s.coll, "pg-")
		if got := s.rows(t); !sameTable(got, tables[table]) {
			t.Errorf("%s: a subscriber's view has %d records, the table %d rows (or they differ)", s.coll, len(got), len(tables[table]))
		}
	}
}

// TestPostgresCrashRecovery kills viewsync (SIGKILL) at random moments
// while writers change two PostgreSQL tables it follows, three times, then
// stops and starts PostgreSQL itself under load; after each restart the
// collections' logs explain every transaction, and at the end of each
// phase the logs, the snapshots and every SSE subscriber equal the tables,
// the subscribers having resumed from their cursors throughout.
func TestPostgresCrashRecovery(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	// A cluster of its own: the test stops it.
	c, err := pgtest.Start("wal_level=logical")
	if err != nil {
		t.Fatalf("PostgreSQL test cluster: %v", err)
	}
	t.Cleanup(c.Stop)
	url := c.URL("postgres", pgtest.Password, "postgres")
	db := pgtest.Connect(t, url)
	for _, table := range pgTables {
		pgtest.Exec(t, db,
			"CREATE TABLE "+table+" (id int PRIMARY KEY, tx text NOT NULL, n int NOT NULL)",
			fmt.Sprintf("INSERT INTO %s SELECT g, 'seed', 0 FROM generate_series(0, %d) g", table, pgSeedRows-1))
	}
	db.Close(context.Background())

	client := newClient()
	defer client.CloseIdleConnections()
	data := t.TempDir()
	var base atomic.Value // the server's URL; "" while it is down
	base.Store("")
	start := func() *proc {
		t.Helper()
		cmd := exec.Command(serverBinary(t), "serve", "--addr", "127.0.0.1:0", "--data", data,
			"--pg-url", url, "--pg-table", "public.acct="+pgColl("acct")+",public.item="+pgColl("item"),
			"--pg-slot", "vs_crash", "--pg-publication", "vs_crash")
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VIEWSYNC_") })
		p := runServer(t, cmd)
		waitStatus(t, client, p.base+"/readyz", http.StatusOK)
		base.Store(p.base)
		return p
	}
	h := &pgHistory{txs: map[string]*pgTx{}, epochs: map[string]string{}}
	p := start()
	for _, table := range pgTables {
		var hd protocol.Head
		getJSON(t, client, p.base+"/v1/collections/"+pgColl(table)+"/version", &hd)
		if hd.Epoch == "" || hd.Version == 0 {
			t.Fatalf("%s: loaded at %+v, want the seeded rows in a commit", pgColl(table), hd)
		}
		h.epochs[pgColl(table)] = hd.Epoch
	}

	subCtx, stopSubs := context.WithCancel(context.Background())
	var subWG sync.WaitGroup
	var subs []*pgSub
	defer func() {
		stopSubs()
		subWG.Wait()
	}()
	for _, table := range pgTables {
		for range pgSubs {
			s := &pgSub{coll: pgColl(table)}
			subs = append(subs, s)
			subWG.Go(func() { s.run(subCtx, func() string { return base.Load().(string) }) })
		}
	}
	pause := func(lo, span time.Duration) time.Duration {
		d := lo + time.Duration(rng.Int64N(int64(span)))
		time.Sleep(d)
		return d
	}

	// Phase 1: viewsync killed under load.
	stop := make(chan struct{})
	wait := h.write(url, seed, "kill", 2, stop)
	for round := 1; round <= pgKills; round++ {
		after := pause(200*time.Millisecond, 1300*time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatalf("kill: %v", err)
		}
		base.Store("")
		if err := p.wait(t); err == nil {
			t.Fatalf("round %d: the killed server exited normally", round)
		}
		down := pause(0, 500*time.Millisecond)
		p = start()
		heads := h.verify(t, client, p.base, false, nil)
		committed, _, _ := h.counts("kill")
		t.Logf("round %d: SIGKILL after %v, down for %v; %d transactions committed so far; heads after restart %v", round, after, down, committed, heads)
		if t.Failed() {
			t.FailNow()
		}
	}
	pause(200*time.Millisecond, 500*time.Millisecond)
	close(stop)
	wait()
	tables := converge(t, client, p.base, url)
	heads := h.verify(t, client, p.base, true, tables)
	checkSubs(t, subs, heads, tables)
	committed, rolledBack, unknown := h.counts("kill")
	t.Logf("after %d kills: %d transactions committed, %d rolled back, %d unknown; heads %v", pgKills, committed, rolledBack, unknown, heads)
	if committed == 0 {
		t.Fatal("no transaction committed under load: the test proved nothing")
	}
	if t.Failed() {
		t.FailNow()
	}

	// Phase 2: PostgreSQL stopped and started again under load.
	stop = make(chan struct{})
	wait = h.write(url, seed, "restart", 3, stop)
	pause(300*time.Millisecond, 700*time.Millisecond)
	var downBody string
	if err := c.Restart(func() {
		downBody = waitStatus(t, client, p.base+"/readyz", http.StatusServiceUnavailable)
		guard := hangGuard(t)
		for {
			resp, err := client.Get(p.base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(m), `viewsync_source_connected{slot="vs_crash",source="postgres"} 0`) {
				break
			}
			select {
			case <-guard:
				t.Fatal("the source never reported itself disconnected in /metrics")
			case <-time.After(20 * time.Millisecond):
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(downBody, "PostgreSQL") {
		t.Errorf("/readyz while PostgreSQL is down: %q, want it to name PostgreSQL", downBody)
	}
	waitStatus(t, client, p.base+"/readyz", http.StatusOK)
	pause(300*time.Millisecond, 700*time.Millisecond)
	close(stop)
	wait()
	tables = converge(t, client, p.base, url)
	heads = h.verify(t, client, p.base, true, tables)
	checkSubs(t, subs, heads, tables)
	committed, rolledBack, unknown = h.counts("restart")
	t.Logf("PostgreSQL restarted: %d transactions committed, %d rolled back, %d unknown; heads %v", committed, rolledBack, unknown, heads)
	if committed == 0 {
		t.Fatal("no transaction committed around the PostgreSQL restart: the test proved nothing")
	}

	stopSubs()
	subWG.Wait()
	for i, s := range subs {
		if s.violation != nil {
			t.Errorf("subscriber %d: %v", i, s.violation)
		}
		if s.resets != 1 || s.reconnects < pgKills {
			t.Errorf("subscriber %d of %s: %d resets, %d reconnections; want 1 and at least %d (one per kill)", i, s.coll, s.resets, s.reconnects, pgKills)
		}
	}
}
