//go:build unix

package main

// Crash and shutdown tests of the real binary.
//
// The binary is built once per test run and started as a child process on a
// data directory that outlives it. Concurrent writers drive it over HTTP and
// record every write they send, with its outcome: acknowledged (and at which
// version), refused (a 4xx: the server says nothing changed), or unknown
// (the connection broke: it may or may not have happened). After the process
// is killed or stopped, a fresh process on the same directory must show a
// history that explains every acknowledgement and nothing else:
//
//   - versions 1..head, gap-free, in the same epoch as before;
//   - every acknowledged commit at its version with exactly its ops;
//   - every commit in the log is exactly one write that was sent (all its
//     ops, none of another's), sent once, never one that was refused;
//   - each logged commit's preconditions held, and its deletes found their
//     record, in the state the log itself replays to;
//   - the snapshot equals that replayed state;
//   - a new write gets version head+1.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/viewsync/viewsync/internal/pgtest"
	"github.com/viewsync/viewsync/protocol"
)

var crashSeed = flag.Uint64("crash.seed", 0, "seed of the crash and shutdown tests (0: from the clock); the tests log the one they use")

// Shape of the load the crash tests apply.
const (
	crashWriters = 16
	crashCycles  = 3
	// crashIDs is the number of record ids per collection: few, so that
	// writers collide and preconditions fail as well as pass.
	crashIDs = 12
	// killMin and killSpan bound the delay before the signal:
	// killMin + [0, killSpan).
	killMin  = 200 * time.Millisecond
	killSpan = 1300 * time.Millisecond
)

// crashCollections are the collections the writers share.
var crashCollections = []string{"crash-a", "crash-b"}

// binDir holds the server binary built for this test run; TestMain creates
// and removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "viewsync-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "viewsync tests:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	pgtest.StopAll()
	os.RemoveAll(dir)
	os.Exit(code)
}

var built struct {
	once sync.Once
	path string
	err  error
}

// serverBinary builds this command once per test run and returns its path.
// When the tests run under the race detector, so does the server.
func serverBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		gobin, err := goTool()
		if err != nil {
			built.err = err
			return
		}
		path := filepath.Join(binDir, "viewsync")
		args := []string{"build", "-o", path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		cmd := exec.Command(gobin, append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		built.path = path
	})
	if built.err != nil {
		t.Fatalf("building the server: %v", built.err)
	}
	return built.path
}

// goTool finds the go command: on PATH, else under $GOROOT, else under the
// GOROOT the go command on PATH reports.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the go command is not on PATH and $GOROOT/bin/go does not exist")
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// testSeed returns the seed of this test and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -crash.seed=%d)", seed, seed)
	return seed
}

// hangGuard fires well before the test's deadline (or after two minutes
// without one). It bounds waits that would otherwise hang the run, so that
// the test fails with a message and its cleanups still stop the child; it
// measures nothing.
func hangGuard(t *testing.T) <-chan time.Time {
	d := 2 * time.Minute
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 10*time.Second; left < d {
			d = max(left, time.Second)
		}
	}
	return time.After(d)
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one running server process.
type proc struct {
	cmd *exec.Cmd
	// base is the server's URL, "http://HOST:PORT".
	base   string
	stderr *lockedBuffer
	// exited is closed once the process has exited and been waited for;
	// err is then Wait's result.
	exited chan struct{}
	err    error
}

// startServer starts `viewsync serve` on dataDir, on a port of the system's
// choosing, and returns once it has said where it listens. The process is
// killed, if still running, when the test ends.
func startServer(t *testing.T, dataDir string) *proc {
	t.Helper()
	cmd := exec.Command(serverBinary(t), "serve", "--addr", "127.0.0.1:0", "--data", dataDir)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VIEWSYNC_") })
	return runServer(t, cmd)
}

// runServer starts cmd, a `viewsync serve` command line, and returns once
// the server has said where it listens. The process is killed, if still
// running, when the test ends.
func runServer(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the server (pid %d) reported a data race:\n%s", cmd.Process.Pid, p.stderr)
		} else if t.Failed() {
			t.Logf("server (pid %d) stderr:\n%s", cmd.Process.Pid, p.stderr)
		}
	})

	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "viewsync listening on http://"); ok {
				select {
				case addrc <- a:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-addrc:
		p.base = "http://" + a
	case <-p.exited:
		t.Fatalf("server exited before listening: %v\n%s", p.err, p.stderr)
	case <-hangGuard(t):
		t.Fatalf("server did not say where it listens\n%s", p.stderr)
	}
	return p
}

