package viewsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// ackLog records every write the server acknowledged: the commit version
// it answered and the ops that commit must hold.
type ackLog struct {
	mu     sync.Mutex
	ops    map[uint64][]protocol.Op
	dup    []uint64
	change chan struct{} // closed and replaced at every ack
}

func newAckLog() *ackLog {
	return &ackLog{ops: map[uint64][]protocol.Op{}, change: make(chan struct{})}
}

func (l *ackLog) add(version uint64, ops []protocol.Op) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.ops[version]; ok {
		l.dup = append(l.dup, version)
	}
	l.ops[version] = ops
	close(l.change)
	l.change = make(chan struct{})
}

// count returns how many acks there are, and a channel closed at the next.
func (l *ackLog) count() (int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ops), l.change
}

// readerLog is what one reader saw.
type readerLog struct {
	start   protocol.Cursor
	commits []protocol.Commit
	state   state
	err     error
	// polls counts requests; empty those that timed out without a
	// commit, immutable the pages marked cacheable.
	polls, empty, immutable int
}

// TestConcurrentWritersLongPollReaders is the ordering promise end to end,
// checked against a history: writers make random commits over HTTP (puts,
// patches, deletes and multi-op commits, with and without preconditions,
// some failing on purpose, some malformed) on a bbolt store that syncs
// every commit, while readers long-poll the changes from various starting
// points through small pages. Afterwards every reader must have seen
// exactly the commits after its start, in order, once each, each holding
// the ops its writer had acknowledged; every reader's state must equal the
// final snapshot; and the acknowledged versions must be exactly 1..head —
// no failed or malformed write made a commit, no commit went unanswered.
//
// The seed (logged; -seed or VIEWSYNC_SEED replays it) fixes every random
// choice of every writer and reader; the interleaving is the scheduler's.
func TestConcurrentWritersLongPollReaders(t *testing.T) {
	seed := testSeed(t)
	const (
		coll       = "board"
		nWriters   = 8
		writesEach = 100
		nReaders   = 8
		nIDs       = 12
		pageSize   = 8
		endID      = "end" // written last, alone, once the writers are done
	)
	st := openStore(t, boltstore.Options{}) // fsync on every commit
	hub := newHub(t, st)
	srv := serve(t, hub, &httpapi.Options{PageSize: pageSize})
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitTimeout)
	defer cancel()

	acks := newAckLog()
	writersDone := make(chan struct{})
	started := make(chan struct{}, nReaders)
	logs := make([]*readerLog, nReaders)
	var readers sync.WaitGroup
	for r := range nReaders {
		logs[r] = &readerLog{}
		rng := rand.New(rand.NewPCG(seed, 1000+uint64(r)))
		readers.Go(func() {
			logs[r].err = runReader(ctx, srv, coll, r, rng, acks, writersDone, started, logs[r], pageSize, endID)
		})
	}

	var writers sync.WaitGroup
	for w := range nWriters {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		writers.Go(func() {
			if err := runWriter(ctx, srv, coll, w, rng, writesEach, nIDs, acks); err != nil {
				t.Errorf("writer %d: %v", w, err)
			}
		})
	}
	writers.Wait()
	close(writersDone)
	for range nReaders {
		<-started
	}

	// The last commit: readers stop once they have applied it.
	r, err := srv.do(ctx, http.MethodPut, "/v1/collections/"+coll+"/records/"+endID, []byte(`true`), "Content-Type", "application/json")
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("PUT %s: %v %d %s", endID, err, r.status, r.body)
	}
	var end protocol.RecordResponse
	if err := json.Unmarshal(r.body, &end); err != nil {
		t.Fatal(err)
	}
	acks.add(end.Version, []protocol.Op{{Op: protocol.OpPut, ID: endID, Value: json.RawMessage(`true`)}})
	readers.Wait()

	var head protocol.Head
	srv.getJSON(t, "/v1/collections/"+coll+"/version", &head)
	var final protocol.Snapshot
	srv.getJSON(t, "/v1/collections/"+coll, &final)
	if head.Version != end.Version || final.Version != end.Version || final.Epoch != head.Epoch {
		t.Fatalf("head %+v, snapshot at %d, want both at the end marker's version %d", head, final.Version, end.Version)
	}

	// Every commit was acknowledged to exactly one writer.
	acks.mu.Lock()
	defer acks.mu.Unlock()
	if len(acks.dup) > 0 {
		t.Errorf("versions acknowledged twice: %v", acks.dup)
	}
	for v := uint64(1); v <= head.Version; v++ {
		if _, ok := acks.ops[v]; !ok {
			t.Errorf("commit %d exists but no write was acknowledged with it", v)
		}
	}
	if len(acks.ops) != int(head.Version) {
		t.Errorf("%d versions acknowledged, head is %d", len(acks.ops), head.Version)
	}
	polls, empty, immutable := 0, 0, 0
	for _, lg := range logs {
		polls, empty, immutable = polls+lg.polls, empty+lg.empty, immutable+lg.immutable
	}
	t.Logf("%d commits by %d writers; readers started at %v; %d polls, %d timed out empty, %d immutable pages",
		head.Version, nWriters, startsOf(logs), polls, empty, immutable)

	want := stateOf(final.Records)
	for r, lg := range logs {
		if lg.err != nil {
			t.Errorf("reader %d: %v", r, lg.err)
			continue
		}
		if lg.start.Epoch != "" && lg.start.Epoch != head.Epoch {
			t.Errorf("reader %d started in epoch %q, the collection is in %q", r, lg.start.Epoch, head.Epoch)
		}
		if n := int(head.Version - lg.start.Version); len(lg.commits) != n {
			t.Errorf("reader %d from %d saw %d commits, want %d", r, lg.start.Version, len(lg.commits), n)
		}
		for i, cm := range lg.commits {
			if want := lg.start.Version + uint64(i) + 1; cm.Version != want {
				t.Errorf("reader %d: commit #%d is version %d, want %d", r, i, cm.Version, want)
				break
			}
			if ack := acks.ops[cm.Version]; !opsEqual(cm.Ops, ack) {
				t.Errorf("reader %d: commit %d holds %v, the writer was acknowledged %v", r, cm.Version, opsString(cm.Ops), opsString(ack))
			}
		}
		if d := lg.state.diff(want); d != "" {
			t.Errorf("reader %d: state differs from the final snapshot: %s", r, d)
		}
	}
}

