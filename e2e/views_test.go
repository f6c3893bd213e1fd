package e2e

// Filtered views and row-level read rights over every push transport and
// long-poll, against a real server: random commits move records between
// owners while each owner's clients follow their rows, leave and come
// back at their cursors; every byte each client reads is kept and
// scanned for the others' rows.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// tapConn keeps every byte read from a connection.
type tapConn struct {
	net.Conn
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (c tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// tappedClient returns an HTTP client whose connections record what they
// read into the returned function's answer.
func tappedClient(t *testing.T) (*http.Client, func() []byte) {
	var mu sync.Mutex
	var buf bytes.Buffer
	d := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return tapConn{Conn: c, mu: &mu, buf: &buf}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(buf.Bytes())
	}
}

// owners of the rows; a principal of each may read its own.
var viewOwners = []string{"ann", "ben", "cy"}

// rowPolicy admits "Bearer OWNER" as the principal reading and writing
// only rows whose owner is OWNER, as an embedding application's own
// auth.Func would.
func rowPolicy(t *testing.T) *auth.Policy {
	rights := map[string]auth.Rights{}
	for _, o := range viewOwners {
		row := []auth.RowRight{{Collection: "orders", Where: filter.MustParse(`{"owner":"` + o + `"}`)}}
		rights[o] = auth.Rights{ReadRows: row, WriteRows: row}
	}
	return &auth.Policy{Authenticate: func(r *http.Request) (auth.Principal, error) {
		sub := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		rs, ok := rights[sub]
		if !ok {
			return auth.Principal{}, viewsync.ErrUnauthorized
		}
		return auth.Principal{Subject: sub, Rights: rs}, nil
	}}
}

// viewState is a client's copy of a view, built from its events.
type viewState struct {
	recs   map[string]string
	epoch  string
	ver    uint64
	synced bool
}

// apply applies ev as viewsync.js does, failing on a gap, a duplicate, or
// a deletion of a record the client does not hold.
func (s *viewState) apply(ev pushEvent) error {
	switch ev.kind {
	case evReset:
		s.recs = map[string]string{}
		for _, r := range ev.records {
			s.recs[r.ID] = string(r.Value)
		}
		s.synced = true
	case evCatchUp:
		if !s.synced || ev.epoch != s.epoch {
			return fmt.Errorf("catch-up at %s before a reset", ev.cursor())
		}
		for _, r := range ev.records {
			s.recs[r.ID] = string(r.Value)
		}
		for _, id := range ev.deleted {
			if _, ok := s.recs[id]; !ok {
				return fmt.Errorf("catch-up deletes %q, which the client does not hold", id)
			}
			delete(s.recs, id)
		}
	case evCommit:
		if !s.synced || ev.epoch != s.epoch {
			return fmt.Errorf("commit at %s before a reset", ev.cursor())
		}
		if ev.after == nil || *ev.after > s.ver || ev.version <= s.ver {
			return fmt.Errorf("commit %d after %v at version %d: a gap or a duplicate", ev.version, ev.after, s.ver)
		}
		for _, op := range ev.ops {
			if op.Op == protocol.OpPut {
				s.recs[op.ID] = string(op.Value)
				continue
			}
			if _, ok := s.recs[op.ID]; !ok {
				return fmt.Errorf("commit %d deletes %q, which the client does not hold", ev.version, op.ID)
			}
			delete(s.recs, op.ID)
		}
	case evProgress:
		if !s.synced || ev.epoch != s.epoch || ev.version < s.ver {
			return fmt.Errorf("progress to %s at %s:%d", ev.cursor(), s.epoch, s.ver)
		}
	default:
		return fmt.Errorf("unexpected %s", ev)
	}
	s.epoch, s.ver = ev.epoch, ev.version
	return nil
}

// pollView long-polls /changes of the view from the state's cursor once.
func pollView(ctx context.Context, client *http.Client, base, owner, where string, s *viewState) error {
	q := url.Values{"where": {where}, "wait": {"200ms"}}
	if s.synced {
		q.Set("after", strconv.FormatUint(s.ver, 10))
		q.Set("epoch", s.epoch)
	}
	u := base + "/v1/collections/orders/changes?" + q.Encode()
	if !s.synced {
		u = base + "/v1/collections/orders?" + url.Values{"where": {where}}.Encode()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+owner)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s %v", u, resp.StatusCode, b, err)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") && !strings.Contains(cc, "no-cache") {
		return fmt.Errorf("a view's answer is cacheable: Cache-Control %q", cc)
	}
	var m struct {
		protocol.ServerMessage
		Commits []protocol.Commit `json:"commits"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	switch {
	case !s.synced || m.Reset:
		return s.apply(pushEvent{kind: evReset, epoch: m.Epoch, version: m.Version, records: m.Records})
	case m.Compacted:
		return s.apply(pushEvent{kind: evCatchUp, epoch: m.Epoch, version: m.Version, records: m.Records, deleted: m.Deleted})
	}
	for _, c := range m.Commits {
		if err := s.apply(pushEvent{kind: evCommit, epoch: m.Epoch, version: c.Version, after: c.After, ops: c.Ops}); err != nil {
			return err
		}
	}
	if m.Version > s.ver {
		return s.apply(pushEvent{kind: evProgress, epoch: m.Epoch, version: m.Version})
	}
	return nil
}

// A view's clients, on every transport, end equal to their rows, through
// random moves, disconnects and a small buffer; no byte of another
// owner's row ever reaches them.
func TestViewsPrivacyAndResume(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	srv := startPushServer(t, pushConfig{policy: rowPolicy(t), fanout: fanout.Options{BufferBytes: 16 << 10}, store: store.Config{RetainCommits: 50}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type client struct {
		owner, where string
		tr           pushTransport // nil: long-poll
		conn         pushConn
		state        viewState
		raw          func() []byte
		http         *http.Client
	}
	var clients []*client
	for _, o := range viewOwners {
		for _, tr := range append([]pushTransport{nil}, pushTransports...) {
			// Half ask for their rows; the others for every row, which
			// their rights narrow to the same.
			where := ""
			if rng.IntN(2) == 0 || tr == nil {
				where = `{"owner":"` + o + `"}`
			}
			hc, raw := tappedClient(t)
			clients = append(clients, &client{owner: o, where: where, tr: tr, raw: raw, http: hc})
		}
	}
	open := func(c *client) {
		if c.tr == nil {
			return
		}
		var cur *protocol.Cursor
		if c.state.synced {
			cur = &protocol.Cursor{Epoch: c.state.epoch, Version: c.state.ver}
		}
		conn, r, err := c.tr.open(ctx, c.http, srv.base, withBearer(c.owner), pushFollow{coll: "orders", cur: cur, where: c.where})
		if err != nil {
			t.Fatalf("%s %s: open: %v (%s)", c.tr, c.owner, err, r)
		}
		c.conn = conn
	}
	for _, c := range clients {
		open(c)
	}
	// read applies what a client's connection delivers until its view
	// is at version head.
	read := func(c *client, head uint64) {
		for c.state.ver < head || !c.state.synced {
			if c.tr == nil {
				if err := pollView(ctx, c.http, srv.base, c.owner, c.where, &c.state); err != nil {
					t.Fatalf("long-poll %s: %v", c.owner, err)
				}
				continue
			}
			ev, err := c.conn.next()
			if err != nil {
				t.Fatalf("%s %s: %v", c.tr, c.owner, err)
			}
			if err := c.state.apply(ev); err != nil {
				t.Fatalf("%s %s: %v", c.tr, c.owner, err)
			}
		}
	}

	ownerOf := map[string]string{}
	everOwned := map[string]map[string]bool{} // id → owners it ever had
	// concerned is, per owner, the version of the last commit that
	// concerned the owner's rows: a view reaches it by a commit of its
	// own (later ones arrive as progress, on a keep-alive's schedule).
	concerned := map[string]uint64{}
	for i := range 120 {
		var ops []protocol.Op
		touched := map[string]bool{}
		for range 1 + rng.IntN(3) {
			id := "o" + strconv.Itoa(rng.IntN(15))
			touched[ownerOf[id]] = true
			if ownerOf[id] != "" && rng.IntN(5) == 0 {
				ops = append(ops, protocol.Op{Op: protocol.OpDelete, ID: id})
				ownerOf[id] = ""
				continue
			}
			o := viewOwners[rng.IntN(len(viewOwners))]
			ops = append(ops, protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(fmt.Sprintf(`{"owner":%q,"mark":"MARK-%s-%d"}`, o, o, i))})
			ownerOf[id] = o
			touched[o] = true
			if everOwned[id] == nil {
				everOwned[id] = map[string]bool{}
			}
			everOwned[id][o] = true
		}
		col, err := srv.hub.Collection("orders")
		if err != nil {
			t.Fatal(err)
		}
		cm, err := col.Commit(ctx, ops, nil)
		if err != nil {
			t.Fatalf("commit %v: %v", ops, err)
		}
		for o := range touched {
			concerned[o] = cm.Version
		}
		for _, c := range clients {
			switch rng.IntN(8) {
			case 0: // leave and come back at the cursor
				if c.conn != nil {
					c.conn.close()
					open(c)
				}
			case 1, 2: // catch up now
				read(c, concerned[c.owner])
			}
		}
	}
	col, _ := srv.hub.Collection("orders")
	snap, err := col.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		name := "long-poll"
		if c.tr != nil {
			name = c.tr.String()
		}
		read(c, concerned[c.owner])
		want := map[string]string{}
		for _, r := range snap.Records {
			if ownerOf[r.ID] == c.owner {
				want[r.ID] = string(r.Value)
			}
		}
		if fmt.Sprint(c.state.recs) != fmt.Sprint(want) {
			t.Errorf("%s %s (where %q): holds %v, want %v", name, c.owner, c.where, c.state.recs, want)
		}
		raw := c.raw()
		for _, other := range viewOwners {
			if other != c.owner && bytes.Contains(raw, []byte("MARK-"+other)) {
				t.Errorf("%s %s received a value of %s's row", name, c.owner, other)
			}
		}
		for id, owners := range everOwned {
			if !owners[c.owner] && bytes.Contains(raw, []byte(`"`+id+`"`)) {
				t.Errorf("%s %s received the id %q of a row it never could read", name, c.owner, id)
			}
		}
		if c.conn != nil {
			c.conn.close()
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
