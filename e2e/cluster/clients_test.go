package cluster

// The tests' clients: writers that commit over HTTP and record every
// acknowledged commit, and subscribers (SSE and WebSocket) that follow a
// collection from a cursor, reconnect and resume from their cursor when
// their connection ends (to the next of their nodes when one refuses
// them), and record everything they receive.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/protocol"
)

// opsKey is a commit's ops exactly: kinds, ids and value bytes, in order.
func opsKey(ops []protocol.Op) string {
	var b strings.Builder
	for _, op := range ops {
		b.WriteString(string(op.Op))
		b.WriteByte(0)
		b.WriteString(op.ID)
		b.WriteByte(0)
		b.Write(op.Value)
		b.WriteByte(0xff)
	}
	return b.String()
}

// opsString summarises ops for messages.
func opsString(ops []protocol.Op) string {
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %s=%s", op.Op, op.ID, op.Value)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// ledger records the commits the writers got acknowledged.
type ledger struct {
	mu sync.Mutex
	// acked maps version → the ops acknowledged at it.
	acked map[uint64][]protocol.Op
	// landed lists the ids of commits whose answer was lost (an error)
	// but which a retry found made (412: the record exists): committed,
	// never acknowledged.
	landed []string
	// byNode counts the acknowledged commits by the node they went
	// through.
	byNode map[string]int
	// errs keeps the first errors of failed attempts, for the log.
	errs []string
	// n counts the acknowledged commits; failures the attempts that
	// failed and were retried.
	n, failures atomic.Int64
}

func newLedger() *ledger {
	return &ledger{acked: map[uint64][]protocol.Op{}, byNode: map[string]int{}}
}

// record notes a commit acknowledged through node; a version acknowledged
// twice is an error.
func (l *ledger) record(v uint64, ops []protocol.Op, node string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.acked[v]; ok {
		return fmt.Errorf("version %d acknowledged twice: %s and %s", v, opsString(prev), opsString(ops))
	}
	l.acked[v] = ops
	l.byNode[node]++
	l.n.Add(1)
	return nil
}

// counts returns the acknowledged commits by node.
func (l *ledger) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.byNode)
}