// wait waits for the process to exit and returns Wait's result.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-hangGuard(t):
		t.Fatalf("server (pid %d) did not exit", p.cmd.Process.Pid)
		return nil
	}
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        2 * crashWriters,
		MaxIdleConnsPerHost: 2 * crashWriters,
	}}
}

// outcome is what a writer learned of one write.
type outcome int

const (
	// unknown: the connection broke before an answer; the write may or
	// may not be in the log.
	unknown outcome = iota
	// acked: the server answered 200 with a version.
	acked
	// refused: the server answered 412 or 404; nothing changed.
	refused
)

// write is one write a writer sent: a single PUT or a POST of a commit.
// Every put op's value carries the write's token, so that a commit in the
// log names the write it came from.
type write struct {
	token      string
	collection string
	// single: a PUT of ops[0]; otherwise a POST of all ops.
	single bool
	ops    []protocol.Op
	// ifs are the preconditions (record id → version, 0: must not exist).
	ifs     map[string]uint64
	outcome outcome
	// version is the acknowledged commit version.
	version uint64
}

// history is every write sent during a test, across server processes.
type history struct {
	mu     sync.Mutex
	writes map[string]*write
	// known is the writers' latest news per collection and id, for
	// choosing preconditions that may pass; it proves nothing.
	known map[string]map[string]news
	// epochs are the collections' epochs, read before the first write.
	epochs map[string]string
	// answered is set when the server was only ever stopped gracefully:
	// then it answered every write it applied, and a write without an
	// answer must not be in the log.
	answered bool
}

// news is a record's version (0: deleted) as of a commit version.
type news struct{ record, asOf uint64 }

func newHistory() *history {
	h := &history{writes: map[string]*write{}, known: map[string]map[string]news{}, epochs: map[string]string{}}
	for _, c := range crashCollections {
		h.known[c] = map[string]news{}
	}
	return h
}

