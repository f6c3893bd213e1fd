package httpapi

import (
	"fmt"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// changesQuery is the parsed query of a changes request.
type changesQuery struct {
	cursor protocol.Cursor
	// epochGiven tells whether the client named its epoch; only then can a
	// page be immutable.
	epochGiven bool
	wait       time.Duration
	// limit is 0 when not given.
	limit int
	// client optionally names the polling client, so the cursor it sends
	// counts as what it has rendered (the visibility metric).
	client string
}

// checkQuery refuses a request to the API (/v1/) whose query string does
// not parse, on every endpoint, streams and WebSockets included: read with
// url.URL.Query, a pair with a malformed %-escape or after a ';' would be
// dropped silently, and the request served as if it had not been sent.
func checkQuery(r *http.Request) error {
	if r.URL.RawQuery == "" || !strings.HasPrefix(r.URL.Path, "/v1/") {
		return nil
	}
	_, err := protocol.ParseQuery(r.URL.RawQuery)
	return err
}

// changesParams are the parameters of a changes request, each given at
// most once.
var changesParams = []string{"after", "epoch", "wait", "limit", "client"}

// parseChangesQuery parses the raw query of a changes request: after,
// epoch, wait, limit and client, each at most once. Unknown parameters are
// ignored (cache busters); malformed known ones, and a query string that
// does not parse, are errors.
func parseChangesQuery(raw string, maxWait time.Duration) (changesQuery, error) {
	var cq changesQuery
	q, err := protocol.ParseQuery(raw, changesParams...)
	if err != nil {
		return cq, fmt.Errorf("%w: %w", viewsync.ErrInvalid, err)
	}
	if vs, ok := q["after"]; ok {
		v, err := protocol.ParseVersion(vs[0])
		if err != nil {
			return cq, fmt.Errorf("%w: after: %w", viewsync.ErrInvalid, err)
		}
		cq.cursor.Version = v
	}
	if vs, ok := q["epoch"]; ok {
		if err := protocol.ValidateEpoch(vs[0]); err != nil {
			return cq, fmt.Errorf("%w: epoch: %w", viewsync.ErrInvalid, err)
		}
		cq.cursor.Epoch = vs[0]
		cq.epochGiven = vs[0] != ""
	}
	if s := q.Get("wait"); s != "" {
		d, err := parseWait(s)
		if err != nil {
			return cq, err
		}
		if d > maxWait {
			return cq, fmt.Errorf("%w: wait %s is over the limit of %s", viewsync.ErrInvalid, d, maxWait)
		}
		cq.wait = d
	}
	if s := q.Get("client"); s != "" {
		if err := protocol.ValidateEpoch(s); err != nil || len(s) > 64 {
			return cq, fmt.Errorf("%w: client must be 1-64 characters of [A-Za-z0-9_-], got %q", viewsync.ErrInvalid, s)
		}
		cq.client = s
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return cq, fmt.Errorf("%w: limit must be a positive integer, got %q", viewsync.ErrInvalid, s)
		}
		cq.limit = n
	}
	return cq, nil
}

// parseWait accepts a Go duration ("25s", "1m") or whole seconds ("25").
func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 3600 {
			return 0, fmt.Errorf("%w: wait %q out of range", viewsync.ErrInvalid, s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: wait must be a duration like 25s, got %q", viewsync.ErrInvalid, s)
	}
	return d, nil
}

// pageLimit returns how many commits a page after `after` may hold: up to
// the next multiple of pageSize, and at most limit when given.
func pageLimit(after uint64, pageSize, limit int) int {
	ps := uint64(pageSize)
	n := int(ps - after%ps)
	if limit > 0 && limit < n {
		n = limit
	}
	return n
}

// trimPage returns how many of the k commits read after `after` a page
// keeps when its byte bound cut it short of its full size: up to the
// farthest boundary it reaches among the multiples of pageSize, then of the
// powers of two below it, largest first, down to 1. Each answer is the same
// for every reader at that cursor, and readers at different cursors soon
// meet on the same boundaries (each power of two divides the larger ones),
// so they share cached pages even when commits are large.
func trimPage(after uint64, pageSize, k int) int {
	last := after + uint64(k)
	step := uint64(max(pageSize, 1))
	for step > 1 {
		if end := (after/step + 1) * step; end <= last {
			return int(end - after)
		}
		if p := uint64(1) << (bits.Len64(step) - 1); p < step {
			step = p // from pageSize down to the power of two below it
		} else {
			step /= 2
		}
	}
	return k
}