// waitFor waits until n commits were acknowledged in all, or the guard
// ends (false).
func (l *ledger) waitFor(n int64, guard time.Duration) bool {
	deadline := time.Now().Add(guard)
	for l.n.Load() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// writer commits to one collection through one node. Each commit puts
// 1-3 records of fresh ids, all with the precondition "must not exist":
// so a retry of a commit whose answer was lost cannot make it twice, and
// tells (412) that the first attempt was made.
type writer struct {
	name   string
	node   string
	client *http.Client
	base   string
	coll   string
	seq    int
}

// plan returns the ops of the writer's next commit.
func (w *writer) plan() []protocol.Op {
	w.seq++
	n := 1 + w.seq%3
	ops := make([]protocol.Op, n)
	for j := range ops {
		ops[j] = protocol.Op{
			Op:    protocol.OpPut,
			ID:    fmt.Sprintf("%s-%d-%d", w.name, w.seq, j),
			Value: json.RawMessage(fmt.Sprintf(`{"w":%q,"seq":%d,"j":%d}`, w.name, w.seq, j)),
		}
	}
	return ops
}

// errTaken is a 412 answer: a record the commit creates already exists.
var errTaken = errors.New("precondition failed")

// send sends one commit: a single put as PUT with If-None-Match: *, more
// as POST …/commits with "if". It returns the version acknowledged.
func (w *writer) send(ctx context.Context, ops []protocol.Op) (uint64, error) {
	var req *http.Request
	var err error
	if len(ops) == 1 {
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, w.base+"/v1/collections/"+w.coll+"/records/"+ops[0].ID, bytes.NewReader(ops[0].Value))
		if err != nil {
			return 0, err
		}
		req.Header.Set("If-None-Match", "*")
	} else {
		ifs := map[string]uint64{}
		for _, op := range ops {
			ifs[op.ID] = 0
		}
		body, err := json.Marshal(protocol.CommitRequest{Ops: ops, If: ifs})
		if err != nil {
			return 0, err
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, w.base+"/v1/collections/"+w.coll+"/commits", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusPreconditionFailed:
		return 0, fmt.Errorf("%w: %s %s: %s", errTaken, req.Method, req.URL.Path, b)
	default:
		return 0, fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	var ans protocol.RecordResponse
	if err := json.Unmarshal(b, &ans); err != nil || ans.Version == 0 {
		return 0, fmt.Errorf("%s %s: answer %s (%v)", req.Method, req.URL.Path, b, err)
	}
	if len(ops) == 1 && (ans.Record.ID != ops[0].ID || !bytes.Equal(ans.Record.Value, ops[0].Value) || ans.Record.Version != ans.Version) {
		return 0, fmt.Errorf("PUT %s answered %s", ops[0].ID, b)
	}
	return ans.Version, nil
}

// run commits until stop is closed (or count commits were made, when
// count > 0), recording each acknowledged commit. With retry, a failed
// attempt is retried (same ops) until it is acknowledged or found made;
// without, it fails the run.
func (w *writer) run(ctx context.Context, stop <-chan struct{}, count int, retry bool, led *ledger) error {
	for i := 0; count <= 0 || i < count; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		ops := w.plan()
		for attempt := 0; ; attempt++ {
			v, err := w.send(ctx, ops)
			if err == nil {
				if err := led.record(v, ops, w.node); err != nil {
					return err
				}
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %v", opsString(ops), ctx.Err())
			}
			if errors.Is(err, errTaken) && attempt == 0 {
				// Fresh records cannot exist yet.
				return fmt.Errorf("%s: %w", opsString(ops), err)
			}
			if retry && errors.Is(err, errTaken) {
				// An earlier attempt was made, its answer lost.
				led.mu.Lock()
				led.landed = append(led.landed, ops[0].ID)
				led.mu.Unlock()
				break
			}
			if !retry {
				return fmt.Errorf("%s: %w", opsString(ops), err)
			}
			if led.failures.Add(1) <= 10 {
				led.mu.Lock()
				led.errs = append(led.errs, fmt.Sprintf("%s (attempt %d): %v", w.name, attempt+1, err))
				led.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// getJSON GETs url and decodes its 200 answer.
func getJSON[T any](ctx context.Context, client *http.Client, url string) (T, error) {
	var v T
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return v, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return v, err
	}
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("GET %s: %v in %.200s", url, err, b)
	}
	return v, nil
}

// readLog reads a collection's whole log through a node, page by page of
// GET /changes, and checks it is contiguous from version 1 to the head it
// was read at.
func readLog(ctx context.Context, client *http.Client, base, coll string, epoch string) ([]protocol.Commit, error) {
	var log []protocol.Commit
	for {
		after := uint64(len(log))
		ch, err := getJSON[protocol.Changes](ctx, client, fmt.Sprintf("%s/v1/collections/%s/changes?after=%d&epoch=%s&limit=500", base, coll, after, epoch))
		if err != nil {
			return nil, err
		}
		if ch.Epoch != epoch {
			return nil, fmt.Errorf("changes after %d: epoch %s, want %s", after, ch.Epoch, epoch)
		}
		for i, c := range ch.Commits {
			if c.Version != after+uint64(i)+1 {
				return nil, fmt.Errorf("changes after %d: commit %d has version %d: the log is not contiguous", after, i, c.Version)
			}
		}
		log = append(log, ch.Commits...)
		if len(ch.Commits) == 0 {
			if ch.Version != after {
				return nil, fmt.Errorf("changes after %d: no commits, head %d", after, ch.Version)
			}
			return log, nil
		}
	}
}

// event is one thing a subscriber received.
type event struct {
	kind    string // "commit", "reset", "catchup"
	epoch   string
	version uint64
	key     string // a commit's opsKey
	ops     []protocol.Op
	// records is a reset's snapshot: id → value.
	records map[string]string
}

// follower is one client following one collection, over SSE or
// WebSocket, across reconnections.
type follower struct {
	name  string
	coll  string
	isWS  bool
	bases []string
	// client makes the connections (SSE) and the upgrades (WebSocket).
	client *http.Client
	t      *testing.T

	mu sync.Mutex
	// at is the index in bases of the node in use.
	at int
	// cur is the cursor after the last event; none until the first
	// event when the follower started without one.
	cur       protocol.Cursor
	hasCursor bool
	// bare is set when the follower started without a cursor.
	bare   bool
	events []event
	// conns lists the base of each connection that streamed.
	conns []string
	// fatal is a protocol violation that ended the follower.
	fatal error
}

// newFollower returns a follower starting from cur, or without a cursor
// (a reset first) when cur is nil.
func newFollower(t *testing.T, name, coll string, isWS bool, client *http.Client, cur *protocol.Cursor, bases ...string) *follower {
	f := &follower{t: t, name: name, coll: coll, isWS: isWS, client: client, bases: bases}
	if cur != nil {
		f.cur, f.hasCursor = *cur, true
	} else {
		f.bare = true
	}
	return f
}

// version returns the version the follower is at.
func (f *follower) version() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur.Version
}

func (f *follower) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

// connections returns the bases of the connections that streamed.
func (f *follower) connections() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.conns...)
}