func startsOf(logs []*readerLog) []uint64 {
	var s []uint64
	for _, lg := range logs {
		s = append(s, lg.start.Version)
	}
	return s
}

func opsString(ops []protocol.Op) string {
	b, _ := json.Marshal(ops)
	return string(b)
}

// runWriter makes n random writes over HTTP and records the acknowledged
// ones. Each answer must be one the contract allows for that request; a
// writer's acknowledged versions must increase, since each of its writes
// starts after the previous one was acknowledged.
func runWriter(ctx context.Context, srv *apiServer, coll string, w int, rng *rand.Rand, n, nIDs int, acks *ackLog) error {
	recPath := func(id string) string { return "/v1/collections/" + coll + "/records/" + id }
	known := map[string]uint64{} // record versions this writer has seen
	var last uint64
	ack := func(version uint64, ops []protocol.Op) error {
		if version <= last {
			return fmt.Errorf("acknowledged version %d after %d", version, last)
		}
		last = version
		acks.add(version, ops)
		return nil
	}
	// expect checks the status of r against the allowed ones.
	expect := func(what string, r response, err error, ok ...int) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !slices.Contains(ok, r.status) {
			return fmt.Errorf("%s: status %d (%s), want one of %v", what, r.status, r.body, ok)
		}
		if r.status >= 400 && r.errorCode() == "" {
			return fmt.Errorf("%s: error %d without the contract's error body: %s", what, r.status, r.body)
		}
		return nil
	}
	// record handles the answer of a put or patch.
	record := func(id string, r response) error {
		var rr protocol.RecordResponse
		if err := json.Unmarshal(r.body, &rr); err != nil {
			return fmt.Errorf("decode %s: %w", r.body, err)
		}
		if rr.Record.ID != id || rr.Record.Version != rr.Version {
			return fmt.Errorf("write of %s answered %s", id, r.body)
		}
		known[id] = rr.Version
		return ack(rr.Version, []protocol.Op{{Op: protocol.OpPut, ID: id, Value: rr.Record.Value}})
	}
	deleted := func(id string, r response) error {
		var cr protocol.CommitResponse
		if err := json.Unmarshal(r.body, &cr); err != nil {
			return fmt.Errorf("decode %s: %w", r.body, err)
		}
		delete(known, id)
		return ack(cr.Version, []protocol.Op{{Op: protocol.OpDelete, ID: id}})
	}
	jsonCT := []string{"Content-Type", "application/json"}

	for k := range n {
		id := fmt.Sprintf("k%02d", rng.IntN(nIDs))
		value := fmt.Sprintf(`{"w":%d,"k":%d}`, w, k)
		what := fmt.Sprintf("write %d", k)
		switch op := rng.IntN(10); op {
		case 0, 1: // unconditional put, sometimes with insignificant whitespace
			body := value
			if rng.IntN(2) == 0 {
				body = fmt.Sprintf("{ \"w\" : %d,\n \"k\" : %d }", w, k)
			}
			r, err := srv.do(ctx, http.MethodPut, recPath(id), []byte(body), jsonCT...)
			if err := expect(what+" put", r, err, 200); err != nil {
				return err
			}
			var rr protocol.RecordResponse
			if json.Unmarshal(r.body, &rr) != nil || string(rr.Record.Value) != value {
				return fmt.Errorf("%s: put %s stored %s, want the compact %s", what, body, r.body, value)
			}
			if err := record(id, r); err != nil {
				return err
			}
		case 2: // create only
			r, err := srv.do(ctx, http.MethodPut, recPath(id), []byte(value), "Content-Type", "application/json", "If-None-Match", "*")
			if err := expect(what+" create", r, err, 200, 412); err != nil {
				return err
			}
			if r.status == 200 {
				if err := record(id, r); err != nil {
					return err
				}
			}
		case 3: // update at the version this writer last saw (often stale)
			v, ok := known[id]
			if !ok {
				v = uint64(1 + rng.IntN(50))
			}
			r, err := srv.do(ctx, http.MethodPut, recPath(id), []byte(value), "Content-Type", "application/json", "If-Match", strconv.Quote(strconv.FormatUint(v, 10)))
			if err := expect(what+" update", r, err, 200, 412); err != nil {
				return err
			}
			if r.status == 200 {
				if err := record(id, r); err != nil {
					return err
				}
			}
		case 4: // read, then update at that version
			g, err := srv.do(ctx, http.MethodGet, recPath(id), nil)
			if err := expect(what+" get", g, err, 200, 404); err != nil {
				return err
			}
			hdr := []string{"Content-Type", "application/json", "If-None-Match", "*"}
			if g.status == 200 {
				hdr = []string{"Content-Type", "application/json", "If-Match", g.header.Get("ETag")}
			}
			r, err := srv.do(ctx, http.MethodPut, recPath(id), []byte(value), hdr...)
			if err := expect(what+" read-modify-write", r, err, 200, 412); err != nil {
				return err
			}
			if r.status == 200 {
				if err := record(id, r); err != nil {
					return err
				}
			}
		case 5: // merge patch
			r, err := srv.do(ctx, http.MethodPatch, recPath(id), fmt.Appendf(nil, `{"p":%d,"k":null}`, k), "Content-Type", "application/merge-patch+json")
			if err := expect(what+" patch", r, err, 200, 404); err != nil {
				return err
			}
			if r.status == 200 {
				if err := record(id, r); err != nil {
					return err
				}
			}
		case 6: // delete, unconditional or at the version last seen
			hdr := []string{}
			if v, ok := known[id]; ok && rng.IntN(2) == 0 {
				hdr = []string{"If-Match", strconv.Quote(strconv.FormatUint(v, 10))}
			}
			r, err := srv.do(ctx, http.MethodDelete, recPath(id), nil, hdr...)
			if err := expect(what+" delete", r, err, 200, 404, 412); err != nil {
				return err
			}
			if r.status == 200 {
				if err := deleted(id, r); err != nil {
					return err
				}
			}
		case 7, 8: // multi-op commit, sometimes with preconditions
			req := protocol.CommitRequest{}
			for j := range 1 + rng.IntN(4) {
				oid := fmt.Sprintf("k%02d", rng.IntN(nIDs))
				if rng.IntN(4) == 0 {
					req.Ops = append(req.Ops, protocol.Op{Op: protocol.OpDelete, ID: oid})
				} else {
					req.Ops = append(req.Ops, protocol.Op{Op: protocol.OpPut, ID: oid, Value: fmt.Appendf(nil, `{"w":%d,"k":%d,"j":%d}`, w, k, j)})
				}
			}
			if rng.IntN(2) == 0 {
				req.If = map[string]uint64{}
				for _, o := range req.Ops[:1+rng.IntN(len(req.Ops))] {
					req.If[o.ID] = known[o.ID] // 0 if unknown: must not exist
				}
			}
			body, _ := json.Marshal(req)
			r, err := srv.do(ctx, http.MethodPost, "/v1/collections/"+coll+"/commits", body, jsonCT...)
			if err := expect(what+" commit "+string(body), r, err, 200, 404, 412); err != nil {
				return err
			}
			if r.status == 200 {
				var cr protocol.CommitResponse
				if err := json.Unmarshal(r.body, &cr); err != nil {
					return fmt.Errorf("%s: decode %s: %w", what, r.body, err)
				}
				for _, o := range req.Ops {
					known[o.ID] = cr.Version
					if o.Op == protocol.OpDelete {
						delete(known, o.ID)
					}
				}
				if err := ack(cr.Version, req.Ops); err != nil {
					return err
				}
			}
		case 9: // malformed: must be refused and change nothing
			bad := []struct {
				method, path, body string
				header             []string
				status             int
			}{
				{http.MethodPost, "/v1/collections/" + coll + "/commits", `{"ops":[{"op":"put","id":"x","value":1},{"op":"nope","id":"y"}]}`, jsonCT, 400},
				{http.MethodPost, "/v1/collections/" + coll + "/commits", `{"ops":[]}`, jsonCT, 400},
				{http.MethodPut, recPath(id), `{"w":`, jsonCT, 400},
				{http.MethodPut, recPath(id), value, []string{"Content-Type", "text/plain"}, 415},
				{http.MethodPut, recPath(id), value, []string{"Content-Type", "application/json", "If-Match", "12"}, 400},
			}
			b := bad[rng.IntN(len(bad))]
			r, err := srv.do(ctx, b.method, b.path, []byte(b.body), b.header...)
			if err := expect(what+" malformed "+b.method+" "+b.body, r, err, b.status); err != nil {
				return err
			}
		}
	}
	return nil
}

