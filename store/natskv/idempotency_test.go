package natskv_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/store/natskv"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// node is one viewsync process on the shared NATS engine: its store, hub
// and HTTP API.
type node struct {
	st  *natskv.Store
	hub *viewsync.Hub
	url string
}

func startNode(t *testing.T, natsURL string) *node {
	t.Helper()
	st := openStore(t, natsURL, natskv.Options{})
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	h, err := httpapi.New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &node{st: st, hub: hub, url: srv.URL}
}

// send sends a keyed JSON request and returns its status, whether it was
// replayed, and its body.
func (n *node) send(t *testing.T, method, path, key, body string) (int, bool, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, n.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(httpapi.HeaderIdempotencyKey, key)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(httpapi.HeaderReplayed) == "true", string(b)
}

// TestIdempotencyAcrossNodes: the key is recorded in the collection's
// stream, in the commit's atomic batch, so that a retry sent to another
// node (its first node gone, say) replays the answer instead of applying
// again, and the same key sent to two nodes at once applies once.
func TestIdempotencyAcrossNodes(t *testing.T) {
	srv := startServer(t, serverOptions(t.TempDir()))
	a, b := startNode(t, srv.ClientURL()), startNode(t, srv.ClientURL())

	st, rep, first := a.send(t, "PUT", "/v1/collections/c/records/x", "k1", `{"v":1}`)
	if st != 200 || rep {
		t.Fatalf("first PUT on a: %d %v %s", st, rep, first)
	}
	// Node a is gone: its memory of the key with it.
	a.hub.Close()
	a.st.Close()
	st, rep, again := b.send(t, "PUT", "/v1/collections/c/records/x", "k1", `{"v":1}`)
	if st != 200 || !rep || again != first {
		t.Fatalf("retry on b: %d replayed %v %s, want 200 replayed %s", st, rep, again, first)
	}
	if st, _, body := b.send(t, "PUT", "/v1/collections/c/records/x", "k1", `{"v":2}`); st != http.StatusUnprocessableEntity {
		t.Fatalf("another body on b: %d %s, want 422", st, body)
	}
	// The same commit sent to both of two nodes at once applies once.
	c := startNode(t, srv.ClientURL())
	var wg sync.WaitGroup
	answers := make([]string, 8)
	fresh := make([]bool, 8)
	for i := range answers {
		n := b
		if i%2 == 1 {
			n = c
		}
		wg.Go(func() {
			var rep bool
			var st int
			st, rep, answers[i] = n.send(t, "POST", "/v1/collections/c/commits", "k2", `{"ops":[{"op":"put","id":"y","value":1}]}`)
			fresh[i] = st == 200 && !rep
			if st != 200 {
				t.Errorf("commit %d: %d %s", i, st, answers[i])
			}
		})
	}
	wg.Wait()
	n := 0
	for i := range answers {
		if answers[i] != answers[0] {
			t.Errorf("answer %d %s, answer 0 %s", i, answers[i], answers[0])
		}
		if fresh[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d answers not replayed, want 1", n)
	}
	col, _ := c.hub.Collection("c")
	if h, err := col.Head(t.Context()); err != nil || h.Version != 2 {
		t.Errorf("head %+v %v, want version 2", h, err)
	}
}