// errRetry marks a connection that failed in a way a client retries:
// refused, cut, or answered with an error status.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }

// run follows the collection until ctx ends. A connection that cannot be
// made moves the follower to its next node; one that ends is made again
// from the cursor.
func (f *follower) run(ctx context.Context) {
	for ctx.Err() == nil {
		f.mu.Lock()
		base := f.bases[f.at]
		f.mu.Unlock()
		var streamed bool
		var err error
		if f.isWS {
			streamed, err = f.websocket(ctx, base)
		} else {
			streamed, err = f.sse(ctx, base)
		}
		if ctx.Err() != nil {
			return
		}
		if _, ok := err.(errRetry); !ok && err != nil {
			f.mu.Lock()
			f.fatal = err
			f.mu.Unlock()
			return
		}
		if !streamed {
			f.mu.Lock()
			f.at = (f.at + 1) % len(f.bases)
			f.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// add records an event and moves the cursor.
func (f *follower) add(e event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	f.cur, f.hasCursor = protocol.Cursor{Epoch: e.epoch, Version: e.version}, true
}

// connected records a connection that streams.
func (f *follower) connected(base string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns = append(f.conns, base)
}

// cursor returns the cursor to resume from, if the follower has one.
func (f *follower) cursor() (protocol.Cursor, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.hasCursor
}

// where describes the follower's position for messages.
func (f *follower) where() string {
	cur, ok := f.cursor()
	if !ok {
		return "no cursor"
	}
	return cur.String()
}

// sse follows the collection over one event stream, from the cursor
// (Last-Event-ID). It reports whether the stream was established.
func (f *follower) sse(ctx context.Context, base string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/collections/"+f.coll+"/events", nil)
	if err != nil {
		return false, err
	}
	if cur, ok := f.cursor(); ok {
		req.Header.Set("Last-Event-ID", cur.String())
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return false, errRetry{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		err := fmt.Errorf("GET %s events with Last-Event-ID %s: %d %s", base, req.Header.Get("Last-Event-ID"), resp.StatusCode, b)
		if resp.StatusCode >= 500 {
			return false, errRetry{err}
		}
		return false, err
	}
	f.connected(base)
	br := bufio.NewReader(resp.Body)
	var id, name, data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return true, errRetry{fmt.Errorf("event stream from %s ended at %s: %w", base, f.where(), err)}
		}
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			if line[0] == ':' {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				id = v
			case "event":
				name = v
			case "data":
				if data != "" {
					data += "\n"
				}
				data += v
			}
			continue
		}
		if name == "" {
			id, data = "", ""
			continue // the retry hint
		}
		if err := f.sseEvent(id, name, data); err != nil {
			return true, err
		}
		id, name, data = "", "", ""
	}
}

// sseEvent records one event of a stream; its id must be the cursor
// after it.
func (f *follower) sseEvent(id, name, data string) error {
	cur, err := protocol.ParseCursor(id)
	if err != nil {
		return fmt.Errorf("%s event with id %q: %w", name, id, err)
	}
	e := event{kind: name, epoch: cur.Epoch}
	switch name {
	case "commit":
		var c protocol.Commit
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return fmt.Errorf("commit %s: %v in %.200s", id, err, data)
		}
		e.version, e.key, e.ops = c.Version, opsKey(c.Ops), c.Ops
	case "reset":
		var s protocol.Snapshot
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			return fmt.Errorf("reset %s: %v in %.200s", id, err, data)
		}
		e.epoch, e.version, e.records = s.Epoch, s.Version, recordMap(s.Records)
	case "catchup":
		var cu protocol.CatchUp
		if err := json.Unmarshal([]byte(data), &cu); err != nil {
			return fmt.Errorf("catch-up %s: %v in %.200s", id, err, data)
		}
		e.epoch, e.version = cu.Epoch, cu.Version
	case "error":
		return errRetry{fmt.Errorf("error event: %s", data)}
	default:
		return fmt.Errorf("unknown event %q", name)
	}
	if (protocol.Cursor{Epoch: e.epoch, Version: e.version}) != cur {
		return fmt.Errorf("%s event with id %s is at %s:%d", name, id, e.epoch, e.version)
	}
	f.add(e)
	return nil
}

