package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is one 'viewsync serve' child process.
type server struct {
	t    *testing.T
	addr string // host:port it listens on
	url  string // http://addr
	data string // its --data directory

	cmd    *exec.Cmd
	out    *syncBuffer // stdout and stderr, shown when the test fails
	exited chan struct{}
	err    error // of cmd.Wait, once exited is closed

	client *http.Client
	token  string // when set, sent by do as Authorization: Bearer
}

// startTimeout bounds how long the binary may take to print its address.
const startTimeout = 20 * time.Second

// startServer starts the binary on addr (":0" for any port of 127.0.0.1)
// with the store in data and any further flags, and returns once it
// listens. t.Cleanup stops it. The demo's sample products are off
// (--demo-seed=false), so that a test's products are its own: pass
// --demo-seed=true among flags for them.
func startServer(t *testing.T, data, addr string, flags ...string) *server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s := &server{
		t:      t,
		data:   data,
		out:    &syncBuffer{},
		exited: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
	}
	listening := make(chan string, 1)
	s.cmd = exec.Command(serverBin, append([]string{"serve",
		"--addr", addr,
		"--data", data,
		"--shutdown-timeout", "10s",
		"--demo-seed=false",
	}, flags...)...)
	s.cmd.Env = serverEnv()
	dieWithParent(s.cmd)
	s.cmd.Stdout = &lineWatcher{w: s.out, prefix: "viewsync listening on ", found: listening}
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", serverBin, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop()
		s.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("output of viewsync serve --addr %s:\n%s", addr, s.out.String())
		}
	})
	select {
	case u := <-listening:
		s.url = strings.TrimSpace(u)
		s.addr = strings.TrimPrefix(s.url, "http://")
	case <-s.exited:
		t.Fatalf("viewsync serve exited before listening (%v):\n%s", s.err, s.out.String())
	case <-time.After(startTimeout):
		t.Fatalf("viewsync serve did not print its address within %v:\n%s", startTimeout, s.out.String())
	}
	return s
}

// serverEnv is the test's environment without VIEWSYNC_* variables, which
// the binary would read as flags.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIEWSYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and waits for the process to end (killing it if it
// takes too long); it returns how long the graceful stop took and the exit
// error. Stopping a stopped server returns at once.
func (s *server) stop() (time.Duration, error) {
	select {
	case <-s.exited:
		return 0, s.err
	default:
	}
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return time.Since(start), s.err
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return time.Since(start), fmt.Errorf("did not stop within 20s of SIGTERM; killed (%v)", s.err)
	}
}

// mintToken returns a token signed with secret ('viewsync token
// --auth-secret secret' and the flags given: --sub, --read, --write, …).
func mintToken(t *testing.T, secret string, flags ...string) string {
	t.Helper()
	cmd := exec.Command(serverBin, append([]string{"token", "--auth-secret", secret}, flags...)...)
	cmd.Env = serverEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("viewsync token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// product is the value of a record of the demo's collection.
type product struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Price       float64 `json:"price"`
	Category    string  `json:"category,omitempty"`
}

// record is a record as the API returns it.
type record struct {
	ID      string  `json:"id"`
	Value   product `json:"value"`
	Version uint64  `json:"version"`
}

// do sends one request to the server's API and decodes a 2xx JSON answer
// into out (when not nil); any other answer fails the test.
func (s *server) do(method, path, contentType string, body, out any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatalf("%s %s: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		s.t.Fatalf("%s %s: %s: %s", method, path, res.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
}

const productsPath = "/v1/collections/products"

// put writes a product (PUT, no precondition) and returns the version.
func (s *server) put(id string, p product) uint64 {
	s.t.Helper()
	var r struct {
		Version uint64 `json:"version"`
	}
	s.do(http.MethodPut, productsPath+"/records/"+id, "application/json", p, &r)
	return r.Version
}

// putLampAndChair writes the two products most tests start from: p-1-lamp
// ("Desk lamp", brass, 30) and p-2-chair ("Old chair", wobbly, 15).
func (s *server) putLampAndChair() {
	s.t.Helper()
	s.put("p-1-lamp", product{Name: "Desk lamp", Description: "brass", Price: 30})
	s.put("p-2-chair", product{Name: "Old chair", Description: "wobbly", Price: 15})
}

// patch merges fields into a product (PATCH, JSON merge patch).
func (s *server) patch(id string, fields map[string]any) uint64 {
	s.t.Helper()
	var r struct {
		Version uint64 `json:"version"`
	}
	s.do(http.MethodPatch, productsPath+"/records/"+id, "application/merge-patch+json", fields, &r)
	return r.Version
}

// get reads one product.
func (s *server) get(id string) record {
	s.t.Helper()
	var r record
	s.do(http.MethodGet, productsPath+"/records/"+id, "", nil, &r)
	return r
}

// snapshot reads every product.
func (s *server) snapshot() []record {
	s.t.Helper()
	var snap struct {
		Records []record `json:"records"`
	}
	s.do(http.MethodGet, productsPath, "", nil, &snap)
	return snap.Records
}

// eventually retries check every 50ms until it returns nil or timeout
// passes, then fails the test with the last error. For server-side state
// only; pages are polled inside the browser.
func (s *server) eventually(what string, timeout time.Duration, check func() error) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric returns the value of the sample named exactly name (labels
// included, e.g. `x_count{collection="products"}`) in /metrics, or an
// error when it is missing.
func (s *server) metric(name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no sample %s in /metrics", name)
}

// lineWatcher passes output on to w and sends the rest of the first line
// that starts with prefix on found.
type lineWatcher struct {
	w      io.Writer
	prefix string
	found  chan<- string
	buf    []byte
	done   bool
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if l.done {
		return n, err
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			l.found <- rest
			l.done = true
			l.buf = nil
			break
		}
	}
	return n, err
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
