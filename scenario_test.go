package viewsync_test

// Fixtures shared by the tests of this package: a hub on a real bbolt store,
// a client's view of a collection, and, for the end-to-end scenarios
// (catchup_test.go, concurrent_test.go), the hub served over real HTTP by
// transport/httpapi with a small client.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

var seedFlag = flag.Int64("seed", 0, "seed of the randomised tests; 0 takes one from the clock (env VIEWSYNC_SEED works too)")

// testSeed returns the seed of a randomised test, from -seed, else from
// $VIEWSYNC_SEED, else from the clock, and logs it so a failure can be
// replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		if s := os.Getenv("VIEWSYNC_SEED"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("VIEWSYNC_SEED=%q: %v", s, err)
			}
			seed = v
		}
	}
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -seed=%d or VIEWSYNC_SEED=%d)", seed, seed, seed)
	return uint64(seed)
}

// apiServer is a hub served by the HTTP API on a local port, with a client.
type apiServer struct {
	url string
	hc  *http.Client
}

// serve serves hub over HTTP until the test ends.
func serve(t testing.TB, hub *viewsync.Hub, opts *httpapi.Options) *apiServer {
	t.Helper()
	api, err := httpapi.New(hub, opts)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	srv := httptest.NewServer(api)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return &apiServer{url: srv.URL, hc: &http.Client{Transport: tr}}
}

// response is a whole HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode returns the contract's error code of an error response.
func (r response) errorCode() protocol.Code {
	var e protocol.ErrorBody
	if json.Unmarshal(r.body, &e) != nil || e.Error == nil {
		return ""
	}
	return e.Error.Code
}

// do makes one request; header holds name, value pairs.
func (s *apiServer) do(ctx context.Context, method, path string, body []byte, header ...string) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// getJSON GETs path, requires 200 and decodes the body into v. Only for
// the test's own goroutine.
func (s *apiServer) getJSON(t testing.TB, path string, v any) response {
	t.Helper()
	r, err := s.do(t.Context(), http.MethodGet, path, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("GET %s: decode %s: %v", path, r.body, err)
	}
	return r
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

// changesPath is the changes URL of collection c after a cursor; wait and
// limit are left out when zero.
func changesPath(c string, cur protocol.Cursor, wait time.Duration, limit int) string {
	p := fmt.Sprintf("/v1/collections/%s/changes?after=%d", c, cur.Version)
	if cur.Epoch != "" {
		p += "&epoch=" + cur.Epoch
	}
	if wait > 0 {
		p += "&wait=" + wait.String()
	}
	if limit > 0 {
		p += "&limit=" + strconv.Itoa(limit)
	}
	return p
}

// waitTimeout bounds every wait of these tests for something that must
// happen. It is a hang detector, not a performance bound: reaching it
// means the awaited event never came.
const waitTimeout = 20 * time.Second

// openStore opens a bbolt store in a fresh temporary directory and closes
// it when the test ends.
func openStore(t testing.TB, o boltstore.Options) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// newHub returns a hub on s, closed when the test ends (before s, since
// cleanups run last-in first-out).
func newHub(t testing.TB, s store.Store, opts ...viewsync.Option) *viewsync.Hub {
	t.Helper()
	h, err := viewsync.New(s, opts...)
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// collection returns the named collection of h.
func collection(t testing.TB, h *viewsync.Hub, name string) *viewsync.Collection {
	t.Helper()
	c, err := h.Collection(name)
	if err != nil {
		t.Fatalf("collection %q: %v", name, err)
	}
	return c
}

// testHub is the usual fixture: a hub on a fresh bbolt store (with fsync)
// and one collection of it.
func testHub(t testing.TB, opts ...viewsync.Option) (*viewsync.Hub, *viewsync.Collection) {
	t.Helper()
	h := newHub(t, openStore(t, boltstore.Options{}), opts...)
	return h, collection(t, h, "items")
}

func head(t testing.TB, c *viewsync.Collection) viewsync.Head {
	t.Helper()
	hd, err := c.Head(t.Context())
	if err != nil {
		t.Fatalf("head of %s: %v", c.Name(), err)
	}
	return hd
}

func put(t testing.TB, c *viewsync.Collection, id, value string) viewsync.Record {
	t.Helper()
	r, err := c.Put(t.Context(), id, json.RawMessage(value))
	if err != nil {
		t.Fatalf("put %s/%s: %v", c.Name(), id, err)
	}
	return r
}

func commit(t testing.TB, c *viewsync.Collection, ops ...viewsync.Op) viewsync.Commit {
	t.Helper()
	cm, err := c.Commit(t.Context(), ops, nil)
	if err != nil {
		t.Fatalf("commit to %s: %v", c.Name(), err)
	}
	return cm
}

func snapshot(t testing.TB, c *viewsync.Collection) viewsync.Snapshot {
	t.Helper()
	s, err := c.Snapshot(t.Context())
	if err != nil {
		t.Fatalf("snapshot of %s: %v", c.Name(), err)
	}
	return s
}

// state is a client's view of a collection: id → record.
type state map[string]viewsync.Record

func stateOf(recs []viewsync.Record) state {
	s := make(state, len(recs))
	for _, r := range recs {
		s[r.ID] = r
	}
	return s
}

// applyCommit applies one commit to s as a client does.
func (s state) applyCommit(cm viewsync.Commit) {
	for _, op := range cm.Ops {
		switch op.Op {
		case protocol.OpPut:
			s[op.ID] = viewsync.Record{ID: op.ID, Value: op.Value, Version: cm.Version}
		case protocol.OpDelete:
			delete(s, op.ID)
		}
	}
}

// applyCatchUp applies a catch-up to s as a client does.
func (s state) applyCatchUp(cu *viewsync.CatchUp) {
	for _, id := range cu.Deleted {
		delete(s, id)
	}
	for _, r := range cu.Records {
		s[r.ID] = r
	}
}

// diff describes how s differs from want, or returns "" if they are equal.
func (s state) diff(want state) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(want)) {
		w := want[id]
		got, ok := s[id]
		switch {
		case !ok:
			fmt.Fprintf(&b, "missing %q (want %s@%d); ", id, w.Value, w.Version)
		case string(got.Value) != string(w.Value) || got.Version != w.Version:
			fmt.Fprintf(&b, "%q is %s@%d, want %s@%d; ", id, got.Value, got.Version, w.Value, w.Version)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s)) {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "extra %q (%s@%d); ", id, s[id].Value, s[id].Version)
		}
	}
	return b.String()
}

func opsEqual(a, b []viewsync.Op) bool {
	return slices.EqualFunc(a, b, func(x, y viewsync.Op) bool {
		return x.Op == y.Op && x.ID == y.ID && string(x.Value) == string(y.Value)
	})
}