// websocket follows the collection over one connection, subscribing with
// after and epoch. It reports whether the subscription was sent.
func (f *follower) websocket(ctx context.Context, base string) (bool, error) {
	c, resp, err := wstest.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/ws", &wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
		NetDial:      wstest.NetDialOf(f.client),
		ReadLimit:    64 << 20,
	})
	if err != nil {
		if resp != nil && resp.StatusCode < 500 && resp.StatusCode != 0 {
			return false, fmt.Errorf("dial %s: %w (status %d)", base, err, resp.StatusCode)
		}
		return false, errRetry{err}
	}
	defer c.CloseNow()
	f.connected(base)
	m := &protocol.SubscribeMessage{Collection: f.coll}
	if cur, ok := f.cursor(); ok {
		v := cur.Version
		m.After, m.Epoch = &v, cur.Epoch
	}
	b, err := json.Marshal(m)
	if err != nil {
		return true, err
	}
	if err := c.WriteMessage(ctx, gws.OpText, b); err != nil {
		return true, errRetry{fmt.Errorf("subscribe on %s: %w", base, err)}
	}
	for {
		op, b, err := c.ReadMessage(ctx)
		if err != nil {
			return true, errRetry{fmt.Errorf("connection to %s ended at %s: %w", base, f.where(), err)}
		}
		if op != gws.OpText {
			return true, fmt.Errorf("server sent a message of opcode %d", op)
		}
		m, err := protocol.DecodeServerMessage(b)
		if err != nil {
			return true, fmt.Errorf("%w: %.200s", err, b)
		}
		if m.Type == protocol.TypeError {
			// Say, the collection cannot be read right now: resubscribe.
			return true, errRetry{fmt.Errorf("server error %s: %s", m.Code, m.Message)}
		}
		if m.Collection != f.coll {
			return true, fmt.Errorf("a %s message of %q, not subscribed to", m.Type, m.Collection)
		}
		e := event{kind: m.Type, epoch: m.Epoch, version: m.Version}
		switch m.Type {
		case protocol.TypeCommit:
			e.key, e.ops = opsKey(m.Ops), m.Ops
		case protocol.TypeReset:
			e.records = recordMap(m.Records)
		case protocol.TypeCatchUp:
		default:
			return true, fmt.Errorf("unexpected %s message: %.200s", m.Type, b)
		}
		f.add(e)
	}
}

// check verifies that the follower received exactly the log: commits
// 1..N of epoch (or, when it started without a cursor, a reset at some
// version V holding the log replayed to V, then commits V+1..N), in order,
// each once, each with the log's ops, and nothing else (no other reset, no
// catch-up).
func (f *follower) check(epoch string, log []protocol.Commit) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fatal != nil {
		return f.fatal
	}
	events := f.events
	var at uint64
	if f.startedBare() {
		if len(events) == 0 || events[0].kind != protocol.TypeReset {
			return fmt.Errorf("started without a cursor, but the first event is not a reset")
		}
		r := events[0]
		if r.epoch != epoch || r.version > uint64(len(log)) {
			return fmt.Errorf("reset to %s:%d; the log is %s:1..%d", r.epoch, r.version, epoch, len(log))
		}
		if want := replay(log[:r.version]); !maps.Equal(r.records, want) {
			return fmt.Errorf("reset at version %d holds %d records, the log replayed to %d has %d; they differ", r.version, len(r.records), r.version, len(want))
		}
		at, events = r.version, events[1:]
	}
	for i, e := range events {
		want := at + uint64(i) + 1
		switch {
		case e.kind != protocol.TypeCommit:
			return fmt.Errorf("event %d: a %s to %s:%d where commit %d was due", i, e.kind, e.epoch, e.version, want)
		case e.epoch != epoch:
			return fmt.Errorf("event %d: commit %d in epoch %s, want %s", i, e.version, e.epoch, epoch)
		case e.version < want:
			return fmt.Errorf("event %d: commit %d again (a duplicate; commit %d was due)", i, e.version, want)
		case e.version > want:
			return fmt.Errorf("event %d: commit %d where commit %d was due (a gap of %d)", i, e.version, want, e.version-want)
		case want > uint64(len(log)):
			return fmt.Errorf("event %d: commit %d beyond the log's head %d", i, e.version, len(log))
		case e.key != opsKey(log[want-1].Ops):
			return fmt.Errorf("commit %d: ops %s, the log has %s", e.version, opsString(e.ops), opsString(log[want-1].Ops))
		}
	}
	if got := at + uint64(len(events)); got != uint64(len(log)) {
		return fmt.Errorf("ended at version %d, the log's head is %d", got, len(log))
	}
	return nil
}