// runReader follows the collection through the changes endpoint with
// long-polls until it has applied the end marker, checking as it goes that
// commits come in order without gap or repeat. It starts at version 0 or,
// once some writes were acknowledged, from a snapshot.
func runReader(ctx context.Context, srv *apiServer, coll string, r int, rng *rand.Rand, acks *ackLog,
	writersDone <-chan struct{}, started chan<- struct{}, lg *readerLog, pageSize int, endID string) error {
	lg.state = state{}
	sendEpoch := true
	switch r % 4 {
	case 0: // from the beginning, never naming the epoch
		sendEpoch = false
	case 1: // from the beginning of the current epoch
		resp, err := srv.do(ctx, http.MethodGet, "/v1/collections/"+coll+"/version", nil)
		if err != nil {
			started <- struct{}{}
			return err
		}
		var hd protocol.Head
		if err := json.Unmarshal(resp.body, &hd); err != nil {
			started <- struct{}{}
			return fmt.Errorf("version: %s: %w", resp.body, err)
		}
		lg.start.Epoch = hd.Epoch
	default: // from a snapshot, taken after a random number of acks
		threshold := 1 + rng.IntN(200)
	wait:
		for {
			n, changed := acks.count()
			if n >= threshold {
				break
			}
			select {
			case <-changed:
			case <-writersDone:
				break wait
			case <-ctx.Done():
				started <- struct{}{}
				return ctx.Err()
			}
		}
		resp, err := srv.do(ctx, http.MethodGet, "/v1/collections/"+coll, nil)
		if err != nil {
			started <- struct{}{}
			return err
		}
		var snap protocol.Snapshot
		if err := json.Unmarshal(resp.body, &snap); err != nil {
			started <- struct{}{}
			return fmt.Errorf("snapshot: %s: %w", resp.body, err)
		}
		lg.start = protocol.Cursor{Epoch: snap.Epoch, Version: snap.Version}
		lg.state = stateOf(snap.Records)
	}
	started <- struct{}{}

	cur := lg.start
	epoch := cur.Epoch
	for {
		limit := 0
		if rng.IntN(3) == 0 {
			limit = 1 + rng.IntN(5)
		}
		q := protocol.Cursor{Version: cur.Version}
		if sendEpoch {
			q.Epoch = epoch
		}
		path := changesPath(coll, q, 2*time.Second, limit)
		resp, err := srv.do(ctx, http.MethodGet, path, nil)
		if err != nil {
			return err
		}
		if resp.status != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", path, resp.status, resp.body)
		}
		var ch changesBody
		if err := json.Unmarshal(resp.body, &ch); err != nil {
			return fmt.Errorf("GET %s: %s: %w", path, resp.body, err)
		}
		if ch.Reset || ch.Compacted || ch.Commits == nil {
			return fmt.Errorf("GET %s: reset=%v compacted=%v; want commits: the log holds every commit and the epoch never changes", path, ch.Reset, ch.Compacted)
		}
		if epoch == "" {
			epoch = ch.Epoch
		}
		if ch.Epoch != epoch {
			return fmt.Errorf("GET %s: epoch %q, earlier %q", path, ch.Epoch, epoch)
		}
		if len(ch.Commits) > pageSize || (limit > 0 && len(ch.Commits) > limit) {
			return fmt.Errorf("GET %s: %d commits, more than the page or the limit", path, len(ch.Commits))
		}
		if n := len(ch.Commits); n > 0 {
			lastV := ch.Commits[n-1].Version
			boundary := (cur.Version/uint64(pageSize) + 1) * uint64(pageSize)
			if lastV > boundary {
				return fmt.Errorf("GET %s: page ends at %d, past the aligned boundary %d", path, lastV, boundary)
			}
			if resp.header.Get("Cache-Control") == "public, max-age=31536000, immutable" {
				// An immutable page is full (it reaches the aligned boundary
				// or the limit), names its epoch, and carries its own end as
				// version so that its body never changes.
				full := lastV == boundary || (limit > 0 && n == limit)
				if !sendEpoch || !full || ch.Version != lastV {
					return fmt.Errorf("GET %s: page ending at %d (version %d, full %v) marked immutable", path, lastV, ch.Version, full)
				}
				lg.immutable++
			}
		}
		lg.polls++
		if len(ch.Commits) == 0 {
			lg.empty++
		}
		end := false
		for _, cm := range ch.Commits {
			if cm.Version != cur.Version+1 {
				return fmt.Errorf("GET %s: commit %d follows %d (gap or repeat)", path, cm.Version, cur.Version)
			}
			if end {
				return fmt.Errorf("GET %s: commit %d after the end marker", path, cm.Version)
			}
			lg.commits = append(lg.commits, cm)
			lg.state.applyCommit(cm)
			cur.Version = cm.Version
			for _, op := range cm.Ops {
				end = end || op.ID == endID
			}
		}
		if ch.Version < cur.Version {
			return fmt.Errorf("GET %s: head %d behind the commits it returned (%d)", path, ch.Version, cur.Version)
		}
		if end {
			if lg.start.Epoch == "" {
				lg.start.Epoch = epoch
			}
			return nil
		}
	}
}