// tokenValue is the value of the i-th put of the write with the token.
func tokenValue(token string, i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"t":%q,"i":%d}`, token, i))
}

// tokenOf returns the token of a logged commit: that of its first op.
func tokenOf(cm protocol.Commit) string {
	if len(cm.Ops) == 0 || cm.Ops[0].Op != protocol.OpPut {
		return ""
	}
	var v struct {
		T string `json:"t"`
	}
	json.Unmarshal(cm.Ops[0].Value, &v)
	return v.T
}

// plan makes the next write of a writer.
func (h *history) plan(rng *rand.Rand, token string) *write {
	w := &write{token: token, collection: crashCollections[rng.IntN(len(crashCollections))]}
	ids := rng.Perm(crashIDs)
	id := func(i int) string { return fmt.Sprintf("k%02d", ids[i]) }
	h.mu.Lock()
	known := h.known[w.collection]
	cond := func(id string) uint64 {
		if rng.IntN(2) == 0 {
			return 0 // must not exist
		}
		return known[id].record
	}
	if rng.IntN(2) == 0 {
		w.single = true
		w.ops = []protocol.Op{{Op: protocol.OpPut, ID: id(0), Value: tokenValue(token, 0)}}
		if rng.IntN(3) > 0 {
			w.ifs = map[string]uint64{id(0): cond(id(0))}
		}
	} else {
		n := 2 + rng.IntN(3)
		for i := range n {
			w.ops = append(w.ops, protocol.Op{Op: protocol.OpPut, ID: id(i), Value: tokenValue(token, i)})
		}
		if rng.IntN(3) == 0 {
			// The record may be gone: then the whole commit must be refused.
			w.ops = append(w.ops, protocol.Op{Op: protocol.OpDelete, ID: id(n)})
		}
		if rng.IntN(2) == 0 {
			w.ifs = map[string]uint64{}
			for i := range 1 + rng.IntN(2) {
				w.ifs[id(i)] = cond(id(i))
			}
		}
	}
	h.writes[token] = w
	h.mu.Unlock()
	return w
}

// learn records an acknowledged write.
func (h *history) learn(w *write, version uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.outcome, w.version = acked, version
	known := h.known[w.collection]
	for _, op := range w.ops {
		if known[op.ID].asOf > version {
			continue
		}
		n := news{asOf: version}
		if op.Op == protocol.OpPut {
			n.record = version
		}
		known[op.ID] = n
	}
}

func (h *history) refuse(w *write) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.outcome = refused
}

// errBadAnswer stops a writer whose write got an answer the contract does
// not allow; the test has already been marked failed.
var errBadAnswer = errors.New("bad answer")

// send sends w and records its outcome. It returns an error when the
// request failed in transport (outcome unknown) or got a bad answer.
func (h *history) send(ctx context.Context, t *testing.T, client *http.Client, base string, w *write) error {
	var req *http.Request
	var err error
	if w.single {
		op := w.ops[0]
		req, err = http.NewRequestWithContext(ctx, http.MethodPut,
			base+"/v1/collections/"+w.collection+"/records/"+op.ID, bytes.NewReader(op.Value))
		if err != nil {
			return err
		}
		if v, ok := w.ifs[op.ID]; ok {
			if v == 0 {
				req.Header.Set("If-None-Match", "*")
			} else {
				req.Header.Set("If-Match", `"`+strconv.FormatUint(v, 10)+`"`)
			}
		}
	} else {
		body, err := json.Marshal(protocol.CommitRequest{Ops: w.ops, If: w.ifs})
		if err != nil {
			return err
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost,
			base+"/v1/collections/"+w.collection+"/commits", bytes.NewReader(body))
		if err != nil {
			return err
		}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var ans struct {
			Version uint64           `json:"version"`
			Record  *protocol.Record `json:"record"`
		}
		if err := json.Unmarshal(body, &ans); err != nil || ans.Version == 0 {
			t.Errorf("%s: 200 with body %s", w.token, body)
			return errBadAnswer
		}
		if w.single && (ans.Record == nil || ans.Record.Version != ans.Version ||
			ans.Record.ID != w.ops[0].ID || !bytes.Equal(ans.Record.Value, w.ops[0].Value)) {
			t.Errorf("%s: PUT answered %s", w.token, body)
			return errBadAnswer
		}
		h.learn(w, ans.Version)
		return nil
	case http.StatusPreconditionFailed, http.StatusNotFound:
		var e protocol.ErrorBody
		if json.Unmarshal(body, &e) != nil || e.Error == nil ||
			e.Error.Code != map[int]protocol.Code{412: protocol.CodePreconditionFailed, 404: protocol.CodeNotFound}[resp.StatusCode] {
			t.Errorf("%s: %d with body %s", w.token, resp.StatusCode, body)
			return errBadAnswer
		}
		h.refuse(w)
		return nil
	default:
		t.Errorf("%s: unexpected answer %d %s", w.token, resp.StatusCode, body)
		return errBadAnswer
	}
}

// loadStats counts the outcomes of one load phase.
type loadStats struct{ sent, acked, refused, unknown int }

// loadMinAcked is how many writes a load phase has acknowledged at least
// before it stops the server: however slow the machine, the server is
// stopped under load, with writes to check after the restart.
const loadMinAcked = 10

// load runs the writers against p until it stops answering, calling stop
// after delay, and once loadMinAcked writes were acknowledged. stopping
// tells the writers that transport errors are expected from then on.
func (h *history) load(t *testing.T, client *http.Client, p *proc, seed uint64, phase int, delay time.Duration, stop func()) loadStats {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stopping atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var st loadStats
	var acks atomic.Int64
	// However the test ends, no writer outlives this call.
	defer func() {
		cancel()
		wg.Wait()
	}()
	for wr := range crashWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(phase*1000+wr)))
			var mine loadStats
			defer func() {
				mu.Lock()
				st.sent += mine.sent
				mu.Unlock()
			}()
			for seq := 0; ctx.Err() == nil; seq++ {
				w := h.plan(rng, fmt.Sprintf("p%d-w%d-%d", phase, wr, seq))
				mine.sent++
				err := h.send(ctx, t, client, p.base, w)
				if err == nil {
					h.mu.Lock()
					if w.outcome == acked {
						acks.Add(1)
					}
					h.mu.Unlock()
					continue
				}
				if !errors.Is(err, errBadAnswer) && !stopping.Load() && ctx.Err() == nil {
					t.Errorf("%s: %v, before the server was stopped", w.token, err)
				}
				return
			}
		})
	}
	wait, guard := time.After(delay), hangGuard(t)
	for wait != nil || acks.Load() < loadMinAcked {
		select {
		case <-wait:
			wait = nil
		case <-time.After(10 * time.Millisecond):
		case <-p.exited:
			t.Fatalf("server exited under load: %v", p.err)
		case <-guard:
			t.Fatalf("%d writes acknowledged before the hang guard, want %d", acks.Load(), loadMinAcked)
		}
	}
	stopping.Store(true)
	stop()
	p.wait(t)
	cancel()
	wg.Wait()
	client.CloseIdleConnections()

	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.writes {
		if !strings.HasPrefix(w.token, fmt.Sprintf("p%d-", phase)) {
			continue
		}
		switch w.outcome {
		case acked:
			st.acked++
		case refused:
			st.refused++
		default:
			st.unknown++
		}
	}
	return st
}

// getJSON GETs url and decodes its 200 answer into v.
func getJSON(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// readEpochs records each collection's epoch before anything is written.
func (h *history) readEpochs(t *testing.T, client *http.Client, base string) {
	t.Helper()
	for _, c := range crashCollections {
		var hd protocol.Head
		getJSON(t, client, base+"/v1/collections/"+c+"/version", &hd)
		if hd.Epoch == "" || hd.Version != 0 {
			t.Fatalf("%s: fresh store at %+v, want an epoch at version 0", c, hd)
		}
		h.epochs[c] = hd.Epoch
	}
}

// changesPage is any answer of the changes endpoint.
type changesPage struct {
	Epoch     string            `json:"epoch"`
	Version   uint64            `json:"version"`
	Commits   []protocol.Commit `json:"commits"`
	Compacted bool              `json:"compacted"`
	Reset     bool              `json:"reset"`
}

// fetchLog reads every commit of a collection from version 1, page by page.
func fetchLog(t *testing.T, client *http.Client, base, coll, epoch string) (protocol.Head, []protocol.Commit) {
	t.Helper()
	var all []protocol.Commit
	var head protocol.Head
	for {
		var pg changesPage
		getJSON(t, client, fmt.Sprintf("%s/v1/collections/%s/changes?after=%d&epoch=%s", base, coll, len(all), epoch), &pg)
		if pg.Compacted || pg.Reset || pg.Epoch != epoch {
			t.Fatalf("%s: changes after %d: compacted=%v reset=%v epoch %q (want %q)", coll, len(all), pg.Compacted, pg.Reset, pg.Epoch, epoch)
		}
		head = protocol.Head{Epoch: pg.Epoch, Version: pg.Version}
		for _, cm := range pg.Commits {
			if cm.Version != uint64(len(all))+1 {
				t.Fatalf("%s: gap: commit %d follows %d", coll, cm.Version, len(all))
			}
			all = append(all, cm)
		}
		// A full cacheable page names its own end as version, not the
		// head: only an empty page says the log is exhausted.
		if len(pg.Commits) == 0 {
			break
		}
	}
	if uint64(len(all)) != head.Version {
		t.Fatalf("%s: the log holds commits 1..%d, the head is %d", coll, len(all), head.Version)
	}
	return head, all
}

// verify checks the history the server at base holds against every write
// sent so far, and returns each collection's head.
func (h *history) verify(t *testing.T, client *http.Client, base string) map[string]uint64 {
	t.Helper()
	heads := map[string]uint64{}
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, coll := range crashCollections {
		var vi protocol.Head
		getJSON(t, client, base+"/v1/collections/"+coll+"/version", &vi)
		if vi.Epoch != h.epochs[coll] {
			t.Fatalf("%s: epoch %q after restart, was %q", coll, vi.Epoch, h.epochs[coll])
		}
		head, log := fetchLog(t, client, base, coll, vi.Epoch)
		if head.Version < vi.Version {
			t.Fatalf("%s: the log ends at %d, the version poll said %d", coll, head.Version, vi.Version)
		}
		heads[coll] = head.Version

		// Every logged commit is exactly one write that was sent, and the
		// log replays: preconditions held and deletes found their record.
		type rec struct {
			value   json.RawMessage
			version uint64
		}
		state := map[string]rec{}
		at := map[string]uint64{}
		for _, cm := range log {
			if cm.At.IsZero() {
				fail("%s@%d: no time", coll, cm.Version)
			}
			tok := tokenOf(cm)
			w := h.writes[tok]
			switch {
			case w == nil:
				fail("%s@%d: commit %+v is no write that was sent", coll, cm.Version, cm)
				continue
			case w.collection != coll:
				fail("%s@%d: write %s was sent to %s", coll, cm.Version, tok, w.collection)
			case at[tok] != 0:
				fail("%s@%d: write %s applied twice (also at %d)", coll, cm.Version, tok, at[tok])
			case w.outcome == refused:
				fail("%s@%d: write %s was refused, yet it is in the log", coll, cm.Version, tok)
			case w.outcome == acked && w.version != cm.Version:
				fail("%s@%d: write %s was acknowledged at version %d", coll, cm.Version, tok, w.version)
			case w.outcome == unknown && h.answered:
				fail("%s@%d: write %s is in the log, but the stopping server did not answer it", coll, cm.Version, tok)
			}
			at[tok] = cm.Version
			if !sameOps(cm.Ops, w.ops) {
				fail("%s@%d: write %s logged with ops %s, sent %s", coll, cm.Version, tok, opsString(cm.Ops), opsString(w.ops))
				continue
			}
			for id, want := range w.ifs {
				if have := state[id].version; have != want {
					fail("%s@%d: write %s required %s at %d, it was at %d", coll, cm.Version, tok, id, want, have)
				}
			}
			for _, op := range cm.Ops {
				if op.Op == protocol.OpDelete {
					if _, ok := state[op.ID]; !ok {
						fail("%s@%d: write %s deleted missing record %s", coll, cm.Version, tok, op.ID)
					}
					delete(state, op.ID)
					continue
				}
				state[op.ID] = rec{op.Value, cm.Version}
			}
		}

		// Every acknowledged write is there, at its version.
		for _, w := range h.writes {
			if w.collection == coll && w.outcome == acked && at[w.token] != w.version {
				fail("%s: acknowledged write %s (version %d) is not in the log (found at %d)", coll, w.token, w.version, at[w.token])
			}
		}

		// The snapshot is the replayed log.
		var snap protocol.Snapshot
		getJSON(t, client, base+"/v1/collections/"+coll, &snap)
		if snap.Epoch != head.Epoch || snap.Version != head.Version {
			fail("%s: snapshot at %s:%d, log head %s:%d", coll, snap.Epoch, snap.Version, head.Epoch, head.Version)
		}
		if len(snap.Records) != len(state) {
			fail("%s: snapshot has %d records, the log replays to %d", coll, len(snap.Records), len(state))
		}
		for i, r := range snap.Records {
			if i > 0 && snap.Records[i-1].ID >= r.ID {
				fail("%s: snapshot not sorted by id at %q", coll, r.ID)
			}
			want, ok := state[r.ID]
			if !ok || want.version != r.Version || !bytes.Equal(want.value, r.Value) {
				fail("%s: snapshot has %s=%s@%d, the log replays to %s@%d (present %v)", coll, r.ID, r.Value, r.Version, want.value, want.version, ok)
			}
		}
	}
	if errs > 20 {
		t.Errorf("... and %d more", errs-20)
	}
	return heads
}

func sameOps(a, b []protocol.Op) bool {
	return slices.EqualFunc(a, b, func(x, y protocol.Op) bool {
		return x.Op == y.Op && x.ID == y.ID && bytes.Equal(x.Value, y.Value)
	})
}

func opsString(ops []protocol.Op) string {
	b, _ := json.Marshal(ops)
	return string(b)
}

// probe writes one record to each collection, checks that it is committed
// right after the head, and records it as an acknowledged write.
func (h *history) probe(t *testing.T, client *http.Client, base string, heads map[string]uint64, phase int) {
	t.Helper()
	for _, coll := range crashCollections {
		w := &write{
			token:      fmt.Sprintf("probe%d-%s", phase, coll),
			collection: coll,
			single:     true,
			ifs:        map[string]uint64{fmt.Sprintf("probe%d", phase): 0},
		}
		w.ops = []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprintf("probe%d", phase), Value: tokenValue(w.token, 0)}}
		h.writes[w.token] = w
		if err := h.send(context.Background(), t, client, base, w); err != nil {
			t.Fatalf("%s: write after restart: %v", coll, err)
		}
		if w.outcome != acked || w.version != heads[coll]+1 {
			t.Fatalf("%s: write after restart got outcome %d at version %d, want version %d", coll, w.outcome, w.version, heads[coll]+1)
		}
	}
}

// TestCrashRecovery kills the server with SIGKILL in the middle of
// concurrent writes, three times on the same data, and checks after each
// restart that the history explains every acknowledgement: no acknowledged
// commit lost, versions gap-free, no commit half-applied, and writing goes
// on at head+1.
func TestCrashRecovery(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	data := t.TempDir()
	h := newHistory()
	client := newClient()
	defer client.CloseIdleConnections()

	p := startServer(t, data)
	h.readEpochs(t, client, p.base)
	totalAcked := 0
	for cycle := 1; cycle <= crashCycles; cycle++ {
		delay := killMin + time.Duration(rng.Int64N(int64(killSpan)))
		st := h.load(t, client, p, seed, cycle, delay, func() {
			if err := p.cmd.Process.Kill(); err != nil {
				t.Fatalf("kill: %v", err)
			}
		})
		if err := p.wait(t); err == nil {
			t.Fatalf("cycle %d: the killed server exited normally", cycle)
		}
		if t.Failed() {
			t.FailNow()
		}
		totalAcked += st.acked
		p = startServer(t, data)
		heads := h.verify(t, client, p.base)
		t.Logf("cycle %d: SIGKILL after %v: %d writes sent, %d acknowledged, %d refused, %d unanswered; heads after restart %v",
			cycle, delay, st.sent, st.acked, st.refused, st.unknown, heads)
		if t.Failed() {
			t.FailNow()
		}
		h.probe(t, client, p.base, heads, cycle)
	}
	if totalAcked == 0 {
		t.Fatal("no write was acknowledged under load: the test proved nothing")
	}
	// The writes made after the last restart are consistent too.
	h.verify(t, client, p.base)
}

// TestGracefulShutdown stops the server with SIGTERM in the middle of
// concurrent writes and while a long-poll waits: the process exits 0, the
// long-poll gets its (empty) answer instead of a cut connection, and after
// a restart every acknowledged write is there.
func TestGracefulShutdown(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	data := t.TempDir()
	h := newHistory()
	h.answered = true
	client := newClient()
	defer client.CloseIdleConnections()

	p := startServer(t, data)
	h.readEpochs(t, client, p.base)

	// A long-poll on a collection nobody writes, on its own connection.
	type answer struct {
		status int
		cache  string
		body   []byte
		err    error
	}
	lpc := &http.Client{Transport: &http.Transport{}}
	defer lpc.CloseIdleConnections()
	sent := make(chan struct{})
	var sentOnce sync.Once
	lpCtx, lpCancel := context.WithCancel(context.Background())
	defer lpCancel()
	ctx := httptrace.WithClientTrace(lpCtx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { sentOnce.Do(func() { close(sent) }) },
	})
	lp := make(chan answer, 1)
	go func() {
		var a answer
		defer func() { lp <- a }()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/v1/collections/idle/changes?after=0&wait=60s", nil)
		if err != nil {
			a.err = err
			return
		}
		resp, err := lpc.Do(req)
		if err != nil {
			a.err = err
			return
		}
		defer resp.Body.Close()
		a.status, a.cache = resp.StatusCode, resp.Header.Get("Cache-Control")
		a.body, a.err = io.ReadAll(resp.Body)
	}()
	select {
	case <-sent:
	case a := <-lp:
		t.Fatalf("long-poll answered before the shutdown: %d %s %v", a.status, a.body, a.err)
	case <-hangGuard(t):
		t.Fatal("long-poll request not sent")
	}

	// The writers run for at least killMin after the long-poll was sent, so
	// the server holds it when the signal comes.
	delay := killMin + time.Duration(rng.Int64N(int64(killSpan)))
	st := h.load(t, client, p, seed, 1, delay, func() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
	})
	if err := p.wait(t); err != nil {
		t.Fatalf("after SIGTERM the server exited with %v, want status 0", err)
	}
	var a answer
	select {
	case a = <-lp:
	case <-hangGuard(t):
		t.Fatal("the long-poll got no answer after the server exited")
	}
	if a.err != nil {
		t.Fatalf("long-poll cut by the shutdown: %v", a.err)
	}
	var pg changesPage
	if err := json.Unmarshal(a.body, &pg); a.status != http.StatusOK || err != nil || pg.Commits == nil || len(pg.Commits) != 0 || pg.Version != 0 || a.cache != "no-store" {
		t.Fatalf("long-poll answered %d (Cache-Control %q) %s, want 200 no-store with no commits at version 0", a.status, a.cache, a.body)
	}
	if t.Failed() {
		t.FailNow()
	}

	p = startServer(t, data)
	heads := h.verify(t, client, p.base)
	t.Logf("SIGTERM after %v: %d writes sent, %d acknowledged, %d refused, %d unanswered; heads after restart %v",
		delay, st.sent, st.acked, st.refused, st.unknown, heads)
	if st.acked == 0 {
		t.Fatal("no write was acknowledged before the shutdown: the test proved nothing")
	}
	h.probe(t, client, p.base, heads, 1)
}