// startedBare reports whether the follower started without a cursor.
func (f *follower) startedBare() bool { return f.bare }

// describe summarises the follower for a failure message.
func (f *follower) describe() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): at %s (cursor %v), %d events, connections %v; last:", f.name, f.coll, f.cur, f.hasCursor, len(f.events), f.conns)
	for _, e := range f.events[max(0, len(f.events)-8):] {
		fmt.Fprintf(&b, " %s@%d", e.kind, e.version)
	}
	return b.String()
}

// followers is a set of followers run together. It is used from the
// test's goroutine only.
type followers struct {
	t      *testing.T
	list   []*follower
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startFollowers runs every follower until stop.
func startFollowers(t *testing.T, list []*follower) *followers {
	ctx, cancel := context.WithCancel(context.Background())
	fs := &followers{t: t, ctx: ctx, cancel: cancel}
	t.Cleanup(fs.stop)
	fs.add(list)
	return fs
}

// add starts more followers in the set.
func (fs *followers) add(list []*follower) {
	fs.list = append(fs.list, list...)
	for _, f := range list {
		fs.wg.Go(func() { f.run(fs.ctx) })
	}
}

// stop ends the followers and waits for them.
func (fs *followers) stop() {
	fs.cancel()
	fs.wg.Wait()
}

// waitConnected waits until every follower streams (has made n
// connections), or the guard ends.
func (fs *followers) waitConnected(n int) error {
	deadline := time.Now().Add(clusterWait)
	for _, f := range fs.list {
		for len(f.connections()) < n {
			if err := f.failed(); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not connected after %v: %s", f.name, clusterWait, f.describe())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// waitAt waits until every follower is at version v at least, or one
// failed, or the guard ends.
func (fs *followers) waitAt(v uint64) error {
	deadline := time.Now().Add(clusterWait)
	for _, f := range fs.list {
		for f.version() < v {
			if err := f.failed(); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			if time.Now().After(deadline) {
				var behind []string
				for _, g := range fs.list {
					if g.version() < v {
						behind = append(behind, g.describe())
					}
				}
				return fmt.Errorf("%d of %d subscribers not at version %d after %v:\n  %s", len(behind), len(fs.list), v, clusterWait, strings.Join(behind, "\n  "))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// checkAll checks every follower against the log.
func (fs *followers) checkAll(epoch string, log []protocol.Commit) {
	fs.t.Helper()
	bad := 0
	for _, f := range fs.list {
		if err := f.check(epoch, log); err != nil {
			bad++
			if bad <= 10 {
				fs.t.Errorf("%s: %v\n  %s", f.name, err, f.describe())
			}
		}
	}
	if bad > 10 {
		fs.t.Errorf("... %d subscribers failed in all", bad)
	}
}

// headOf reads a collection's head through a node.
func headOf(ctx context.Context, client *http.Client, base, coll string) (protocol.Head, error) {
	return getJSON[protocol.Head](ctx, client, base+"/v1/collections/"+coll+"/version")
}

// recordMap returns records as id → value.
func recordMap(recs []protocol.Record) map[string]string {
	m := make(map[string]string, len(recs))
	for _, r := range recs {
		m[r.ID] = string(r.Value)
	}
	return m
}
