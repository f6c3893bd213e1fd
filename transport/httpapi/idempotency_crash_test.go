package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// crashChild names the store file of the child process of
// TestIdempotencyCrash.
const crashChild = "VIEWSYNC_TEST_CRASH_STORE"

// crashAfterCommit is a store that kills its process as soon as a keyed
// commit is durable: before the hub, or anything else, has answered it.
type crashAfterCommit struct{ *boltstore.Store }

func (s crashAfterCommit) ApplyKeyed(ctx context.Context, c string, ops []protocol.Op, ifs map[string]uint64, k store.NewKey) (store.Applied, error) {
	a, err := s.Store.ApplyKeyed(ctx, c, ops, ifs, k)
	if err == nil {
		os.Exit(3) // no answer, no Close: a crash
	}
	return a, err
}

// TestIdempotencyCrash: a server process dies right after a keyed commit
// became durable, before it answered: a keyed PUT, and a keyed call whose
// handler had made its first write (a counter's increment). bbolt
// recorded the key and its answer in the commit's own transaction, so the
// retry, to the store reopened by another process, replays the PUT's
// answer, and the call's handler, run again there, finds its write made:
// each applied once.
func TestIdempotencyCrash(t *testing.T) {
	if path := os.Getenv(crashChild); path != "" {
		runCrashChild(t, path)
		return
	}
	for _, tc := range []struct {
		name, method, path, body string
		// check judges the retry's answer.
		check func(t *testing.T, r response)
	}{
		{"put", "PUT", "/v1/collections/c/records/x", `{"name":"Lamp"}`, func(t *testing.T, r response) {
			want := `{"version":1,"record":{"id":"x","value":{"name":"Lamp"},"version":1}}`
			if r.Status != 200 || !replayed(r) || string(r.Body) != want || r.Header.Get("ETag") != `"1"` {
				t.Fatalf("retry after the crash: %d replayed %v ETag %q %s; want 200 replayed %s", r.Status, replayed(r), r.Header.Get("ETag"), r.Body, want)
			}
		}},
		{"call", "POST", "/v1/calls/bump", `{"arg":null}`, func(t *testing.T, r response) {
			want := `{"result":1,"versions":{"c":1}}`
			if r.Status != 200 || replayed(r) || string(r.Body) != want {
				t.Fatalf("retry after the crash: %d replayed %v %s; want 200, run again, %s", r.Status, replayed(r), r.Body, want)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "viewsync.db")
			crashChildOn(t, path, tc.method, tc.path, tc.body)
			st, err := boltstore.Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			s := serveHub(t, st, viewsync.IdempotencyOptions{}, nil, nil)
			if err := s.Hub.HandleCall("bump", bump); err != nil {
				t.Fatal(err)
			}
			if h := s.head("c"); h.Version != 1 {
				t.Fatalf("after the crash the collection is at version %d, want 1: the commit was durable", h.Version)
			}
			tc.check(t, s.sendJSON(tc.method, tc.path, tc.body, httpapi.HeaderIdempotencyKey, "crash-1"))
			if h := s.head("c"); h.Version != 1 {
				t.Errorf("version %d after the retry, want 1: not applied twice", h.Version)
			}
		})
	}
}

// crashChildOn starts a child process serving the store at path over
// crashAfterCommit, sends it method path with body under the key
// crash-1, and checks that it died of the commit without answering.
func crashChildOn(t *testing.T, path, method, target, body string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestIdempotencyCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChild+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %v; stderr: %s", err, stderr.String())
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	req, _ := http.NewRequest(method, url+target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(httpapi.HeaderIdempotencyKey, "crash-1")
	if resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req); err == nil {
		resp.Body.Close()
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child answered %d instead of dying", resp.StatusCode)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child ended with %v, want exit status 3; stderr: %s", err, stderr.String())
	}
}

// bump is a call that increments the counter n of collection c (created
// at 1) and answers its new value.
func bump(ctx context.Context, call *viewsync.Call) (any, error) {
	c, err := call.Collection("c")
	if err != nil {
		return nil, err
	}
	n, opt := 0, viewsync.IfAbsent()
	if r, err := c.Get(ctx, "n"); err == nil {
		if err := json.Unmarshal(r.Value, &n); err != nil {
			return nil, err
		}
		opt = viewsync.IfVersion(r.Version)
	}
	r, err := c.Put(ctx, "n", json.RawMessage(strconv.Itoa(n+1)), opt)
	if err != nil {
		return nil, err
	}
	return r.Value, nil
}

// runCrashChild serves the HTTP API over crashAfterCommit on path and
// prints its address; it never returns (the commit ends the process).
func runCrashChild(t *testing.T, path string) {
	st, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := viewsync.New(crashAfterCommit{st})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.HandleCall("bump", bump); err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	err = http.Serve(ln, h)
	t.Fatalf("serve: %v", err)
}
