package bench

// Reading the changes endpoint, GET /v1/collections/{c}/changes: the
// catchup scenario's client, which keeps a copy of the records, and the
// streaming decoder of history's readers, which keeps nothing.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// changesURL returns the URL of the changes after cur, limit commits at
// most (0: the server's page size).
func changesURL(base, coll string, cur protocol.Cursor, limit int) string {
	q := url.Values{"after": {strconv.FormatUint(cur.Version, 10)}, "epoch": {cur.Epoch}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return base + "/v1/collections/" + coll + "/changes?" + q.Encode()
}

// changesBody is any answer of the changes endpoint: commits, a catch-up
// (Compacted) or a reset.
type changesBody struct {
	Epoch     string            `json:"epoch"`
	Version   uint64            `json:"version"`
	Commits   []protocol.Commit `json:"commits"`
	Compacted bool              `json:"compacted"`
	Reset     bool              `json:"reset"`
	Records   []protocol.Record `json:"records"`
	Deleted   []string          `json:"deleted"`
}

// changesReader is a polling client catching up: it keeps each record's
// version.
type changesReader struct {
	client *http.Client
	base   string
	coll   string
	limit  int

	cur   protocol.Cursor
	state map[string]uint64

	mu      sync.Mutex
	at      uint64
	elapsed time.Duration
	read    catchupRead
}

// newChangesReader returns the reader of the collection of t from cur,
// by pages of limit commits (0: the server's), on a connection of its own.
func newChangesReader(t *benchTarget, coll string, limit int, cur protocol.Cursor) *changesReader {
	client := &http.Client{Transport: &http.Transport{DialContext: t.dialer.dial}, Timeout: 5 * time.Minute}
	return &changesReader{client: client, base: t.base, coll: coll, limit: limit, cur: cur, state: map[string]uint64{}}
}

// progress returns the version reached, the pages and the bytes read.
func (r *changesReader) progress() (uint64, int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at, r.read.Pages, r.read.Bytes
}

// result returns the figures of the read from version from.
func (r *changesReader) result(from uint64) catchupRead {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.read
	res.From, res.To, res.Seconds = from, r.at, round3(r.elapsed.Seconds())
	res.CommitsPerSec = rate(int64(r.at-from), r.elapsed)
	return res
}

// readToEnd reads pages until one comes back empty.
func (r *changesReader) readToEnd(ctx context.Context) error {
	start := time.Now()
	defer func() {
		r.mu.Lock()
		r.elapsed = time.Since(start)
		r.mu.Unlock()
	}()
	for {
		u := changesURL(r.base, r.coll, r.cur, r.limit)
		reqStart := time.Now()
		b, cache, err := getBody(ctx, r.client, u)
		if err != nil {
			return err
		}
		var ch changesBody
		if err := json.Unmarshal(b, &ch); err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		done, err := r.apply(&ch, len(b), cache, time.Since(reqStart))
		if err != nil || done {
			return err
		}
	}
}

// apply applies one answer of size bytes to the copy; done is true for an
// empty page.
func (r *changesReader) apply(ch *changesBody, size int, cache string, took time.Duration) (done bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read.Requests++
	r.read.Bytes += int64(size)
	switch {
	case ch.Reset:
		clear(r.state)
		for _, rec := range ch.Records {
			r.state[rec.ID] = rec.Version
		}
		r.read.Resets++
		r.cur = protocol.Cursor{Epoch: ch.Epoch, Version: ch.Version}
	case ch.Compacted:
		if ch.Epoch != r.cur.Epoch || ch.Version < r.cur.Version {
			return false, fmt.Errorf("catch-up to %s:%d at cursor %s", ch.Epoch, ch.Version, r.cur)
		}
		for _, rec := range ch.Records {
			r.state[rec.ID] = rec.Version
		}
		for _, id := range ch.Deleted {
			delete(r.state, id)
		}
		cu := &catchupFigures{Covers: ch.Version - r.cur.Version, Records: len(ch.Records), Deleted: len(ch.Deleted), Bytes: size,
			Millis: round3(float64(took.Microseconds()) / 1e3)}
		if r.read.CatchUp != nil {
			cu.Covers += r.read.CatchUp.Covers
			cu.Records += r.read.CatchUp.Records
			cu.Deleted += r.read.CatchUp.Deleted
			cu.Bytes += r.read.CatchUp.Bytes
			cu.Millis += r.read.CatchUp.Millis
		}
		r.read.CatchUp = cu
		r.cur.Version = ch.Version
	default:
		if ch.Epoch != r.cur.Epoch {
			return false, fmt.Errorf("commits of epoch %s at cursor %s", ch.Epoch, r.cur)
		}
		if len(ch.Commits) == 0 {
			return true, nil
		}
		r.read.Pages++
		if cache == "public, max-age=31536000, immutable" {
			r.read.Immutable++
		}
		for _, cm := range ch.Commits {
			if cm.Version != r.cur.Version+1 {
				return false, fmt.Errorf("commit %d after version %d", cm.Version, r.cur.Version)
			}
			applyOps(r.state, cm)
			r.cur.Version = cm.Version
		}
		r.read.Commits += int64(len(ch.Commits))
	}
	r.at = r.cur.Version
	return false, nil
}

// applyOps applies a commit's ops to a copy that keeps each record's
// version.
func applyOps(state map[string]uint64, cm protocol.Commit) {
	for _, op := range cm.Ops {
		switch op.Op {
		case protocol.OpDelete:
			delete(state, op.ID)
		default:
			state[op.ID] = cm.Version
		}
	}
}

// verifyCopy compares the client's copy at cur with a snapshot; it
// returns how many records agree.
func verifyCopy(state map[string]uint64, cur protocol.Cursor, snap protocol.Snapshot) (int, error) {
	if snap.Epoch != cur.Epoch || snap.Version != cur.Version {
		return 0, fmt.Errorf("the copy is at %s, the snapshot at %s:%d", cur, snap.Epoch, snap.Version)
	}
	agree := 0
	for _, rec := range snap.Records {
		if v, ok := state[rec.ID]; ok && v == rec.Version {
			agree++
		}
	}
	if agree != len(snap.Records) || len(state) != len(snap.Records) {
		return agree, fmt.Errorf("%d records agree; the copy has %d, the snapshot %d", agree, len(state), len(snap.Records))
	}
	return agree, nil
}

// changesAnswer is what a reader needs of an answer of the changes
// endpoint.
type changesAnswer struct {
	epoch            string
	version          uint64
	reset, compacted bool
	commits, records int
	deleted          int
}

// decodeChanges decodes an answer of the changes endpoint as it arrives,
// one commit at a time, so that a page of hundreds of megabytes is never
// in the bench's memory at once; commit is called with each commit's
// version, in order.
func decodeChanges(rd io.Reader, commit func(uint64)) (changesAnswer, error) {
	var a changesAnswer
	dec := json.NewDecoder(rd)
	if err := expectDelim(dec, '{'); err != nil {
		return a, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return a, err
		}
		var skip json.RawMessage
		switch tok {
		case "epoch":
			err = dec.Decode(&a.epoch)
		case "version":
			err = dec.Decode(&a.version)
		case "reset":
			err = dec.Decode(&a.reset)
		case "compacted":
			err = dec.Decode(&a.compacted)
		case "commits":
			err = eachElement(dec, func() error {
				var c struct {
					Version uint64 `json:"version"`
				}
				if err := dec.Decode(&c); err != nil {
					return err
				}
				a.commits++
				commit(c.Version)
				return nil
			})
		case "records":
			err = eachElement(dec, func() error {
				a.records++
				return dec.Decode(&skip)
			})
		case "deleted":
			err = eachElement(dec, func() error {
				a.deleted++
				return dec.Decode(&skip)
			})
		default:
			err = dec.Decode(&skip)
		}
		if err != nil {
			return a, err
		}
	}
	return a, expectDelim(dec, '}')
}

// expectDelim reads the next token, which must be d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("found %v where %v was expected", tok, d)
	}
	return nil
}

// eachElement calls elem for each element of the array (or null) that
// comes next; elem decodes it.
func eachElement(dec *json.Decoder, elem func() error) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("found %v where an array was expected", tok)
	}
	for dec.More() {
		if err := elem(); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}
